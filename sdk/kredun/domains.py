"""How a run treats values: as Python objects (in-process) or as references (operator).

The scheduler's reduction loop is the same for both; only these steps differ: building the
graph, assembling containers, reading a finished job's result and replaying cached ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from . import graph
from .errors import (
    ExecutorError,
    InvalidHashError,
    LimitExceededError,
    PlanError,
    SerializationError,
    ValueNotFoundError,
)
from .hashing import encode, hash_bytes
from .plan import (
    TaskRef,
    assemble_reference,
    current_tasks,
    decode_plan,
    loads_plan,
    stale_task_values,
)
from .provenance.records import CallRecord
from .refs import ValueRef
from .serialize import dumps, loads
from .task import collecting_task_values
from .validity import checking_staleness, collecting_external
from .valuestore import check_hash

if TYPE_CHECKING:
    from .executors import JobOutcome
    from .scheduler import Scheduler

# (kind, value, result hash); kind is "value", "expression" (a pickled expression) or
# "plan" (a JSON plan fragment).
Result = tuple[str, Any, str | None]

# The largest plan (or plan fragment a job returns) the operator reads. A plan is a few
# hundred bytes per node: this allows about 100,000 nodes, and bounds what one Execution
# can make the operator hold in memory.
MAX_PLAN_BYTES = 64 * 1024 * 1024


def fetch_plan(scheduler: Scheduler, plan_hash: str) -> bytes:
    """A plan's JSON bytes from the scheduler's stores, at most MAX_PLAN_BYTES of them;
    InvalidHashError, LimitExceededError or ValueNotFoundError otherwise."""
    check_hash(plan_hash)
    data = scheduler.store.value_data([plan_hash]).get(plan_hash)
    if data is None:
        data = scheduler.value_store.get(plan_hash, max_bytes=MAX_PLAN_BYTES)
    if len(data) > MAX_PLAN_BYTES:
        raise LimitExceededError(
            f"plan {plan_hash[:8]} is {len(data)} bytes, over the limit of {MAX_PLAN_BYTES}"
        )
    return data


class ValueDomain(Protocol):
    """What the scheduler relies on in the values it reduces: Python objects in-process
    (`TrustedValues`), references the operator must not unpickle (`ReferencedValues`)."""

    records_results: bool  # whether results are Python values the scheduler serializes

    def build(self, expr: Any, owner: Any) -> tuple[graph.Node, list[graph.Node]]:
        """Graph nodes for an expression (or a plan): (root, nodes ready to reduce)."""

    def assemble(self, node: graph.Node) -> Any:
        """The value of a container node whose children are resolved."""

    def job_result(self, outcome: JobOutcome) -> tuple[Result, bytes | None]:
        """A finished job's result, and its bytes when the scheduler is to record them."""

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results by eval hash; a result that cannot be loaded is a cache miss."""


class TrustedValues:
    """In-process: values are Python objects; the scheduler serializes and records results."""

    records_results = True

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def build(self, expr: Any, owner: Any) -> tuple[graph.Node, list[graph.Node]]:
        return graph.build(expr, owner)

    def assemble(self, node: graph.Node) -> Any:
        return graph.assemble(node)

    def job_result(self, outcome: JobOutcome) -> tuple[Result, bytes | None]:
        """The result and, when it can be cached, its serialized bytes."""
        value = outcome.value
        with collecting_task_values() as task_values, collecting_external() as external:
            if not graph.contains_expression(value):
                value_hash, data = encode(value)
                received = outcome.result
                if received is not None and received.kind == "value" and outcome.data is not None:
                    # A remote job's value is identified by the bytes it stored, which were
                    # checked (encoding above still collects the task values and Files in it).
                    value_hash, data = received.hash, outcome.data
                result: Result = ("value", value, value_hash)
            else:
                try:
                    data = dumps(value)
                except SerializationError:
                    # A returned graph too deep to pickle is evaluated, just not cached.
                    return ("expression", value, None), None
                result = ("expression", value, hash_bytes(data))
        if task_values:
            self.scheduler._result_task_values[outcome.job.eval_hash] = task_values
        if external:
            self.scheduler._result_external[outcome.job.eval_hash] = external
        return result, data

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results that the current code would still compute: one that holds a task
        value whose definition changed (or a call of a task no longer defined) is a miss."""
        results: dict[str, Result] = {}
        for call in calls:
            try:
                with checking_staleness() as problems, collecting_external() as external:
                    value = loads(self.scheduler.fetch_blob(call.result_hash))
            except Exception:  # a missing or unreadable blob is a cache miss, not a failure
                continue
            if problems:
                self.scheduler.logger.info(
                    "Miss   cached result %s is no longer valid: %s",
                    call.eval_hash[:8], "; ".join(dict.fromkeys(problems)),
                )  # fmt: skip
                continue
            results[call.eval_hash] = (call.result_kind, value, call.result_hash)
            if external:
                self.scheduler._result_external[call.eval_hash] = external
        return results


class ReferencedValues:
    """Operator side: values are references; nothing is unpickled. Jobs report results
    through outcomes; the scheduler records them."""

    records_results = False

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.current_tasks: dict[str, TaskRef] = {}

    def build(self, expr: Any, owner: Any) -> tuple[graph.Node, list[graph.Node]]:
        if owner is None:  # the submitted plan: its registry is the current code
            self.current_tasks = current_tasks(expr)
        return decode_plan(expr, owner, self.current_tasks)

    def assemble(self, node: graph.Node) -> Any:
        return assemble_reference(node)

    def job_result(self, outcome: JobOutcome) -> tuple[Result, bytes | None]:
        """The result a job reported, its blob already checked against the reported hash
        (RemoteExecutor.finished): a value reference, or the plan fragment, decoded with
        its byte and depth caps. The bytes, when held (a plan, a value small enough to keep
        inline), are returned for the scheduler to record."""
        received, data = outcome.result, outcome.data
        if received is None or (received.kind == "plan" and data is None):
            job = outcome.job
            raise ExecutorError(
                f"job {job.id[:8]} ({job.task.fullname}) ended without reporting a result"
            )
        if received.kind == "plan":
            assert data is not None
            return self._plan(data, received.hash), data
        return ("value", ValueRef(received.hash), received.hash), data

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results the submitted code still computes: a fragment holding a task
        value that the submission defines differently is a miss."""
        results: dict[str, Result] = {}
        for call in calls:
            if call.result_kind not in ("value", "plan"):
                continue
            try:
                result = self._result(call)
            except (InvalidHashError, LimitExceededError, PlanError, ValueNotFoundError):
                continue  # an unusable row is a cache miss: the call runs again
            if call.result_kind == "plan":
                stale = stale_task_values(result[1], self.current_tasks)
                if stale:
                    self.scheduler.logger.info(
                        "Miss   cached result %s is no longer valid: task %s was edited",
                        call.eval_hash[:8], ", ".join(sorted(set(stale))),
                    )  # fmt: skip
                    continue
            results[call.eval_hash] = result
        return results

    def _result(self, call: CallRecord) -> Result:
        result_hash = check_hash(call.result_hash)
        if call.result_kind == "plan":
            return self._plan(fetch_plan(self.scheduler, result_hash), result_hash)
        if call.result_kind != "value":
            raise ExecutorError(f"result of kind {call.result_kind!r} cannot be used here")
        return "value", ValueRef(result_hash), result_hash

    @staticmethod
    def _plan(data: bytes, plan_hash: str) -> Result:
        if len(data) > MAX_PLAN_BYTES:
            raise LimitExceededError(
                f"plan {plan_hash[:8]} is {len(data)} bytes, over the limit of {MAX_PLAN_BYTES}"
            )
        try:
            return "plan", loads_plan(data), plan_hash
        except RecursionError:
            raise PlanError(f"plan {plan_hash[:8]} is nested too deeply to read") from None
