"""`kredun worker`: the command job Pods and Batch jobs run."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from ..config import Config, apply_environment, load_config_file
from ..errors import PlanError
from ..valuestore import open_value_store
from ..worker import load_spec, report_outcome, run_job

ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"


def array_entry(specs: Any, index: str | None) -> Any:
    """The spec of this child of an array job: entry `index` of the list."""
    if index is None or not index.isdigit():
        raise PlanError(f"--spec-list-hash needs ${ARRAY_INDEX_VARIABLE} (an array job's index)")
    if not isinstance(specs, list) or int(index) >= len(specs):
        raise PlanError(f"the job spec list has no entry {index}")
    return specs[int(index)]


def worker_command(args: argparse.Namespace) -> int:
    config = load_config_file(Path(args.config)) if args.config else Config()
    config = apply_environment(config)
    # The value store of the job's cache scope is all a job needs: no database is opened.
    store = open_value_store(config.require_value_store_uri(), config.cache_scope)
    if args.spec_json:
        spec = load_spec(args.spec_json)
    else:
        spec = load_spec(store.get(args.spec_hash or args.spec_list_hash).decode())
        if args.spec_list_hash:
            spec = array_entry(spec, os.environ.get(ARRAY_INDEX_VARIABLE))
    outcome, error = run_job(spec, store)
    if error is not None:  # the task failed: its traceback is the job's log tail
        print("".join(traceback.format_exception(error)), file=sys.stderr, end="")
        print(f"kredun: task failed: {type(error).__name__}: {error}", file=sys.stderr)
    report_outcome(outcome, store)
    return 0 if error is None else 1
