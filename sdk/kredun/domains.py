"""How a run treats values: as Python objects (in-process) or as references (operator).

The scheduler's reduction loop is the same for both; only these steps differ: building the
graph, assembling containers, reading a finished job's result and replaying cached ones.
This module holds the interface and the operator's `ReferencedValues`; the in-process
domain unpickles, so it lives apart (`kredun.trusted_values`), where the operator's imports
cannot reach it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from . import graph
from .errors import (
    ExecutorError,
    InvalidHashError,
    LimitExceededError,
    PlanError,
    RemoteTaskError,
    ValueNotFoundError,
)
from .hashing import encode
from .plan import (
    ErrorClassNames,
    PlanFunction,
    SubPlan,
    TaskRef,
    apply_function,
    assemble_reference,
    current_tasks,
    decode_plan,
    dumps_plan,
    files_valid_ref,
    list_plan,
    loads_plan,
    stale_task_values,
)
from .provenance.records import CallRecord
from .refs import CompositeRef, Ref, ValueRef
from .valuestore import check_hash

if TYPE_CHECKING:
    from .executors import JobOutcome
    from .provenance.base import ProvenanceBackend

# The scheduler's logger (configured by kredun.scheduler): cache misses show in its log.
logger = logging.getLogger("kredun")

# (kind, value, result hash); kind is "value", "expression" (a pickled expression) or
# "plan" (a JSON plan fragment).
Result = tuple[str, Any, str | None]

# The largest plan (or plan fragment a job returns) the operator reads. A plan is a few
# hundred bytes per node: this allows about 100,000 nodes, and bounds what one Execution
# can make the operator hold in memory.
MAX_PLAN_BYTES = 64 * 1024 * 1024
# The message of an error a recovery receives in place of one its job could not pickle.
_STAND_IN_MESSAGE_LIMIT = 2000


def error_class_names(error: BaseException) -> tuple[str, ...]:
    """`module.QualName` of the classes along an error's MRO: those its job reported, when a
    task raised it elsewhere (a RemoteTaskError cause), else those of kredun's own error."""
    cause = error.__cause__
    if isinstance(cause, RemoteTaskError) and cause.classes:
        return cause.classes
    return tuple(f"{kind.__module__}.{kind.__qualname__}"
                 for kind in type(error).__mro__ if kind is not object)  # fmt: skip


class BlobSource(Protocol):
    def fetch_blob(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        """A serialized value by hash; LimitExceededError rather than over `max_bytes`."""


class ValueStores(BlobSource, Protocol):
    """What value domains rely on in the stores (`kredun.stores.Stores` is one)."""

    @property
    def provenance(self) -> ProvenanceBackend: ...


@dataclass
class ResultNotes:
    """What a scheduler remembers about the results it knows, by eval hash, beyond the
    results themselves: a result is replayed only while these are unchanged. Kept by the
    scheduler across runs, written by its value domain."""

    task_values: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> hash
    external: dict[str, list[Any]] = field(default_factory=dict)  # Files, Dirs


def fetch_plan(stores: BlobSource, plan_hash: str) -> bytes:
    """A plan's JSON bytes from the stores, at most MAX_PLAN_BYTES of them;
    InvalidHashError, LimitExceededError or ValueNotFoundError otherwise."""
    return stores.fetch_blob(check_hash(plan_hash), max_bytes=MAX_PLAN_BYTES)


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

    def truth(self, value: Any) -> bool | None:
        """bool(value), or None when this domain does not know it."""

    def truth_test(self, value: Any) -> Any:
        """An expression whose value has the truth of `value`, known once it is evaluated."""

    def files_check(self, result: Result) -> Any | None:
        """An expression true iff the files a cached result holds are unchanged, when this
        domain must evaluate one before replaying the result; None to replay it as it is."""

    def error_matches(self, error: BaseException, error_class: Any) -> bool:
        """Whether `error` is an instance of `error_class` (classes, or a plan's names)."""

    def call(self, function: Any, argument: Any) -> Any:
        """The expression `function(argument)` (a recovery's call with its error, or with a
        nested value holding errors; map_'s call with an item)."""

    def evaluable(self, item: Any) -> bool:
        """Whether a scheduler task's argument is still to be evaluated."""

    def serialize_expression(self, expr: Any) -> tuple[str, bytes]:
        """(result kind, bytes) recording `expr` as a call's result (a catch's recovery)."""

    def handler_value(self, value: Any) -> Any:
        """A value a scheduler task's handler made (None, a list of values), as this domain
        holds values."""


# How a scheduler makes the value domain of a run: from its stores and its result notes.
ValueDomainFactory = Callable[[ValueStores, ResultNotes], ValueDomain]


class ReferencedValues:
    """Operator side: values are references; nothing is unpickled. Jobs report results
    through outcomes; the scheduler records them."""

    records_results = False

    def __init__(self, stores: ValueStores, notes: ResultNotes) -> None:
        # `notes` stays unused: the workers that run the jobs read what results hold.
        self.stores = stores
        self.current_tasks: dict[str, TaskRef] | None = None
        # bool() of values by hash, as the jobs that made them (or the submitter, for a
        # plan's literals, or provenance, for cached results) reported it.
        self.truths: dict[str, bool] = {}
        # Whether values hold a File or Dir, by hash, as their jobs reported (provenance,
        # for cached ones; a row from before schema 0006 says no).
        self.holds_files: dict[str, bool] = {}

    def build(self, expr: Any, owner: Any) -> tuple[graph.Node, list[graph.Node]]:
        if isinstance(expr, SubPlan):  # a control node's argument
            try:
                return decode_plan(expr.plan, owner, self.current_tasks, self.truths.setdefault)
            except PlanError as error:
                raise PlanError(f"{expr.where}: {error}") from None
        if isinstance(expr, list):  # map_'s calls, one plan each
            expr = list_plan(expr)
        if self.current_tasks is None:  # the submitted plan: its registry is the current code
            self.current_tasks = current_tasks(expr)
        return decode_plan(expr, owner, self.current_tasks, self.truths.setdefault)

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
        if outcome.truth is not None:
            self.truths[received.hash] = outcome.truth
        self.holds_files[received.hash] = received.files
        return ("value", ValueRef(received.hash), received.hash), data

    def load_results(self, calls: Iterable[CallRecord]) -> dict[str, Result]:
        """Cached results the submitted code still computes: a fragment holding a task
        value that the submission defines differently is a miss."""
        results: dict[str, Result] = {}
        calls = list(calls)
        self._note_holds_files(call.result_hash for call in calls if call.result_kind == "value")
        for call in calls:
            if call.result_kind not in ("value", "plan"):
                continue
            try:
                result = self._result(call)
            except (InvalidHashError, LimitExceededError, PlanError, ValueNotFoundError):
                continue  # an unusable row is a cache miss: the call runs again
            if call.result_kind == "plan":
                stale = stale_task_values(result[1], self.current_tasks or {})
                if stale:
                    logger.info(
                        "Miss   cached result %s is no longer valid: task %s was edited",
                        call.eval_hash[:8], ", ".join(sorted(set(stale))),
                    )  # fmt: skip
                    continue
            results[call.eval_hash] = result
        return results

    def truth(self, value: Any) -> bool | None:
        """Known for a value a job reported on, a literal the submitter described, or a
        cached value whose row holds it; never guessed (a container, an operation: None)."""
        if not isinstance(value, ValueRef):
            return None
        if value.hash not in self.truths:
            record = self.stores.provenance.value_records([value.hash]).get(value.hash)
            if record is None or record.truth is None:
                return None
            self.truths[value.hash] = record.truth
        return self.truths[value.hash]

    def truth_test(self, value: Ref) -> dict[str, Any]:
        """A plan testing `value` in a job (the built-in operation task), which reports it."""
        return {
            "version": 1, "tasks": {}, "root": 1,
            "nodes": [{"value": value.to_json()}, {"op": "truth", "args": [0], "kwargs": {}}],
        }  # fmt: skip

    def files_check(self, result: Result) -> dict[str, Any] | None:
        """For a value its job reported holding Files or Dirs: a plan calling the built-in
        `kredun.files_valid` on it in a job (the operator cannot look inside the value)."""
        kind, value, _ = result
        if kind != "value" or not isinstance(value, ValueRef):
            return None
        if value.hash not in self.holds_files:
            self._note_holds_files([value.hash])
        if not self.holds_files[value.hash]:
            return None
        check = files_valid_ref()
        return {
            "version": 1, "tasks": {check.hash: check.to_json()}, "root": 1,
            "nodes": [{"value": value.to_json()}, {"call": check.hash, "args": [0], "kwargs": {}}],
        }  # fmt: skip

    def _note_holds_files(self, hashes: Iterable[str]) -> None:
        """Read, in one query, whether the values among `hashes` not yet known hold files."""
        unknown = {value_hash for value_hash in hashes if value_hash not in self.holds_files}
        if not unknown:
            return
        records = self.stores.provenance.value_records(unknown)
        for value_hash in unknown:
            record = records.get(value_hash)
            self.holds_files[value_hash] = record is not None and bool(record.holds_files)

    def error_matches(self, error: BaseException, error_class: Any) -> bool:
        if not isinstance(error_class, ErrorClassNames):
            raise PlanError(f"a catch names exception classes by name, not {error_class!r}")
        names = error_class_names(error)
        return any(name in names for name in error_class.names)

    def call(self, function: Any, argument: Any) -> dict[str, Any]:
        if not isinstance(function, PlanFunction):
            raise PlanError(f"a plan calls a function plan, not {function!r}")
        if isinstance(argument, SubPlan):  # map_'s item, evaluated as the call's argument
            return apply_function(function, argument.plan)
        return apply_function(function, self._reference(argument))

    def evaluable(self, item: Any) -> bool:
        return isinstance(item, SubPlan)

    def _reference(self, value: Any) -> Ref:
        """A value a handler holds as a reference: references as they are; errors as the
        exception their recovery receives; None, text (dict keys), lists, tuples and dicts
        of these as the references the operator may make (pickling plain data is safe)."""
        if isinstance(value, Ref):
            return value
        if isinstance(value, BaseException):
            return self._error_value(value)
        if value is None or isinstance(value, str):
            return ValueRef(*encode(value))
        if type(value) is list or type(value) is tuple:
            return CompositeRef(type(value).__name__, tuple(map(self._reference, value)))
        if type(value) is dict:
            items = [self._reference(part) for pair in value.items() for part in pair]
            return CompositeRef("dict", tuple(items))
        raise PlanError(f"a scheduler task made {type(value).__name__}, not a reference")

    @staticmethod
    def _error_value(error: BaseException) -> ValueRef:
        """The exception a recovery receives: the task's own, as its job pickled it, or a
        RemoteTaskError with its message and class names (pickling plain data here is safe;
        only loading is not)."""
        cause = error.__cause__
        if isinstance(cause, RemoteTaskError) and cause.value_hash is not None:
            return ValueRef(check_hash(cause.value_hash))
        message = str(cause) if isinstance(cause, RemoteTaskError) else str(error)
        stand_in = RemoteTaskError(message[:_STAND_IN_MESSAGE_LIMIT], error_class_names(error))
        return ValueRef(*encode(stand_in))

    def serialize_expression(self, expr: Any) -> tuple[str, bytes]:
        return "plan", dumps_plan(expr)

    def handler_value(self, value: Any) -> Ref:
        """None (a cond with no else taken), or containers of references (seq's list,
        catch_all's values): containers hash as the in-process values they stand for."""
        return self._reference(value)

    def _result(self, call: CallRecord) -> Result:
        result_hash = check_hash(call.result_hash)
        if call.result_kind == "plan":
            return self._plan(fetch_plan(self.stores, result_hash), result_hash)
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
