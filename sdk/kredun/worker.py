"""The worker entrypoint: runs one job wherever it lands (a Pod, a Batch job, a process).

The scheduler that dispatched the job hands over a *job spec* (JSON: the task reference,
argument references, the job's hashes). The worker loads the task, resolves the arguments,
runs the task and records the result in the shared provenance store and value store: a
value, or a plan fragment when the task returned expressions. Nothing but the exit status
goes back to the scheduler, which reads the result from the store.

Store I/O (loading the task and its arguments, recording the result) waits out an outage:
it is retried with backoff for up to $KREDUN_STORE_RETRY_SECONDS (default 600) before the
job fails, so a database restart pauses jobs instead of failing them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import graph
from .config import Config
from .deserialize import resolve
from .errors import NotFoundError, PlanError, StoreError, ValueNotFoundError, WorkflowLoadError
from .expression import SimpleExpression
from .hashing import encode, hash_bytes
from .plan import TaskRef, _task_ref, dumps_plan, encode_plan
from .provenance.records import CallRecord, ProvenanceBatch, TaskRecord
from .refs import ref_from_json
from .serialize import preview, ship, type_name
from .valuestore import store_value

SPEC_VERSION = 1
RETRY_VARIABLE = "KREDUN_STORE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 600.0
T = TypeVar("T")


def with_store_retries(what: str, action: Callable[[], T], seconds: float | None = None) -> T:
    """`action()`, retried with backoff while the stores cannot be reached (for `seconds`,
    default $KREDUN_STORE_RETRY_SECONDS); then its error. A store that answers that
    something is missing is not an outage: that error is raised at once."""
    if seconds is None:
        seconds = float(os.environ.get(RETRY_VARIABLE) or DEFAULT_RETRY_SECONDS)
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            return action()
        except (ValueNotFoundError, NotFoundError):
            raise
        except (StoreError, OSError) as error:
            if time.monotonic() + delay > deadline:
                raise
            print(f"kredun: {what}: {error}; retrying in {delay:.1f}s", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def job_spec(job: Any, execution_id: str) -> dict[str, Any]:
    """The JSON a worker needs to run `job` (its arguments must be references)."""
    task: TaskRef = job.task
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


def load_task(ref: TaskRef, fetch: Callable[[str], bytes]) -> Any:
    """The live task a reference names: its shipped code, else imported by module name."""
    import cloudpickle

    from .task import get_task

    if ref.code is not None:
        return cloudpickle.loads(ref.code.inline or fetch(ref.code.hash))
    import importlib

    try:
        importlib.import_module(ref.module)
    except ImportError as error:
        raise WorkflowLoadError(f"cannot import module {ref.module!r}: {error}") from None
    found = get_task(ref.fullname)
    if found is None:
        raise WorkflowLoadError(f"module {ref.module!r} defines no task {ref.fullname!r}")
    if found.hash != ref.hash:
        raise WorkflowLoadError(
            f"task {ref.fullname} in this image has hash {found.hash[:8]}, "
            f"but the job was planned for {ref.hash[:8]}: rebuild the image or resubmit"
        )
    return found


def run_job(spec: dict[str, Any], config: Config) -> Any:
    """Run the job a spec describes and record its result. Returns the task's return value;
    the task's own exception propagates."""
    from .scheduler import Scheduler

    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise PlanError("job spec is not a kredun job spec (version 1)")
    scheduler = Scheduler(config=config)
    try:

        def fetch(value_hash: str) -> bytes:
            return with_store_retries(
                "reading the job's input", lambda: scheduler.fetch_blob(value_hash)
            )

        task = load_task(_task_ref(spec["task_hash"], spec["task"]), fetch)
        args = [resolve(ref_from_json(a, f"args[{i}]"), fetch) for i, a in enumerate(spec["args"])]
        kwargs = {
            name: resolve(ref_from_json(a, f"kwargs[{name}]"), fetch)
            for name, a in spec["kwargs"].items()
        }
        result = task.func(*args, **kwargs)
        if graph.contains_expression(result):
            # Tasks here were loaded from shipped code or from the image: each is re-shipped
            # the same way.
            plan = with_store_retries(
                "storing the returned plan",
                lambda: encode_plan(result, scheduler.value_store.put, ship),
            )
            data = dumps_plan(plan)
            kind, result_hash = "plan", hash_bytes(data)
            type_text, preview_text = "kredun.plan", f"<plan of {len(plan['nodes'])} nodes>"
        else:
            kind = "value"
            result_hash, data = encode(result)
            type_text, preview_text = type_name(result), preview(result)

        def record() -> None:
            batch = ProvenanceBatch(
                tasks=[TaskRecord(task.hash, task.fullname, task.namespace, task.source)],
                values=[
                    store_value(scheduler.value_store, result_hash, data, type_text, preview_text)
                ],
            )
            batch.calls.append(
                CallRecord(
                    spec["eval_hash"], spec["task_hash"], spec["args_hash"], result_hash, kind
                )
            )
            scheduler.store.write(batch)

        with_store_retries("recording the result", record)
        return result
    finally:
        scheduler.close()


def load_spec(text: str) -> dict[str, Any]:
    try:
        return json.loads(text)
    except ValueError as error:
        raise PlanError(f"job spec is not valid JSON: {error}") from None


def materialize_plan(plan: dict[str, Any], fetch: Callable[[str], bytes]) -> Any:
    """The Python expression a plan describes: values unpickled, tasks loaded. Trusted code
    only (a laptop scheduler reading a remote job's returned expression)."""
    tasks = {key: load_task(_task_ref(key, data), fetch) for key, data in plan["tasks"].items()}
    built: list[Any] = []
    for spec in plan["nodes"]:
        if "value" in spec:
            built.append(resolve(ref_from_json(spec["value"]), fetch))
            continue
        if "call" in spec or "op" in spec:
            args = tuple(built[i] for i in spec.get("args", []))
            kwargs = {name: built[i] for name, i in spec.get("kwargs", {}).items()}
            if "call" in spec:
                task = tasks[spec["call"]]
                options = spec.get("options") or {}
                built.append((task.options(**options) if options else task)(*args, **kwargs))
            else:
                built.append(SimpleExpression(spec["op"], args, kwargs))
            continue
        kind = next(k for k in ("list", "tuple", "set", "dict", "namedtuple") if k in spec)
        items = [built[i] for i in spec[kind]]
        if kind == "dict":
            built.append(dict(zip(items[0::2], items[1::2], strict=True)))
        elif kind == "namedtuple":
            built.append(resolve(ref_from_json(spec["type"]), fetch)(*items))
        else:
            built.append({"list": list, "tuple": tuple, "set": set}[kind](items))
    return built[plan["root"]]
