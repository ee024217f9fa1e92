"""Base of executors whose jobs run `kredun worker` somewhere else (a Pod, a Batch job).

Arguments and results cross through the value store of the job's cache scope, never
through the executor; jobs never see the provenance database. A job ends by reporting an
outcome (kredun.outcome) that names its result blob; `finished` fetches that blob with a
byte cap and checks it against the reported sha1 and size before anything is recorded.
Run by the operator, jobs already hold value references and results stay references (the
scheduler records provenance from the outcome). Run by a laptop scheduler, this class turns
Python arguments into references before launch and loads the verified result (a value, or
a plan fragment turned back into an expression) after the job ends.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from ..bounds import INLINE_VALUE_LIMIT
from ..domains import MAX_PLAN_BYTES
from ..errors import (
    FragmentError,
    KredunError,
    LimitExceededError,
    OutcomeError,
    RemoteTaskError,
    ResourceError,
)
from ..hashing import hash_bytes, hash_value
from ..jobspec import job_spec
from ..outcome import MAX_RESULT_BYTES, Outcome
from ..plan import INLINE_LIMIT, TaskRef, json_options
from ..provenance.fragment import MAX_FRAGMENT_BYTES, parse_fragment
from ..provenance.records import ProvenanceBatch
from ..refs import CompositeRef, DeferredRef, Ref, ValueRef
from ..resources import Resources
from ..retries import with_store_retries
from ..serialize import ship
from ..task import Task
from .base import Executor, ExecutorHost, JobOutcome, ReportOutcome

if TYPE_CHECKING:
    from ..job import Job
    from ..tasklike import TaskLike
    from ..valuestore import ValueStore


class RemoteExecutor(Executor):
    host: ExecutorHost

    def bind(self, host: ExecutorHost) -> None:
        self.host = host
        self._task_refs: dict[str, TaskRef] = {}  # by task hash: shipped once per executor

    def submit(self, job: Job, report: ReportOutcome, resources: Resources | None = None) -> None:
        """`resources`: what the job asks for, when not its task options' (a job falling
        back from another executor asks for what it asked there)."""
        if resources is None:
            try:
                resources = Resources.parse(job.task.option_values)
            except ResourceError as error:
                report(JobOutcome(job, error=ResourceError(f"task {job.task.fullname}: {error}")))
                return
        spec = job_spec(self._referenced(job), job.record.execution_id)
        self.launch(job, json.dumps(spec, separators=(",", ":")), report, resources)

    @abstractmethod
    def launch(self, job: Job, spec_json: str, report: ReportOutcome, resources: Resources) -> None:
        """Start `kredun worker` for the spec, asking for `resources` (None fields: the
        executor's defaults); call `self.finished(...)` when it ends."""

    @property
    def value_store(self) -> ValueStore:
        return self.host.stores.values

    def finished(self, job: Job, report: ReportOutcome, error: BaseException | None = None,
                 log_tail: str | None = None, outcome: Outcome | None = None,
                 attempts: int | None = None) -> None:  # fmt: skip
        """Report a job that ended: failed with `error` (`outcome`, if the job reported one,
        says what its task raised), or succeeded and reported `outcome`. `attempts`: those
        the executor made itself (see `JobOutcome.attempts`)."""
        fragment, problem = self._fragment(outcome)
        if error is not None:
            failure = outcome.error if outcome is not None else None
            if failure is not None and error.__cause__ is None:
                # What the task itself raised, for a catch to match by class name.
                error.__cause__ = RemoteTaskError(failure.message, failure.classes, failure.hash)
            received = JobOutcome(job, error=error, traceback=log_tail,
                                  error_classes=failure.classes if failure else (),
                                  error_hash=failure.hash if failure else None)  # fmt: skip
        else:
            try:
                received = self._received(job, outcome)
            except Exception as failure:
                received = JobOutcome(job, error=failure, traceback=log_tail)
        received.attempts = attempts
        received.provenance, received.provenance_problem = fragment, problem
        report(received)

    def _fragment(self, outcome: Outcome | None) -> tuple[ProvenanceBatch | None, str | None]:
        """The provenance fragment a subrun job reported (kredun.provenance.fragment),
        fetched with a byte cap, checked against its sha1 and size and parsed; or why none
        is recorded. A bad fragment never fails the job: it is only left out."""
        if outcome is None:
            return None, None
        if outcome.provenance_dropped is not None:
            return None, (f"its nested run's provenance ({outcome.provenance_dropped} jobs) was "
                          "too large to bring back and is not recorded")  # fmt: skip
        named = outcome.provenance
        if named is None:
            return None, None
        try:
            if named.size > MAX_FRAGMENT_BYTES:
                raise FragmentError(f"it is {named.size} bytes, over the limit of "
                                    f"{MAX_FRAGMENT_BYTES}")  # fmt: skip
            data = with_store_retries(
                "reading a job's provenance fragment",
                lambda: self.value_store.get(named.hash, max_bytes=named.size),
            )
            actual = hash_bytes(data)
            if (actual, len(data)) != (named.hash, named.size):
                raise FragmentError(f"the value store holds {len(data)} bytes of sha1 {actual} "
                                    "under it: hash mismatch")  # fmt: skip
            return parse_fragment(data), None
        except (KredunError, OSError) as error:
            return None, f"its provenance fragment {named.hash} is not recorded: {error}"

    def _received(self, job: Job, outcome: Outcome | None) -> JobOutcome:
        """The outcome of a job that exited successfully, its result blob verified. The
        operator holds the bytes of a plan (to decode it) and of a value small enough to
        keep inline in its row; a larger value is only hashed, in chunks, where it lies."""
        where = f"job {job.id[:8]} ({job.task.fullname})"
        if outcome is None or outcome.error is not None:
            raise OutcomeError(f"{where} exited successfully without reporting a result")
        limit = MAX_PLAN_BYTES if outcome.kind == "plan" else MAX_RESULT_BYTES
        if outcome.size > limit:
            raise LimitExceededError(
                f"{where}: result {outcome.hash} is {outcome.size} bytes, over the limit of {limit}"
            )
        store = self.value_store
        held = outcome.kind == "plan" or not job.references or outcome.size <= INLINE_VALUE_LIMIT
        data: bytes | None = None

        def read() -> tuple[str, int]:
            nonlocal data
            if not held:
                return store.digest(outcome.hash, max_bytes=outcome.size)
            data = store.get(outcome.hash, max_bytes=outcome.size)
            return hash_bytes(data), len(data)

        claimed = f"{where} reported result {outcome.hash} ({outcome.size} bytes), but the "
        try:
            # A value-store outage pauses here, as elsewhere.
            actual, size = with_store_retries("reading a job's result", read)
        except LimitExceededError:
            raise OutcomeError(
                f"{claimed}value store holds more bytes under it: hash mismatch"
            ) from None
        if (actual, size) != (outcome.hash, outcome.size):
            raise OutcomeError(
                f"{claimed}value store holds {size} bytes of sha1 {actual} under it: hash mismatch"
            )
        # The run's value domain takes it from here: the operator's records the verified
        # blob, never unpickling it; a laptop's loads the value (or the plan) from `data`.
        return JobOutcome(job, result=outcome, data=data, truth=outcome.truth)

    def _reference(self, value: Any) -> Ref:
        if isinstance(value, ValueRef | CompositeRef | DeferredRef):
            return value
        # Shipped, not plainly pickled: a value may hold functions or tasks of a workflow
        # file (a subrun's expression does) that the job's image cannot import.
        value_hash, data = hash_value(value), ship(value)
        if len(data) <= INLINE_LIMIT:
            return ValueRef(value_hash, data)
        self.value_store.put(value_hash, data)
        return ValueRef(value_hash)

    def _referenced(self, job: Job) -> Job:
        """The job with its arguments as references (a laptop run passes Python values)."""
        if job.references:
            return job
        from dataclasses import replace

        return replace(
            job,
            args=[self._reference(value) for value in job.args],
            kwargs={name: self._reference(value) for name, value in job.kwargs.items()},
            task=self._task_reference(job.task),
        )

    def _task_reference(self, task: TaskLike) -> TaskLike:
        """A plan task reference for a task defined here, its code shipped in the value
        store (a plan's reference already names its code)."""
        if not isinstance(task, Task):
            return task
        shipped = self._task_refs.get(task.hash)
        if shipped is None:
            code = ship(task)
            code_hash = hash_bytes(code)
            self.value_store.put(code_hash, code)
            module = getattr(task.func, "__module__", "")
            shipped = TaskRef(task.fullname, task.hash, module, task.parameters,
                              ValueRef(code_hash))  # fmt: skip
            self._task_refs[task.hash] = shipped
        return shipped.options(**json_options(task.option_values))
