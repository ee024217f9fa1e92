"""`kredun run FILE TASK [--param value ...]`."""

from __future__ import annotations

import argparse
import logging
import pprint
import shlex
import sys
import traceback

from ..config import project_config
from ..scheduler import Scheduler
from ..tags import parse_tag
from ..workflow import find_task, load_workflow_file
from .params import parse_task_params


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

    scheduler = Scheduler(config=config)
    progress = None
    if sys.stderr.isatty():
        from .progress import LiveProgress

        progress = LiveProgress(scheduler.logger)
    try:
        if progress is None:
            result = scheduler.run(task(**kwargs), cache=not args.no_cache, label=label, tags=tags)
        else:
            with progress:
                result = scheduler.run(
                    task(**kwargs),
                    cache=not args.no_cache,
                    label=label,
                    progress=progress.update,
                    tags=tags,
                )
    except Exception as error:
        if isinstance(error, _kredun_errors()):
            raise
        # The task's own failure: show its traceback (not the scheduler's) and fail.
        logging.getLogger("kredun").error("Execution failed: %s: %s", type(error).__name__, error)
        print("".join(traceback.format_exception(error)), file=sys.stderr, end="")
        return 1
    finally:
        scheduler.close()
    print(pprint.pformat(result))
    return 0


def _kredun_errors() -> tuple[type[BaseException], ...]:
    from ..errors import ConfigError, SerializationError, StoreError

    return (ConfigError, StoreError, SerializationError)
