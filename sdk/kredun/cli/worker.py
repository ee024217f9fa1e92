"""`kredun worker`: the command job Pods and Batch jobs run."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ..config import Config, apply_environment, load_config_file
from ..errors import KredunError
from ..worker import load_spec, run_job


def worker_command(args: argparse.Namespace) -> int:
    config = load_config_file(Path(args.config)) if args.config else Config()
    config = apply_environment(config)
    if args.spec_hash:
        from ..valuestore import open_value_store

        text = open_value_store(config.value_store_uri).get(args.spec_hash).decode()
    else:
        text = args.spec_json
    spec = load_spec(text)
    try:
        run_job(spec, config)
    except KredunError:
        raise
    except BaseException as error:  # the task failed: its traceback is the job's log tail
        print("".join(traceback.format_exception(error)), file=sys.stderr, end="")
        print(f"kredun: task failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
