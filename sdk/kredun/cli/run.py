"""`kredun run FILE TASK [--param value ...]`."""

from __future__ import annotations

import argparse
import logging
import pprint
import shlex
import sys
import traceback
import uuid
from typing import Any

from ..config import project_config
from ..context import load_context_file, merge_dicts, parse_context_updates
from ..errors import DryRunResult
from ..scheduler import Scheduler
from ..tags import parse_tag
from ..workflow import find_task, load_workflow_file
from .params import parse_task_params
from .runs import RunMarkers


def run_command(args: argparse.Namespace) -> int:
    config = project_config()
    if args.database:
        config.database_uri = args.database
    if args.executor:
        config.executors["default"] = config.executor_options(args.executor)
    module = load_workflow_file(args.file)
    task = find_task(module, args.task)
    kwargs = parse_task_params(task, args.params)
    tags = [parse_tag(text) for text in args.tag]
    label = shlex.join(["kredun", "run", args.file, args.task, *args.params])
    context = merge_dicts([
        load_context_file(args.context_file) if args.context_file else {},
        parse_context_updates(args.context),
    ])  # fmt: skip

    expr = task(**kwargs)
    scheduler = Scheduler(config=config)
    progress = None
    if sys.stderr.isatty():
        from .progress import LiveProgress

        progress = LiveProgress(scheduler.logger)
    runs = RunMarkers(scheduler.config.require_database_uri())
    execution_id = uuid.uuid4()
    marker = None
    try:
        for interrupted in runs.mark_interrupted(scheduler.store):
            logging.getLogger("kredun").warning(
                "Execution %s was interrupted (its kredun run ended without finishing)",
                interrupted,
            )
        marker = runs.begin(execution_id.hex)  # as the provenance store names it
        options: dict[str, Any] = {
            "cache": not args.no_cache,
            "label": label,
            "execution_id": str(execution_id),
            "context": context,
            "dryrun": args.dryrun,
            "tags": tags,
        }
        if progress is None:
            result = scheduler.run(expr, **options)
        else:
            with progress:
                result = scheduler.run(expr, progress=progress.update, **options)
    except DryRunResult as report:
        print_dryrun(report.would_run, report.cached)
        return 0
    except Exception as error:
        if isinstance(error, _kredun_errors()):
            raise
        # The task's own failure: show its traceback (not the scheduler's) and fail.
        logging.getLogger("kredun").error("Execution failed: %s: %s", type(error).__name__, error)
        print(task_traceback(error), file=sys.stderr, end="")
        return 1
    finally:
        runs.end(marker)
        scheduler.close()
    if args.dryrun:
        print("Dry run: every job would replay from the cache; the result:")
    print(pprint.pformat(result))
    return 0


def task_traceback(error: BaseException) -> str:
    """The traceback of a task's error from the task's own frames on: the scheduler's frames
    that led to running it say nothing about the workflow (kredun frames under the task, a
    File method it called say, stay). An error from another process has no local task
    frames: its traceback is the note the scheduler added."""
    import os

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frames = traceback.extract_tb(error.__traceback__)
    first = next((i for i, f in enumerate(frames) if not f.filename.startswith(package)), None)
    report = traceback.TracebackException.from_exception(error)
    if first is not None or getattr(error, "__notes__", None):
        report.stack = traceback.StackSummary.from_list(frames[first:] if first is not None else [])
    return "".join(report.format())


def print_dryrun(would_run: list[str], cached: list[str]) -> None:
    """The dry run's report on stdout: jobs that would run (each branch stops at its first),
    then those that would replay."""
    print(f"Dry run: {len(would_run)} job(s) would run, {len(cached)} would replay.")
    for call in would_run:
        print(f"  run     {call}")
    for call in cached:
        print(f"  cached  {call}")


def _kredun_errors() -> tuple[type[BaseException], ...]:
    from ..errors import ConfigError, SerializationError, StoreError

    return (ConfigError, StoreError, SerializationError)
