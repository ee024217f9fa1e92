"""The in-process value domain: values are Python objects, so replaying a cached result
unpickles it. Only the SDK's own runs use it: the scheduler finds it by name when a run
names no domain (`kredun.scheduler.DEFAULT_VALUES`), so the operator, which imports the
scheduler, never imports this module or the loader it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import graph
from .control import map_nested
from .deserialize import loads, materialize_plan
from .domains import Result, ResultNotes, ValueStores, logger
from .errors import RemoteTaskError, SerializationError
from .expression import Expression, SimpleExpression
from .hashing import encode, hash_bytes
from .plan import loads_plan
from .provenance.records import CallRecord
from .serialize import dumps
from .task import collecting_task_values
from .validity import checking_staleness, collecting_external

if TYPE_CHECKING:
    from .executors import JobOutcome


class TrustedValues:
    """In-process: values are Python objects; the scheduler serializes and records results."""

    records_results = True

    def __init__(self, stores: ValueStores, notes: ResultNotes) -> None:
        self.stores = stores
        self.notes = notes

    def build(self, expr: Any, owner: Any) -> tuple[graph.Node, list[graph.Node]]:
        return graph.build(expr, owner)

    def assemble(self, node: graph.Node) -> Any:
        return graph.assemble(node)

    def job_result(self, outcome: JobOutcome) -> tuple[Result, bytes | None]:
        """The result and, when it can be cached, its serialized bytes. A remote job's
        result arrives as verified bytes (kredun.outcome): loaded here."""
        value = outcome.value
        if outcome.result is not None and outcome.data is not None:
            value = self._received(outcome.result.kind, outcome.data)
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
            self.notes.task_values[outcome.job.eval_hash] = task_values
        if external:
            self.notes.external[outcome.job.eval_hash] = external
        return result, data

    def truth(self, value: Any) -> bool:
        return bool(value)

    def truth_test(self, value: Any) -> Any:
        return SimpleExpression("truth", (value,), {})

    def files_check(self, result: Result) -> None:
        # Files in a cached result were checked when it was loaded (or kept in the notes).
        return None

    def error_matches(self, error: BaseException, error_class: Any) -> bool:
        return isinstance(self._task_error(error), error_class)

    def call(self, function: Any, argument: Any) -> Any:
        if isinstance(argument, BaseException) or type(argument) in (list, tuple, dict):
            # A recovery's error, or catch_all's values holding errors.
            argument = map_nested(argument, self._task_error)
        return function(argument)

    def evaluable(self, item: Any) -> bool:
        return isinstance(item, Expression)

    def _task_error(self, error: Any) -> Any:
        """What the task raised: for a job that ran elsewhere (a Pod), the exception it
        pickled into the value store, when it could; else `error` itself."""
        cause = error.__cause__ if isinstance(error, BaseException) else None
        if not isinstance(cause, RemoteTaskError) or cause.value_hash is None:
            return error
        try:
            raised = loads(self.stores.fetch_blob(cause.value_hash))
        except Exception:  # a missing or unloadable blob: the executor's error stands
            return error
        return raised if isinstance(raised, BaseException) else error

    def serialize_expression(self, expr: Any) -> tuple[str, bytes]:
        return "expression", dumps(expr)

    def handler_value(self, value: Any) -> Any:
        return value

    def _received(self, kind: str, data: bytes) -> Any:
        if kind == "plan":
            return materialize_plan(loads_plan(data), self.stores.fetch_blob)
        return loads(data)

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results that the current code would still compute: one that holds a task
        value whose definition changed (or a call of a task no longer defined) is a miss."""
        results: dict[str, Result] = {}
        for call in calls:
            try:
                with checking_staleness() as problems, collecting_external() as external:
                    value = loads(self.stores.fetch_blob(call.result_hash))
            except Exception:  # a missing or unreadable blob is a cache miss, not a failure
                continue
            if problems:
                logger.info(
                    "Miss   cached result %s is no longer valid: %s",
                    call.eval_hash[:8], "; ".join(dict.fromkeys(problems)),
                )  # fmt: skip
                continue
            results[call.eval_hash] = (call.result_kind, value, call.result_hash)
            if external:
                self.notes.external[call.eval_hash] = external
        return results
