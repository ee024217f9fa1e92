"""Cluster commands: `kredun submit`, `kredun get`, `kredun logs`, `kredun cancel`.

This module is imported to build the argument parser, so it imports nothing heavy at the
top; the commands import kredun.submit (and through it the Kubernetes client) when they run.
"""

from __future__ import annotations

import argparse
import pprint
import re
import sys
from datetime import UTC, datetime
from typing import Any


def add_cluster_commands(commands: Any) -> None:
    """Add the cluster subcommands to the `kredun` subparsers."""
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "-n", "--namespace", default="default", help="namespace of the Execution (default: default)"
    )
    cluster.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )

    submit = commands.add_parser(
        "submit",
        parents=[cluster],
        allow_abbrev=False,  # `--n 5` after TASK is a task parameter, not `--namespace`
        help="run a task from a workflow file on a Kubernetes cluster",
        usage="kredun submit [options] FILE TASK [--param value ...]",
        description="Build the plan of TASK from FILE here, upload it to the value store the "
        "cluster shares ([value_store] in .kredun/kredun.toml or $KREDUN_VALUE_STORE) and create "
        "an Execution. Prints the Execution's name; with --wait, its result instead.",
    )
    submit.add_argument(
        "--image", help="job image (default: $KREDUN_JOB_IMAGE or [jobs] image in the config)"
    )
    submit.add_argument("--name", help="Execution name (default: generated from the task name)")
    submit.add_argument("--wait", action="store_true", help="wait for the result and print it")
    submit.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="with --wait: give up after SECONDS"
    )
    submit.add_argument("--no-cache", action="store_true", help="run every job, ignoring the cache")
    submit.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="tag the Execution"
    )
    submit.add_argument("file", metavar="FILE", help="workflow file (a Python module)")
    submit.add_argument("task", metavar="TASK", help="task name (or full name) in FILE")
    submit.add_argument("params", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    get = commands.add_parser(
        "get", parents=[cluster], help="list Executions, or show one in detail"
    )
    get.add_argument("name", nargs="?", metavar="NAME", help="an Execution to show in detail")

    logs = commands.add_parser(
        "logs",
        parents=[cluster],
        help="print an Execution's job logs, or an AWS Batch job's log (by its job id)",
    )
    logs.add_argument("name", metavar="NAME", help="the Execution")
    logs.add_argument(
        "--job", metavar="JOB", help="only the job(s) with this eval hash (prefix), pod or task"
    )

    cancel = commands.add_parser("cancel", parents=[cluster], help="cancel an Execution")
    cancel.add_argument("name", metavar="NAME", help="the Execution")


def cluster_command(args: argparse.Namespace) -> int:
    handlers = {
        "submit": submit_command,
        "get": get_command,
        "logs": logs_command,
        "cancel": cancel_command,
    }
    return handlers[args.command](args)


def submit_command(args: argparse.Namespace) -> int:
    from ..submit import (
        ExecutionCancelledError,
        ExecutionFailedError,
        MissingImageError,
        cluster_config,
        default_job_image,
        submit,
    )
    from ..workflow import find_task, load_workflow_file
    from .params import parse_task_params

    config = cluster_config()
    image = args.image or default_job_image(config)
    if not image:
        raise MissingImageError(
            "no job image: pass --image, or set $KREDUN_JOB_IMAGE or [jobs] image in "
            ".kredun/kredun.toml"
        )
    from ..tags import parse_tag

    task = find_task(load_workflow_file(args.file), args.task)
    kwargs = parse_task_params(task, args.params)
    handle = submit(
        task(**kwargs),
        namespace=args.namespace,
        image=image,
        name=args.name,
        config=config,
        kubeconfig=args.kubeconfig,
        cache=not args.no_cache,
        tags=[parse_tag(text) for text in args.tag],
    )
    if not args.wait:
        print(handle.name)
        return 0
    print(f"[kredun] Execution {args.namespace}/{handle.name} submitted", file=sys.stderr)
    try:
        result = handle.result(timeout=args.timeout)
    except ExecutionFailedError as error:
        print(f"kredun: {error}", file=sys.stderr)
        if error.traceback:
            print(error.traceback.rstrip("\n"), file=sys.stderr)
        return 1
    except ExecutionCancelledError as error:
        print(f"kredun: {error}", file=sys.stderr)
        return 1
    print(pprint.pformat(result))
    return 0


def get_command(args: argparse.Namespace) -> int:
    from ..submit import ExecutionHandle, list_executions

    if args.name:
        handle = ExecutionHandle(args.name, args.namespace, kubeconfig=args.kubeconfig)
        print(describe(handle.get()))
        return 0
    executions = list_executions(args.namespace, kubeconfig=args.kubeconfig)
    if not executions:
        print(f"No executions in namespace {args.namespace}.", file=sys.stderr)
        return 0
    print(execution_table(executions, datetime.now(UTC)))
    return 0


# An AWS Batch job id (a UUID; `<parent>:<i>` for an array child), not an Execution name.
_BATCH_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(:\d+)?")


def logs_command(args: argparse.Namespace) -> int:
    from ..submit import ExecutionHandle

    if _BATCH_JOB_ID.fullmatch(args.name):
        from .batch import batch_logs_command

        job = argparse.Namespace(job_id=args.name, executor="batch", attempt=None, tail=None)
        return batch_logs_command(job)

    handle = ExecutionHandle(args.name, args.namespace, kubeconfig=args.kubeconfig)
    sys.stdout.write(handle.logs(args.job))
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    from ..submit import ExecutionHandle

    ExecutionHandle(args.name, args.namespace, kubeconfig=args.kubeconfig).cancel()
    print(f"execution {args.name} cancellation requested")
    return 0


# -- formatting ---------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(created: str | None, now: datetime) -> str:
    """A duration the way kubectl prints ages: 45s, 7m12s, 3h, 12d."""
    start = _parse_time(created)
    if start is None:
        return "-"
    seconds = max(0, int((now - start).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def execution_table(executions: list[dict[str, Any]], now: datetime) -> str:
    """NAME PHASE PROGRESS CACHED AGE RESULT, one row per Execution."""
    rows = [("NAME", "PHASE", "PROGRESS", "CACHED", "AGE", "RESULT")]
    for execution in executions:
        status = execution.get("status") or {}
        cached = (status.get("jobs") or {}).get("cached")
        rows.append(
            (
                execution["metadata"]["name"],
                status.get("phase") or "-",
                status.get("progress") or "-",
                "-" if cached is None else str(cached),
                age(execution["metadata"].get("creationTimestamp"), now),
                _shorten((status.get("result") or {}).get("preview") or "", 50),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "   "
        + row[-1]
        for row in rows
    ).rstrip()


def describe(execution: dict[str, Any]) -> str:
    """One Execution in detail."""
    from ..resource import ANNOTATION_EXPRESSION

    metadata, spec = execution["metadata"], execution.get("spec") or {}
    status = execution.get("status") or {}
    jobs = status.get("jobs") or {}
    result = status.get("result") or {}
    failure = status.get("failure") or {}
    fields = [
        ("Name", metadata["name"]),
        ("Namespace", metadata.get("namespace")),
        ("Created", metadata.get("creationTimestamp")),
        ("Expression", (metadata.get("annotations") or {}).get(ANNOTATION_EXPRESSION)),
        ("Task", spec.get("task")),
        ("Plan", (spec.get("plan") or {}).get("hash")),
        ("Image", spec.get("image")),
        ("Cancel requested", "yes" if spec.get("cancel") else None),
        ("Phase", status.get("phase") or "- (not seen by the operator yet)"),
        ("Progress", status.get("progress")),
        ("Jobs", ", ".join(f"{key} {jobs[key]}" for key in jobs) or None),
        ("Started", status.get("startTime")),
        ("Completed", status.get("completionTime")),
        ("Execution id", status.get("executionId")),
        ("Result", result.get("preview")),
        ("Result hash", result.get("hash")),
        ("Message", status.get("message")),
        ("Failed task", failure.get("task")),
        ("Error", failure.get("error")),
    ]
    shown = [(label, str(value)) for label, value in fields if value not in (None, "")]
    width = max(len(label) for label, _ in shown) + 1
    lines = [f"{label + ':':<{width}} {value}" for label, value in shown]
    if failure.get("traceback"):
        lines += ["Traceback:", *("  " + line for line in failure["traceback"].splitlines())]
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for condition in conditions:
            reason = condition.get("reason") or ""
            message = condition.get("message") or ""
            lines.append(f"  {condition['type']}={condition['status']} {reason} {message}".rstrip())
    return "\n".join(lines)
