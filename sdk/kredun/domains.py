"""How a run treats values: as Python objects (in-process) or as references (operator).

The scheduler's reduction loop is the same for both; only these steps differ: building the
graph, assembling containers, reading a finished job's result and replaying cached ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import graph
from .errors import ExecutorError, SerializationError
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

if TYPE_CHECKING:
    from .executors import JobOutcome
    from .scheduler import Scheduler

# (kind, value, result hash); kind is "value", "expression" (a pickled expression) or
# "plan" (a JSON plan fragment).
Result = tuple[str, Any, str | None]


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
        results = {}
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
    """Operator side: values are references; workers record results, nothing is unpickled."""

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
        job = outcome.job
        call = self.scheduler.store.lookup_calls([job.eval_hash]).get(job.eval_hash)
        if call is None:
            raise ExecutorError(
                f"job {job.id[:8]} ({job.task.fullname}) ended without recording a result"
            )
        return self._result(call), None

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results the submitted code still computes: a fragment holding a task
        value that the submission defines differently is a miss."""
        results = {}
        for call in calls:
            if call.result_kind not in ("value", "plan"):
                continue
            result = self._result(call)
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
        if call.result_kind == "plan":
            return "plan", loads_plan(self.scheduler.fetch_blob(call.result_hash)), call.result_hash
        if call.result_kind != "value":
            raise ExecutorError(f"result of kind {call.result_kind!r} cannot be used here")
        return "value", ValueRef(call.result_hash), call.result_hash
