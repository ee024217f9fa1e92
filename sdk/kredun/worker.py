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
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import graph
from .errors import NotFoundError, PlanError, StoreError, ValueNotFoundError, WorkflowLoadError
from .expression import SimpleExpression
from .hashing import hash_bytes
from .jobspec import SPEC_VERSION
from .outcome import (
    CLASSES_LIMIT,
    MESSAGE_LIMIT,
    OUTCOME_PATH_VARIABLE,
    OUTCOME_STORE_VARIABLE,
    PREVIEW_LIMIT,
    TYPE_LIMIT,
    Outcome,
    TaskFailure,
    outcome_key,
)
from .plan import TaskRef, _task_ref, dumps_plan, encode_plan
from .refs import ref_from_json, resolve
from .serialize import dumps, preview, ship, type_name
from .valuestore import ValueStore

BATCH_JOB_VARIABLE = "AWS_BATCH_JOB_ID"
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
    try:
        result = task.func(*args, **kwargs)
    except BaseException as error:
        return _failure(error, put), error
    if graph.contains_expression(result):
        # Tasks here were loaded from shipped code or from the image: each is re-shipped
        # the same way.
        plan = encode_plan(result, put, ship)
        data = dumps_plan(plan)
        outcome = Outcome(kind="plan", hash=hash_bytes(data), size=len(data), type="kredun.plan",
                          preview=f"<plan of {len(plan['nodes'])} nodes>")  # fmt: skip
    else:
        data = dumps(result)
        outcome = Outcome(kind="value", hash=hash_bytes(data), size=len(data),
                          type=type_name(result)[:TYPE_LIMIT],
                          preview=preview(result, PREVIEW_LIMIT), truth=_truth(result))  # fmt: skip
    put(outcome.hash, data)
    return outcome, None


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
