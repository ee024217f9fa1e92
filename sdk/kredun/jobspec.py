"""The job spec: the JSON a scheduler hands a worker (task reference, argument references,
the job's hashes). This module imports no deserialiser: the operator builds specs."""

from __future__ import annotations

from typing import Any

SPEC_VERSION = 1


def job_spec(job: Any, execution_id: str) -> dict[str, Any]:
    """The JSON a worker needs to run `job` (its arguments must be references)."""
    task = job.task
    return {
        "version": SPEC_VERSION,
        "job_id": job.id,
        "execution_id": execution_id,
        "eval_hash": job.eval_hash,
        "args_hash": job.args_hash,
        "task_hash": task.hash,
        "task": task.to_json(),
        "args": [ref.to_json() for ref in job.args],
        "kwargs": {name: ref.to_json() for name, ref in job.kwargs.items()},
    }
