"""The worker entrypoint: runs one job wherever it lands (a Pod, a Batch job, a process).

The scheduler that dispatched the job hands over a *job spec* (kredun.jobspec). The worker
never opens the provenance database: it reads the task and its arguments from the value
store of the job's cache scope, runs the task, writes the result blob (a value, or a plan
fragment when the task returned expressions) there under the sha1 of its bytes, and
reports a small outcome (kredun.outcome). The receiving side checks the blob against the
outcome and records provenance itself.

Value-store I/O waits out an outage: it is retried with backoff for up to
$KREDUN_STORE_RETRY_SECONDS (default 600) before the job fails.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from . import graph
from .deserialize import load_task, resolve
from .errors import PlanError
from .hashing import hash_bytes
from .jobspec import SPEC_VERSION
from .outcome import (
    CLASSES_LIMIT,
    MESSAGE_LIMIT,
    OUTCOME_PATH_VARIABLE,
    OUTCOME_STORE_VARIABLE,
    PREVIEW_LIMIT,
    TYPE_LIMIT,
    FragmentRef,
    Outcome,
    TaskFailure,
    outcome_key,
)
from .plan import _task_ref, dumps_plan, encode_plan
from .provenance.fragment import export_fragment
from .provenance.memory import MemoryProvenanceStore
from .refs import ref_from_json
from .retries import with_store_retries
from .scheduler import SUBRUN_TASK
from .serialize import dumps, preview, ship, type_name
from .validity import collecting_external
from .valuestore import ValueStore

BATCH_JOB_VARIABLE = "AWS_BATCH_JOB_ID"

ProvenanceSink = Callable[[MemoryProvenanceStore], None]


@dataclass(frozen=True)
class SubrunJob:
    """What a subrun's task gets when `kredun worker` runs it: where to hand the in-memory
    store its nested scheduler recorded into, and the value store of the job's cache scope
    (where the nested scheduler keeps its values and its cache entries)."""

    sink: ProvenanceSink
    value_store: ValueStore


# Set only while this worker calls a subrun's task, so that no other code sees it.
_subrun_job: ContextVar[SubrunJob | None] = ContextVar("kredun_subrun_job", default=None)


def take_subrun_job() -> SubrunJob | None:
    """For a subrun's task: what `kredun worker` gives it (None elsewhere). Taken: a
    subrun nested inside finds none."""
    job = _subrun_job.get()
    _subrun_job.set(None)
    return job


def run_job(spec: dict[str, Any], value_store: ValueStore) -> tuple[Outcome, BaseException | None]:
    """Run the job a spec describes, with the value store of its cache scope: its result
    blob (a value, or a plan fragment when the task returned expressions) goes there, under
    the sha1 of its bytes. Returns the job's outcome, and the task's exception if it raised
    (the outcome then describes it). Errors loading the job propagate."""
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise PlanError("job spec is not a kredun job spec (version 1)")

    def fetch(value_hash: str) -> bytes:
        return with_store_retries("reading the job's input", lambda: value_store.get(value_hash))

    def put(value_hash: str, data: bytes) -> None:
        with_store_retries("storing the job's result", lambda: value_store.put(value_hash, data))

    task = load_task(_task_ref(spec["task_hash"], spec["task"]), fetch)
    args = [resolve(ref_from_json(a, f"args[{i}]"), fetch) for i, a in enumerate(spec["args"])]
    kwargs = {
        name: resolve(ref_from_json(a, f"kwargs[{name}]"), fetch)
        for name, a in spec["kwargs"].items()
    }
    nested: list[MemoryProvenanceStore] = []
    subrun_job = SubrunJob(nested.append, value_store) if task.fullname == SUBRUN_TASK else None
    token = _subrun_job.set(subrun_job)
    try:
        result = task.func(*args, **kwargs)
    except BaseException as error:
        return _with_provenance(_failure(error, put), nested, put), error
    finally:
        _subrun_job.reset(token)
    if graph.contains_expression(result):
        # Tasks here were loaded from shipped code or from the image: each is re-shipped
        # the same way.
        plan = encode_plan(result, put, ship)
        data = dumps_plan(plan)
        outcome = Outcome(kind="plan", hash=hash_bytes(data), size=len(data), type="kredun.plan",
                          preview=f"<plan of {len(plan['nodes'])} nodes>")  # fmt: skip
    else:
        # Files and Dirs note themselves while pickled: the receiver must check them before
        # it replays this result from the cache.
        with collecting_external() as external:
            data = dumps(result)
        outcome = Outcome(kind="value", hash=hash_bytes(data), size=len(data),
                          type=type_name(result)[:TYPE_LIMIT],
                          preview=preview(result, PREVIEW_LIMIT), truth=_truth(result),
                          files=bool(external))  # fmt: skip
    put(outcome.hash, data)
    return _with_provenance(outcome, nested, put), None


def _with_provenance(
    outcome: Outcome, nested: list[MemoryProvenanceStore], put: Callable[[str, bytes], None]
) -> Outcome:
    """The outcome naming the provenance fragment of a subrun's nested run, stored under
    the sha1 of its bytes; or saying how many jobs it left out, when too large to export."""
    if not nested:
        return outcome
    data, jobs = export_fragment(nested[0].provenance())
    if data is None:
        return replace(outcome, provenance_dropped=jobs) if jobs else outcome
    fragment = FragmentRef(hash_bytes(data), len(data))
    put(fragment.hash, data)
    return replace(outcome, provenance=fragment)


def _truth(value: Any) -> bool | None:
    try:
        return bool(value)
    except Exception:
        return None


def _failure(error: BaseException, put: Callable[[str, bytes], None]) -> Outcome:
    """The outcome of a task that raised `error`, whose pickle (if it has one) is stored."""
    classes = tuple(f"{kind.__module__}.{kind.__qualname__}"
                    for kind in type(error).__mro__ if kind is not object)  # fmt: skip
    try:
        data = dumps(error)
    except Exception:
        error_hash = None
    else:
        error_hash = hash_bytes(data)
        put(error_hash, data)
    message = f"{type(error).__name__}: {error}"[:MESSAGE_LIMIT]
    return Outcome(error=TaskFailure(classes[:CLASSES_LIMIT], message, error_hash))


def report_outcome(outcome: Outcome, value_store: ValueStore) -> None:
    """Hand the outcome to whoever launched the job: the file $KREDUN_OUTCOME_PATH names (a
    Pod's termination message), the value store under the key of $AWS_BATCH_JOB_ID when
    $KREDUN_OUTCOME_TO_STORE is set (AWS Batch), else the last line of standard output."""
    text = outcome.to_json()
    path = os.environ.get(OUTCOME_PATH_VARIABLE)
    if path:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    elif os.environ.get(OUTCOME_STORE_VARIABLE):
        batch_job = os.environ.get(BATCH_JOB_VARIABLE)
        if not batch_job:
            raise PlanError(f"${OUTCOME_STORE_VARIABLE} is set, but ${BATCH_JOB_VARIABLE} is not")
        key = outcome_key(batch_job)
        with_store_retries("storing the job's outcome",
                           lambda: value_store.put(key, text.encode(), replace=True))  # fmt: skip
    else:
        sys.stdout.flush()
        print(text, flush=True)


def load_spec(text: str) -> dict[str, Any]:
    try:
        return json.loads(text)
    except ValueError as error:
        raise PlanError(f"job spec is not valid JSON: {error}") from None
