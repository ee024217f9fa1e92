"""The scheduler: reduces an expression graph to a value.

Each tick it reduces every ready node: containers and simple operations are assembled in
place; task calls are hashed, matched against calls already running (common
sub-expression elimination), looked up in the cache in one batch, and the rest dispatched
to executors. Finished jobs substitute their results into the graph; a job that returns
an expression grows the graph. Provenance is buffered and written in batches.
"""

from __future__ import annotations

import gc
import logging
import queue
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from . import graph
from .config import Config, config_from_dict
from .domains import ReferencedValues, Result, TrustedValues, ValueDomain
from .errors import CancelledError, KredunError, NotFoundError, SerializationError
from .executors import Executor, JobOutcome, create_executor
from .expression import TaskExpression
from .graph import Node
from .hashing import hash_bytes, hash_eval, hash_value
from .job import Job
from .options import retry_limit
from .provenance.base import ProvenanceBackend
from .provenance.memory import MEMORY_URI, open_provenance_store
from .provenance.records import (
    CallRecord,
    ExecutionRecord,
    JobRecord,
    ProvenanceBatch,
    TaskRecord,
)
from .serialize import dumps, loads, preview, type_name
from .task import Task, changed_tasks, current_definition
from .validity import stale_reasons
from .valuestore import ValueStore, open_value_store, store_value

_CONTROL_KINDS = (graph.CONTROL, graph.CONTINUE)
# subrun's task: its second argument configures the nested scheduler it starts.
SUBRUN_TASK = "kredun.subrun"
FLUSH_INTERVAL = 0.5  # seconds between provenance writes during a run
FLUSH_ROWS = 20_000

# Columns of the job status table, in order; DONE includes CACHED, as in redun.
STATUSES = ("PENDING", "RUNNING", "FAILED", "CACHED", "DONE")
PENDING, RUNNING, FAILED, CACHED, DONE = range(5)


def _make_logger() -> logging.Logger:
    log = logging.getLogger("kredun")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[kredun] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def _now() -> datetime:
    return datetime.now(UTC)


Progress = Callable[[dict[str, list[int]]], None]


class StopToken(Protocol):
    """Asks a run to stop: a `threading.Event` is one. Checked once per scheduler tick."""

    def is_set(self) -> bool: ...


class Scheduler:
    """Evaluates expressions. `Scheduler()` keeps everything in memory; pass `db_uri` (or a
    config) to share the cache and provenance across runs and processes."""

    def __init__(
        self,
        db_uri: str | None = None,
        *,
        config: Config | dict[str, Any] | None = None,
        value_store: str | None = None,
    ) -> None:
        # A copy: the defaults filled in below must not leak into the caller's Config.
        if isinstance(config, Config):
            self.config = replace(config, executors=dict(config.executors))
        else:
            self.config = config_from_dict(config or {})
        self.config.database_uri = db_uri or self.config.database_uri or MEMORY_URI
        self.config.value_store_uri = value_store or self.config.value_store_uri or "memory://"
        self.logger = _make_logger()
        self._store: ProvenanceBackend | None = None
        self._values: ValueStore | None = None
        self._executors: dict[str, Executor] = {}
        # Results known to this scheduler, by eval hash: served without a database query.
        self._results: dict[str, Result] = {}
        # A private in-memory database holds only what _results already has.
        self._results_are_complete = self.config.database_uri in (
            MEMORY_URI,
            "sqlite://",
            "sqlite:///:memory:",
        )
        # Task values held by results in _results (name -> hash), for the results that
        # hold any: such a result is replayed only while those definitions are unchanged.
        self._result_task_values: dict[str, dict[str, str]] = {}
        # Files and Dirs held by results in _results: replayed only while they are unchanged.
        self._result_external: dict[str, list[Any]] = {}
        self._recorded_tasks: set[str] = set()
        self._recorded_values: set[str] = set()

    @property
    def store(self) -> ProvenanceBackend:
        if self._store is None:
            store = open_provenance_store(
                self.config.require_database_uri(),
                self.config.cache_scope,
                self.config.database_pool_size,
            )
            store.ensure_schema()
            self._store = store
        return self._store

    @property
    def value_store(self) -> ValueStore:
        if self._values is None:
            self._values = open_value_store(
                self.config.require_value_store_uri(), self.config.cache_scope
            )
        return self._values

    def executor(self, name: str) -> Executor:
        if name not in self._executors:
            executor = create_executor(name, self.config.executor_options(name))
            executor.bind(self)
            self._executors[name] = executor
        return self._executors[name]

    def run(
        self,
        expr: Any,
        *,
        cache: bool = True,
        label: str | None = None,
        progress: Progress | None = None,
        execution_id: str | None = None,
        values: type[TrustedValues] | type[ReferencedValues] = TrustedValues,
        stop: StopToken | None = None,
    ) -> Any:
        """Evaluate `expr` and return its value. A task's exception is re-raised as is.

        `values=ReferencedValues` evaluates a plan (a dict) over value references, as the
        operator does; `execution_id` lets a resumed execution keep its identity. Once
        `stop` is set (from any thread), the run ends within a tick: running jobs are shut
        down and CancelledError is raised."""
        run = _ExecutionRun(self, expr, cache, label, progress, values(self), execution_id)
        run.stop = stop
        return run.run()

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown()
        self._executors.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def fetch_blob(self, value_hash: str) -> bytes:
        """A serialized value: inline in the database when small, else in the value store."""
        data = self.store.value_data([value_hash]).get(value_hash)
        return data if data is not None else self.value_store.get(value_hash)

    def load_value(self, value_hash: str) -> Any:
        return loads(self.fetch_blob(value_hash))


class _Failure:
    """The first error of a run: re-raised to the caller once running jobs have stopped."""

    def __init__(self, error: BaseException, traceback_text: str | None, where: str) -> None:
        self.error = error
        self.traceback = traceback_text
        self.where = where


class _ExecutionRun:
    """The state of one `Scheduler.run()` call."""

    def __init__(
        self,
        scheduler: Scheduler,
        expr: Any,
        cache: bool,
        label: str | None,
        progress: Progress | None,
        values: ValueDomain,
        execution_id: str | None,
    ) -> None:
        self.scheduler = scheduler
        self.values = values
        self.logger = scheduler.logger
        self.expr = expr
        self.cache = cache
        self.progress = progress
        self.id = uuid.UUID(execution_id) if execution_id else uuid.uuid4()
        # An execution id given may continue an execution an earlier process began (the
        # operator after a restart): its rows, by eval hash, are continued, not duplicated.
        self.resumes = execution_id is not None
        self.earlier: dict[str | None, list[JobRecord]] = {}
        self.record = ExecutionRecord(
            id=self.id.hex,
            args=label or preview(expr, 500),
            status="RUNNING",
            start_time=_now(),
        )
        self.ready: deque[Node] = deque()
        self.to_check: list[tuple[Node, str, str]] = []
        self.outcomes: queue.SimpleQueue[JobOutcome] = queue.SimpleQueue()
        self.in_flight: dict[str, Job] = {}
        self.running = 0
        self.counts: dict[str, list[int]] = {}
        self.failure: _Failure | None = None
        self.stop: StopToken | None = None
        self.verbose = self.logger.isEnabledFor(logging.INFO)
        # Provenance not yet written.
        self.dirty_jobs: dict[str, JobRecord] = {}
        self.pending = ProvenanceBatch()
        self.last_flush = time.monotonic()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Any:
        # Every job allocates graph nodes and records that live until the run ends; with the
        # default thresholds the collector rescans them all thousands of times per run.
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
        try:
            return self._run()
        finally:
            gc.set_threshold(*thresholds)

    def _run(self) -> Any:
        started = time.monotonic()
        self.scheduler.store  # noqa: B018 -- a bad database fails here, before anything runs
        if self.resumes:
            self._load_earlier()
        self.logger.info("Start Execution %s:  kredun %r", self.id, self.record.args)
        self.pending.executions.append(self.record)
        try:
            return self._reduce()
        except BaseException as error:
            cancelled = isinstance(error, KeyboardInterrupt | CancelledError)
            self._finish("CANCELLED" if cancelled else "FAILED", error)
            raise
        finally:
            if self.progress is not None:
                self.progress(self.counts)
            if self.verbose:
                log_status_table(self.logger, self.counts, time.monotonic() - started)

    def _reduce(self) -> Any:
        root, ready = self.values.build(self.expr, None)
        self.root = root
        self.ready.extend(ready)
        while not root.resolved:
            if self.stop is not None and self.stop.is_set():
                raise CancelledError(f"execution {self.record.args} stopped")
            self._reduce_ready()
            if root.resolved:
                break
            if self.running == 0:
                if self.failure is None:
                    raise KredunError("scheduler stalled: nothing ready and nothing running")
                break
            self._wait_for_outcomes()
        if self.failure is not None:
            self._raise_failure()
        self._finish("DONE", None, root.value)
        return root.value

    def _wait_for_outcomes(self) -> None:
        timeout = max(0.0, FLUSH_INTERVAL - (time.monotonic() - self.last_flush))
        try:
            outcome = self.outcomes.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._handle_outcome(outcome)
            while True:
                try:
                    outcome = self.outcomes.get_nowait()
                except queue.Empty:
                    break
                self._handle_outcome(outcome)
        self._flush_if_due()
        if self.progress is not None:
            self.progress(self.counts)

    def _reduce_ready(self) -> None:
        while self.ready or self.to_check:
            while self.ready and self.failure is None:
                node = self.ready.popleft()
                try:
                    if node.kind == graph.CALL:
                        self._prepare_call(node)
                    elif node.kind in _CONTROL_KINDS:
                        self._control(node)
                    else:
                        self._settle(node, self.values.assemble(node))
                except Exception as error:
                    self._fail_nodes([node], error, None, self._describe(node))
            if self.failure is not None:
                self.ready.clear()
                self.to_check.clear()
                return
            if self.to_check:
                self._check_cache()

    def _settle(self, node: Node, value: Any) -> None:
        """Resolve an assembled node. An operation whose value holds expressions (calling a
        task or partial that a task returned) evaluates them, as a job's result would."""
        if node.kind != graph.OP or not graph.contains_expression(value):
            self._resolve(node, value)
        else:
            self.become(node, value)

    # -- failures and scheduler tasks (cond, catch, ...) ------------------------------------

    def _fail_nodes(
        self, nodes: list[Node], error: BaseException, traceback_text: str | None, where: str
    ) -> None:
        """A failure travels up the graph until a catch takes it or it reaches the root,
        which fails the run. Nodes it passes never become ready: results that arrive for
        them later are ignored."""
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node.failed or node.resolved:
                continue
            node.failed = True
            node.waiting = sys.maxsize
            if node is self.root:
                self._fail(error, traceback_text, where)
            elif node.kind == graph.CONTINUE:
                target, _, on_error = node.payload
                if on_error is None:
                    stack.append(target)
                else:
                    self._call_handler(target, on_error, error, traceback_text, where)
            else:
                stack.extend(node.parents)
                node.parents = []

    def _control(self, node: Node) -> None:
        if node.kind == graph.CONTROL:
            expr = node.payload
            node.kind = graph.FORWARD  # until its handler says what it becomes
            expr.task.handler(self, node, *expr.args, **expr.kwargs)
        else:
            target, on_value, _ = node.payload
            node.resolved = True
            self._call_handler(target, on_value, node.children[0].value)

    def _call_handler(self, target: Node, handler: Callable, *args: Any) -> None:
        """Run a continuation; an exception in it fails the scheduler task's node."""
        try:
            handler(*args)
        except Exception as error:
            self._fail_nodes([target], error, None, self._describe(target))

    # The API scheduler task handlers use (kredun.control.ControlRun).

    @property
    def caching(self) -> bool:
        return self.cache

    def evaluate(
        self, node: Node, expr: Any, on_value: Callable, on_error: Callable | None
    ) -> None:
        sub_root, ready = self.values.build(expr, node.owner)
        self.ready.extend(ready)
        continuation = Node(graph.CONTINUE, (node, on_value, on_error), [sub_root])
        if sub_root.resolved:
            self.ready.append(continuation)
        else:
            continuation.waiting = 1
            sub_root.parents.append(continuation)

    def become(self, node: Node, expr: Any) -> None:
        sub_root, ready = self.values.build(expr, node.owner)
        self.ready.extend(ready)
        node.kind = graph.FORWARD
        node.children = [sub_root]
        if sub_root.resolved:
            self._resolve(node, sub_root.value)
        else:
            node.waiting = 1
            sub_root.parents.append(node)

    def resolve(self, node: Node, value: Any) -> None:
        self._resolve(node, value)

    def fail(self, node: Node, error: BaseException, traceback: str | None, where: str) -> None:
        self._fail_nodes([node], error, traceback, where)

    def lookup(self, eval_hash: str) -> Any | None:
        known = self.scheduler._results.get(eval_hash)
        if known is None and not self.scheduler._results_are_complete:
            found = self.scheduler.store.lookup_calls([eval_hash])
            known = self.values.load_results(found.values()).get(eval_hash)
        return known[1] if known is not None and known[0] == "expression" else None

    def record_call(self, eval_hash: str, task: Any, args_hash: str, expr: Any) -> None:
        try:
            data = dumps(expr)
        except SerializationError:
            return  # evaluated, just not replayed
        result_hash = hash_bytes(data)
        self._record_task(task)
        self._record_value(result_hash, expr, data)
        self.pending.calls.append(CallRecord(eval_hash=eval_hash, task_hash=task.hash,
            args_hash=args_hash, result_hash=result_hash, result_kind="expression"))  # fmt: skip
        self.scheduler._results[eval_hash] = ("expression", expr, result_hash)

    # -- calls ----------------------------------------------------------------------------

    def _prepare_call(self, node: Node) -> None:
        task: Task = node.payload.task
        if type(task) is Task:
            current = current_definition(task)
            if current is not task:
                task = current
                node.payload = TaskExpression(task, node.payload.args, node.payload.kwargs)
        _, _, positional, named = graph.call_arguments(node)
        try:
            args_hash = task.hash_arguments(
                [child.value_hash() for child in positional],
                {name: child.value_hash() for name, child in named.items()},
            )
        except TypeError as error:
            raise TypeError(f"{task.fullname}(): {error}") from None
        except SerializationError as error:
            raise SerializationError(f"argument of {task.fullname}: {error}") from None
        eval_hash = hash_eval(task.hash, args_hash)
        if not (self.cache and task.get_option("cache", True)):
            self._dispatch(node, eval_hash, args_hash)
            return
        running = self.in_flight.get(eval_hash)
        if running is not None:
            running.nodes.append(node)  # identical call in flight: share its result
            return
        known = self._known_result(eval_hash)
        if known is not None:
            self._replay(node, eval_hash, args_hash, *known)
            return
        self.to_check.append((node, eval_hash, args_hash))

    def _known_result(self, eval_hash: str) -> Result | None:
        """A result this scheduler already has, unless it holds a task value whose
        definition changed since (a task redefined in this process)."""
        known = self.scheduler._results.get(eval_hash)
        task_values = self.scheduler._result_task_values.get(eval_hash)
        if known is not None and task_values and changed_tasks(task_values):
            del self.scheduler._results[eval_hash]
            del self.scheduler._result_task_values[eval_hash]
            return None
        external = self.scheduler._result_external.get(eval_hash)
        if known is not None and external and stale_reasons(external):
            del self.scheduler._results[eval_hash]
            del self.scheduler._result_external[eval_hash]
            return None
        return known

    def _check_cache(self) -> None:
        """Look the batch of ready calls up in the provenance store in one query."""
        batch, self.to_check = self.to_check, []
        if self.scheduler._results_are_complete:
            loaded = {}
        else:
            found = self.scheduler.store.lookup_calls({eval_hash for _, eval_hash, _ in batch})
            loaded = self.values.load_results(found.values())
        for node, eval_hash, args_hash in batch:
            known = self._known_result(eval_hash)
            running = self.in_flight.get(eval_hash)
            if running is not None:
                running.nodes.append(node)
            elif known is not None:
                self._replay(node, eval_hash, args_hash, *known)
            elif eval_hash in loaded:
                kind, value, result_hash = loaded[eval_hash]
                self.scheduler._results[eval_hash] = loaded[eval_hash]
                self._replay(node, eval_hash, args_hash, kind, value, result_hash)
            else:
                self._dispatch(node, eval_hash, args_hash)

    def _load_earlier(self) -> None:
        """Continue the rows of this execution's earlier life, if it had one: its start
        time, and its jobs by eval hash (see `_earlier_row`)."""
        store = self.scheduler.store
        try:
            self.record.start_time = store.find_execution(self.record.id).start_time
        except NotFoundError:
            return
        for record in store.jobs_of(self.record.id):
            self.earlier.setdefault(record.eval_hash, []).append(record)

    def _earlier_row(self, eval_hash: str, status: str) -> JobRecord | None:
        """The row an earlier life of this execution wrote for the same job: a replay
        (CACHED) takes one that finished there, a launch one that did not (its Pod may be
        adopted), so a resumed run writes one row per job and leaves none RUNNING."""
        rows = self.earlier.get(eval_hash) or []
        unfinished = ("PENDING", "RUNNING", "CANCELLED")
        # A replay may also be of a job whose Pod finished while no scheduler watched it.
        preferences = [("DONE", "CACHED"), unfinished] if status == "CACHED" else [unfinished]
        for wanted in preferences:
            for index, row in enumerate(rows):
                if row.status in wanted:
                    return rows.pop(index)
        return None

    def _new_job(self, node: Node, eval_hash: str, args_hash: str, status: str) -> Job:
        task: Task = node.payload.task
        args, kwargs, _, _ = graph.call_arguments(node)
        job_id = uuid.uuid4().hex
        parent: Job | None = node.owner
        executor_name = task.get_option("executor", "default")
        record = JobRecord(
            id=job_id,
            execution_id=self.record.id,
            parent_id=parent.id if parent else None,
            task_name=task.fullname,
            task_hash=task.hash,
            eval_hash=eval_hash,
            status=status,
            executor=executor_name,
            start_time=_now(),
        )
        earlier = self._earlier_row(eval_hash, status) if self.earlier else None
        if earlier is not None and status == "CACHED":
            record = earlier  # it ran in the earlier life: its row stays as written
            job_id = record.id
            if record.status not in ("DONE", "CACHED"):  # it ended while nobody watched
                record.status, record.end_time, record.error = "DONE", _now(), None
                self.dirty_jobs[job_id] = record
        else:
            if earlier is not None:
                job_id = record.id = earlier.id
                record.start_time, record.attempt = earlier.start_time, earlier.attempt
            self.dirty_jobs[job_id] = record
        self._record_task(task)
        job = Job(job_id, task, eval_hash, args_hash, args, kwargs, parent, executor_name, record)
        job.attempt = record.attempt  # a continued job goes on with its attempt (its Pod's)
        job.references = not self.values.records_results
        job.nodes.append(node)
        return job

    def _update_record(self, job: Job, **fields: Any) -> None:
        """Change a job's provenance record; it is written (again) at the next flush."""
        for name, value in fields.items():
            setattr(job.record, name, value)
        self.dirty_jobs[job.id] = job.record

    def _count(self, task_name: str, leave: int | None, enter: int) -> None:
        row = self.counts.get(task_name)
        if row is None:
            row = self.counts[task_name] = [0, 0, 0, 0, 0]
        if leave is not None:
            row[leave] -= 1
        row[enter] += 1

    def _dispatch(self, node: Node, eval_hash: str, args_hash: str) -> None:
        job = self._new_job(node, eval_hash, args_hash, "RUNNING")
        if job.task.fullname == SUBRUN_TASK and not job.references and job.args[1:] == [{}]:
            # A subrun given no configuration runs on this scheduler's stores and executors,
            # so its inner calls are cached and recorded where this run's are.
            job.args = [job.args[0], self.scheduler.config.to_dict()]
        executor = self.scheduler.executor(job.executor_name)
        if self.verbose:
            self.logger.info("Run    Job %s:  %s on %s", job.id[:8], job.call_text(), executor.name)
        self.in_flight.setdefault(eval_hash, job)
        self.running += 1
        self._count(job.task.fullname, None, RUNNING)
        executor.submit(job, self.outcomes.put)

    def _replay(
        self, node: Node, eval_hash: str, args_hash: str, kind: str, value: Any,
        result_hash: str | None,
    ) -> None:  # fmt: skip
        job = self._new_job(node, eval_hash, args_hash, "CACHED")
        if job.record.status == "CACHED":  # not a job that ran in an earlier life
            self._update_record(job, end_time=job.record.start_time, result_hash=result_hash)
        elif job.record.result_hash is None:
            self._update_record(job, result_hash=result_hash)
        if self.verbose:
            self.logger.info(
                "Cached Job %s:  %s (eval_hash=%s)", job.id[:8], job.call_text(), eval_hash[:8]
            )
        self._count(job.task.fullname, None, CACHED)
        self._count(job.task.fullname, None, DONE)
        self._deliver(job, kind, value, result_hash)

    def _handle_outcome(self, outcome: JobOutcome) -> None:
        job = outcome.job
        self.running -= 1
        if outcome.error is not None:
            self._job_failed(job, outcome)
            return
        try:
            (kind, value, result_hash), data = self.values.job_result(outcome)
        except KredunError as error:
            self._job_failed(job, JobOutcome.failed(job, type(error)(
                f"result of {job.task.fullname}: {error}"
            )))  # fmt: skip
            return
        if data is not None:
            assert result_hash is not None  # serialized results always have their hash
            self._record_value(result_hash, value, data)
            self.pending.calls.append(
                CallRecord(eval_hash=job.eval_hash, task_hash=job.task.hash,
                           args_hash=job.args_hash, result_hash=result_hash, result_kind=kind)
            )  # fmt: skip
        if data is not None or not self.values.records_results:
            self.scheduler._results[job.eval_hash] = (kind, value, result_hash)
        self._update_record(job, status="DONE", end_time=_now(), result_hash=result_hash)
        self._count(job.task.fullname, RUNNING, DONE)
        if self.in_flight.get(job.eval_hash) is job:
            del self.in_flight[job.eval_hash]
        self._deliver(job, kind, value, result_hash)

    def _deliver(self, job: Job, kind: str, value: Any, result_hash: str | None) -> None:
        """Substitute a job's result into every node waiting on it."""
        if kind == "value":
            for node in job.nodes:
                self._resolve(node, value, result_hash)
            return
        sub_root, ready = self.values.build(value, job)
        self.ready.extend(ready)
        for node in job.nodes:
            node.kind = graph.FORWARD
            node.children = [sub_root]
            if sub_root.resolved:
                self._resolve(node, sub_root.value)
            else:
                node.waiting = 1
                sub_root.parents.append(node)

    def _job_failed(self, job: Job, outcome: JobOutcome) -> None:
        assert outcome.error is not None
        retries = retry_limit(job.task.get_option("retries"), self.scheduler.config.max_retries)
        if job.attempt < retries and self.failure is None:
            job.attempt += 1
            self._update_record(job, attempt=job.attempt)
            self.logger.info(
                "Retry  Job %s:  %s (attempt %d of %d): %s",
                job.id[:8], job.call_text(), job.attempt + 1, retries + 1, outcome.error,
            )  # fmt: skip
            self.running += 1
            self.scheduler.executor(job.executor_name).submit(job, self.outcomes.put)
            return
        self._update_record(
            job,
            status="FAILED",
            end_time=_now(),
            error=f"{type(outcome.error).__name__}: {outcome.error}"[:2000],
            traceback=outcome.traceback,
        )
        self._count(job.task.fullname, RUNNING, FAILED)
        self.in_flight.pop(job.eval_hash, None)
        self.logger.error("Failed Job %s:  %s: %s", job.id[:8], job.call_text(), job.record.error)
        self._fail_nodes(job.nodes, outcome.error, outcome.traceback, job.task.fullname)

    def _fail(self, error: BaseException, traceback_text: str | None, where: str) -> None:
        if self.failure is None:
            self.failure = _Failure(error, traceback_text, where)

    def _raise_failure(self) -> None:
        failure = self.failure
        assert failure is not None
        error = failure.error
        # A task that ran in another process brings its traceback as text only.
        if failure.traceback and error.__traceback__ is None and hasattr(error, "add_note"):
            error.add_note(f"Traceback from task {failure.where}:\n{failure.traceback}")
        raise error

    @staticmethod
    def _describe(node: Node) -> str:
        return preview(node.payload, 120) if node.payload is not None else node.kind

    def _resolve(self, node: Node, value: Any, value_hash: str | None = None) -> None:
        node.value = value
        node.resolved = True
        if value_hash is not None:
            node.hash = value_hash
        for parent in node.parents:
            parent.waiting -= 1
            if parent.waiting == 0:
                self.ready.append(parent)
        node.parents = []

    # -- provenance -------------------------------------------------------------------------

    def _record_task(self, task: Any) -> None:
        if task.hash not in self.scheduler._recorded_tasks:
            self.scheduler._recorded_tasks.add(task.hash)
            self.pending.tasks.append(
                TaskRecord(task.hash, task.fullname, task.namespace, task.source)
            )

    def _record_value(self, value_hash: str, value: Any, data: bytes) -> None:
        if value_hash in self.scheduler._recorded_values:
            return
        self.scheduler._recorded_values.add(value_hash)
        self.pending.values.append(
            store_value(
                self.scheduler.value_store, value_hash, data, type_name(value), preview(value)
            )
        )

    def _flush_if_due(self) -> None:
        rows = len(self.dirty_jobs) + len(self.pending.values)
        if rows >= FLUSH_ROWS or time.monotonic() - self.last_flush >= FLUSH_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        batch, self.pending = self.pending, ProvenanceBatch()
        batch.jobs = list(self.dirty_jobs.values())
        self.dirty_jobs = {}
        if batch:
            self.scheduler.store.write(batch)
        self.last_flush = time.monotonic()

    def _finish(self, status: str, error: BaseException | None, value: Any = None) -> None:
        record = self.record
        record.status = status
        record.end_time = _now()
        if error is not None:
            record.error = f"{type(error).__name__}: {error}"[:2000]
        else:
            record.result_preview = preview(value)
            try:
                record.result_hash = hash_value(value)
            except SerializationError:
                record.result_hash = None
        if status == "CANCELLED":
            for job in self.in_flight.values():
                self._update_record(job, status="CANCELLED", end_time=record.end_time)
        # Jobs an earlier life left unfinished that this one never reached again.
        for rows in self.earlier.values():
            for row in rows:
                if row.status in ("PENDING", "RUNNING"):
                    row.status, row.end_time = "CANCELLED", record.end_time
                    row.error = "interrupted: the scheduler running it stopped"
                    self.dirty_jobs[row.id] = row
        self.pending.executions.append(record)
        self._flush()


def log_status_table(logger: logging.Logger, counts: dict[str, list[int]], duration: float) -> None:
    for line in status_table(counts, _now()):
        logger.info("%s", line)
    logger.info("Execution duration: %.2f seconds", duration)


def status_table(counts: dict[str, list[int]], when: datetime) -> list[str]:
    """The job status table: a row per task and one for ALL, as redun prints it."""
    names = sorted(counts)
    width = max([len("TASK"), len("ALL"), *map(len, names)])
    total = [sum(row[i] for row in counts.values()) for i in range(len(STATUSES))]

    def row(name: str, values: list[int]) -> str:
        all_jobs = values[PENDING] + values[RUNNING] + values[FAILED] + values[DONE]
        cells = "".join(f" {value:>7}" for value in [*values, all_jobs])
        return f"| {name:<{width}}{cells}"

    header = "".join(f" {title:>7}" for title in (*STATUSES, "TOTAL"))
    return [
        "",
        f"| JOB STATUS {when.astimezone():%Y/%m/%d %H:%M:%S}",
        f"| {'TASK':<{width}}{header}",
        "| ",
        row("ALL", total),
        *(row(name, counts[name]) for name in names),
        "",
    ]
