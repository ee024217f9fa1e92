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
from ..scheduler import Scheduler
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
    label = shlex.join(["kredun", "run", args.file, args.task, *args.params])

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
        }
        if progress is None:
            result = scheduler.run(task(**kwargs), **options)
        else:
            with progress:
                result = scheduler.run(task(**kwargs), progress=progress.update, **options)
    except Exception as error:
        if isinstance(error, _kredun_errors()):
            raise
        # The task's own failure: show its traceback (not the scheduler's) and fail.
        logging.getLogger("kredun").error("Execution failed: %s: %s", type(error).__name__, error)
        print("".join(traceback.format_exception(error)), file=sys.stderr, end="")
        return 1
    finally:
        runs.end(marker)
        scheduler.close()
    print(pprint.pformat(result))
    return 0


def _kredun_errors() -> tuple[type[BaseException], ...]:
    from ..errors import ConfigError, SerializationError, StoreError

    return (ConfigError, StoreError, SerializationError)
