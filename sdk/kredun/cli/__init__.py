"""The `kredun` command. Subcommands import what they need only when they run, so
`kredun run` starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import KredunError

# Commands defined here; any other command comes from the `kredun.commands` entry points.
BUILT_IN = frozenset(
    {"run", "log", "tag", "worker", "db", "submit", "get", "logs", "cancel", "batch-logs"}
)


def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """The parser; `extensions=False` leaves out the commands of other packages (finding
    them reads every installed distribution's metadata: ~20 ms a job worker need not pay)."""
    parser = argparse.ArgumentParser(
        prog="kredun",
        description="Run and inspect kredun workflows.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--database",
        metavar="URI",
        help="provenance database (default: sqlite under ./.kredun/, or $KREDUN_DATABASE_URI)",
    )

    run = commands.add_parser(
        "run",
        parents=[database],
        help="run a task from a workflow file",
        usage="kredun run [options] FILE TASK [--param value ...]",
        description="Run TASK from the workflow FILE and print its result. Parameters after "
        "TASK are the task's arguments, typed from its type hints.",
    )
    run.add_argument("--no-cache", action="store_true", help="run every job, ignoring the cache")
    run.add_argument("--executor", metavar="NAME", help="executor for tasks that name none")
    run.add_argument(
        "--dryrun",
        action="store_true",
        help="run nothing: list the jobs that would run and those that would replay",
    )
    run.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a context value (KEY may be dotted, VALUE is JSON or a string); repeatable",
    )
    run.add_argument(
        "--context-file", metavar="FILE", help="JSON object merged into the context first"
    )
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="tag the execution (repeatable)",
    )
    run.add_argument("file", metavar="FILE", help="workflow file (a Python module)")
    run.add_argument("task", metavar="TASK", help="task name (or full name) in FILE")
    run.add_argument("params", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    log = commands.add_parser(
        "log",
        parents=[database],
        help="list executions; show an execution, job, value or task; explain the cache",
        description="Without ID: the newest executions. With ID (an execution or job id, "
        "with or without dashes, or a value hash; a prefix will do; or a task name): its "
        "details.",
    )
    log.add_argument("id", nargs="?", metavar="ID", help="execution, job, value or task")
    log.add_argument("--limit", type=int, default=20, help="rows to list (default 20)")
    log.add_argument(
        "--status",
        type=str.upper,
        choices=("PENDING", "RUNNING", "FAILED", "CACHED", "DONE", "CANCELLED"),
        help="only executions (or with --jobs/--task, jobs) with this status",
    )
    log.add_argument("--tag", metavar="KEY[=VALUE]", help="only records carrying this tag")
    log.add_argument("--jobs", action="store_true", help="list jobs instead of executions")
    log.add_argument("--task", metavar="NAME", help="list the jobs of this task")
    log.add_argument("--file", metavar="PATH", help="where a file came from: who wrote it")
    log.add_argument("--why", metavar="JOB", help="why a job ran, or what it replayed")
    log.add_argument("--format", choices=("text", "json"), default="text")
    log.add_argument(
        "--scope", metavar="SCOPE",
        help='values of this cache scope, e.g. "ns/team-a" on a cluster\'s database '
             "(default: the configuration's tenancy.cache_scope)",
    )  # fmt: skip

    tag = commands.add_parser("tag", help="list, add or remove tags")
    tag_commands = tag.add_subparsers(dest="tag_command", required=True, metavar="COMMAND")
    tag_list = tag_commands.add_parser("list", parents=[database], help="tags and their counts")
    tag_list.add_argument("id", nargs="?", metavar="ID", help="the tags of this record only")
    for name, help_text in (("add", "add KEY=VALUE tags"), ("rm", "remove KEY or KEY=VALUE")):
        change = tag_commands.add_parser(name, parents=[database], help=help_text)
        change.add_argument("id", metavar="ID", help="execution, job or value (a prefix will do)")
        change.add_argument("tags", nargs="+", metavar="TAG")

    worker = commands.add_parser(
        "worker",
        help="run one job from a job spec (what Pods and Batch jobs run)",
        description="Run one job: its result goes to the value store ($KREDUN_VALUE_STORE or "
        "--config, already scoped to the job's cache scope), and its outcome (JSON) to the file "
        "$KREDUN_OUTCOME_PATH names, else to the last line of standard output. No database is "
        "opened.",
    )
    worker.add_argument("--config", metavar="FILE", help="kredun.toml with the stores")
    spec = worker.add_mutually_exclusive_group(required=True)
    spec.add_argument("--spec-hash", metavar="HASH", help="job spec kept in the value store")
    spec.add_argument("--spec-json", metavar="JSON", help="job spec given inline")
    spec.add_argument(
        "--spec-list-hash",
        metavar="HASH",
        help="list of job specs in the value store: run entry $AWS_BATCH_JOB_ARRAY_INDEX",
    )

    db = commands.add_parser("db", help="manage the provenance database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", parents=[database], help="apply database migrations")

    from .cluster import add_cluster_commands

    add_cluster_commands(commands)

    from .batch import add_batch_commands

    add_batch_commands(commands)

    if extensions:
        # Commands of other packages (the operator's `kredun operator`), without naming them.
        from importlib.metadata import entry_points

        for entry in entry_points(group="kredun.commands"):
            entry.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    args = build_parser(extensions=command not in BUILT_IN).parse_args(arguments)
    try:
        if args.command == "run":
            from .run import run_command

            return run_command(args)
        if args.command == "log":
            from .log import log_command

            return log_command(args)
        if args.command == "tag":
            from .log import tag_command

            return tag_command(args)
        if args.command == "worker":
            from .worker import worker_command

            return worker_command(args)
        if args.command == "db":
            from .log import db_upgrade_command

            return db_upgrade_command(args)
        if args.command == "batch-logs":
            from .batch import batch_logs_command

            return batch_logs_command(args)
        if args.command in ("submit", "get", "logs", "cancel"):
            from .cluster import cluster_command

            return cluster_command(args)
        handler = getattr(args, "handler", None)
        if handler is not None:
            result: int = handler(args)
            return result
    except KredunError as error:
        print(f"kredun: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kredun: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")
