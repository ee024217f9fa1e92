"""The scheduler: reduces an expression graph to a value.

Each tick it reduces every ready node: containers and simple operations are assembled in
place; task calls are hashed, matched against calls already running (common
sub-expression elimination), looked up in the cache in one batch, and the rest dispatched
to executors. Finished jobs substitute their results into the graph; a job that returns
an expression grows the graph. Provenance is buffered and written in batches.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from . import graph
from .binding import bind
from .config import Config, config_from_dict
from .context import EMPTY_CONTEXT, Context, get_context_value, merge_dicts
from .domains import Result, ResultNotes, ValueDomain, ValueDomainFactory
from .errors import (
    CancelledError,
    ConfigError,
    DryRunResult,
    ExecutorError,
    KredunError,
    NoCurrentScheduler,
    NotFoundError,
    SerializationError,
)
from .executors import Executor, Host, JobOutcome, create_executor
from .expression import TaskExpression
from .files import Dir, File, StagingDir, StagingFile
from .graph import Node
from .hashing import encode, hash_bytes, hash_eval, hash_parts, hash_text, hash_value
from .job import Job, JobEnv
from .options import job_limits, reads_context, retry_limit
from .outcome import Outcome
from .provenance import hashed
from .provenance.base import ProvenanceBackend
from .provenance.fragment import rebase
from .provenance.memory import MEMORY_URI
from .provenance.records import (
    ArgumentRecord,
    CallRecord,
    EdgeRecord,
    ExecutionRecord,
    FileRecord,
    FinalRecord,
    JobRecord,
    ProvenanceBatch,
    TagRecord,
    TaskRecord,
    ValueRecord,
)
from .provenance.why import explain_miss
from .serialize import preview, type_name
from .stores import Stores
from .tags import check_tags
from .task import (
    Task,
    changed_tasks,
    collecting_task_values,
    current_definition,
    registered_hashes,
    source_task_hash,
    warn_of_tasks_without_namespace,
)
from .tasklike import NamedTask, TaskLike
from .validity import stale_reasons
from .valuestore import ValueStore, store_value

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
# A final value known to a scheduler: (value, hash, hashes of the tasks under the call,
# task values the value holds (name -> hash)).
Final = tuple[Any, str | None, frozenset[str], dict[str, str]]


def _option_value(value: Any) -> Any:
    """An option given as an enum member (CacheScope.CSE) or as its value ("CSE")."""
    return getattr(value, "value", value)


def _is_shallow(task: TaskLike) -> bool:
    check = task.get_option("check_valid")
    return check is not None and _option_value(check) == "shallow"


# The scheduler whose run() is in progress on each thread (redun's current scheduler).
_current = threading.local()


def get_current_scheduler(required: bool = True) -> Scheduler | None:
    """The Scheduler running on this thread: inside `Scheduler.run()`, so in scheduler
    tasks and progress callbacks, but not in a task's body, which runs on an executor's
    thread or process (as in redun). None, or NoCurrentScheduler when `required`."""
    scheduler = getattr(_current, "scheduler", None)
    if scheduler is None and required:
        raise NoCurrentScheduler(
            "no kredun Scheduler is running in this thread: call get_current_scheduler() "
            "inside Scheduler.run(), or pass required=False"
        )
    return scheduler


def set_current_scheduler(scheduler: Scheduler | None) -> None:
    """Make `scheduler` this thread's current one (None: no current scheduler)."""
    _current.scheduler = scheduler


# A process forked during a run (the `process` executor with start_method = "fork") runs
# task bodies, which have no current scheduler; the forking thread's would be a dead copy.
os.register_at_fork(after_in_child=lambda: set_current_scheduler(None))


def _source_task_hash(fullname: str, source: str) -> str | None:
    """The hash a task of that name has if it is identified by that source (no version)."""
    return source_task_hash(fullname, source) if source else None


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
        provenance: ProvenanceBackend | None = None,
    ) -> None:
        """`provenance`: a store to use instead of the configured database (a subrun's
        nested scheduler in a job, which has no database, passes a call index,
        kredun.provenance.callindex)."""
        # A copy: the defaults filled in below must not leak into the caller's Config.
        if isinstance(config, Config):
            self.config = replace(config, executors=dict(config.executors))
        else:
            self.config = config_from_dict(config or {})
        self.config.database_uri = db_uri or self.config.database_uri or MEMORY_URI
        self.config.value_store_uri = value_store or self.config.value_store_uri or "memory://"
        self.logger = _make_logger()
        self.stores = Stores(self.config, provenance)
        self._executors: dict[str, Executor] = {}
        # What its executors get (Executor.bind): never the scheduler itself.
        self.host = Host(
            stores=self.stores,
            database_uri=self.config.database_uri,
            value_store_uri=self.config.value_store_uri,
            cache_scope=self.config.cache_scope,
            max_retries=self.config.max_retries,
            logger=self.logger,
            executor=self.executor,
        )
        # Results known to this scheduler, by eval hash: served without a database query.
        self._results: dict[str, Result] = {}
        # A private in-memory database holds only what _results already has; a store given
        # may hold entries this scheduler never made.
        self._results_are_complete = provenance is None and self.config.database_uri in (
            MEMORY_URI,
            "sqlite://",
            "sqlite:///:memory:",
        )
        # Task values, Files and Dirs held by results in _results, for the results that
        # hold any: such a result is replayed only while those are unchanged.
        self._notes = ResultNotes()
        # Final values of check_valid="shallow" calls, by call key (see Context.key).
        self._finals: dict[str, Final] = {}
        self._recorded_tasks: set[str] = set()
        self._recorded_values: set[str] = set()
        # Job counts of the latest run, by task name (see get_job_status_report).
        self._last_counts: dict[str, list[int]] = {}

    def load(self) -> None:
        """Open the provenance store now, creating or upgrading its schema, rather than at
        the first run (a bad database URI fails here)."""
        self.store  # noqa: B018

    def get_job_status_report(self) -> list[str]:
        """The job status table of the latest run, line by line, as the log prints it."""
        return status_table(self._last_counts, _now())

    @property
    def store(self) -> ProvenanceBackend:
        return self.stores.provenance

    @property
    def value_store(self) -> ValueStore:
        return self.stores.values

    def executor(self, name: str) -> Executor:
        if name not in self._executors:
            executor = create_executor(name, self.config.executor_options(name))
            executor.bind(self.host)
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
        values: ValueDomainFactory | None = None,
        stop: StopToken | None = None,
        context: dict[str, Any] | None = None,
        dryrun: bool = False,
        tags: Any = None,
        parent_job_id: str | None = None,
    ) -> Any:
        """Evaluate `expr` and return its value. A task's exception is re-raised as is.

        `context` is merged over the config's `[context]` for this execution (read with
        `kredun.get_context`). `dryrun=True` runs nothing and records nothing: it replays
        what the cache has and stops at every job that would have to run, then raises
        `DryRunResult` listing them (or returns the value when everything is cached).
        `values` makes the run's value domain (`kredun.domains`); by default values are
        Python objects (`DEFAULT_VALUES`). `values=ReferencedValues` evaluates a plan (a
        dict) over value references, as the operator does; `execution_id` lets a resumed
        execution keep its identity. Once `stop` is set (from any thread), the run ends
        within a tick: running jobs are shut down and CancelledError is raised. `tags` (a
        dict or (key, value) pairs) tag the execution; `parent_job_id` records it as run
        inside that job (a subrun)."""
        if context is not None and not isinstance(context, dict):
            raise TypeError(f"Scheduler.run(context=...) must be a dict, not {context!r}")
        warn_of_tasks_without_namespace()
        values_ = merge_dicts([self.config.context, context or {}])
        domain = (values or _default_values())(self.stores, self._notes)
        run = _ExecutionRun(self, expr, cache, label, progress, domain, execution_id)
        run.stop = stop
        run.context = Context(values_) if values_ else EMPTY_CONTEXT
        run.dryrun = dryrun
        run.record.parent_job_id = parent_job_id
        run.pending.tags.extend(
            TagRecord(run.record.id, key, value, "execution") for key, value in check_tags(tags)
        )
        # Restored afterwards rather than cleared (redun clears it): a scheduler made current
        # with set_current_scheduler() stays current after it runs something.
        previous = get_current_scheduler(required=False)
        set_current_scheduler(self)
        try:
            return run.run()
        finally:
            set_current_scheduler(previous)

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown()
        self._executors.clear()
        self.stores.close()

    def fetch_blob(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        """A serialized value from this scheduler's stores (see `Stores.fetch_blob`)."""
        return self.stores.fetch_blob(value_hash, max_bytes)


# The value domain of runs that name none: Python objects, as the SDK runs them. It
# unpickles cached results, and the operator imports this module, so it is found by name
# when first used, as executors are (kredun.executors), never imported here.
DEFAULT_VALUES = "kredun.trusted_values:TrustedValues"


def _default_values() -> ValueDomainFactory:
    module_name, _, class_name = DEFAULT_VALUES.partition(":")
    factory: ValueDomainFactory = getattr(importlib.import_module(module_name), class_name)
    return factory


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
        # (node, eval hash, args hash, context, check_valid is shallow)
        self.to_check: list[tuple[Node, str, str, Context, bool]] = []
        self.outcomes: queue.SimpleQueue[JobOutcome] = queue.SimpleQueue()
        self.in_flight: dict[str, Job] = {}
        # Running CacheScope.NONE jobs by (call key, parent job id): what a twin may join.
        self.uncached: dict[tuple[str, str], Job] = {}
        # Results of this execution's jobs by call key: what a CacheScope.CSE call may reuse.
        self.finished: dict[str, tuple[str, Any, str | None]] = {}
        self.running = 0
        self.counts: dict[str, list[int]] = {}
        self.failure: _Failure | None = None
        self.stop: StopToken | None = None
        self.verbose = self.logger.isEnabledFor(logging.INFO)
        # Provenance not yet written.
        self.dirty_jobs: dict[str, JobRecord] = {}
        self.pending = ProvenanceBatch()
        # Per task hash: the (name, value hash, preview) of parameters with defaults.
        self._defaults: dict[str, list[tuple[str, str, str]]] = {}
        # Per task hash: its version and hash_includes, as a job records them (hashed.py).
        self._hash_inputs: dict[str, dict[str, dict[str, str]]] = {}
        # Calls given arguments from `get_context(...)` defaults, by id of their node until
        # their job is recorded: parameter -> context key read.
        self.context_reads: dict[int, dict[str, str]] = {}
        self.last_flush = time.monotonic()
        self.context = EMPTY_CONTEXT
        self.dryrun = False
        # fork_thread's background evaluations, by thread id (see kredun.control).
        self.threads: dict[str, Any] = {}
        self.would_run: list[str] = []
        self.replayed: list[str] = []
        # Named resource limits: how much of each running jobs hold, and jobs waiting for
        # theirs, in the order they became ready.
        self.limits_used: dict[str, int] = {}
        self.waiting: deque[Job] = deque()

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
        if self.resumes:
            # Written before any job starts: a process killed before its first flush must
            # not leave the next one to take its own start for the execution's.
            self._flush()
        try:
            return self._reduce()
        except BaseException as error:
            cancelled = isinstance(error, KeyboardInterrupt | CancelledError)
            self._finish("CANCELLED" if cancelled else "FAILED", error)
            raise
        finally:
            self.scheduler._last_counts = self.counts
            if self.progress is not None:
                self.progress(self.counts)
            if self.verbose:
                log_status_table(self.logger, self.counts, time.monotonic() - started)

    def _reduce(self) -> Any:
        root, ready = self.values.build(self.expr, None)
        self.root = root
        self.ready.extend(ready)
        # Jobs still running once the root has its value were forked and never joined:
        # the execution ends when they do.
        while not root.resolved or self.running:
            if self.stop is not None and self.stop.is_set():
                raise CancelledError(f"execution {self.record.args} stopped")
            self._reduce_ready()
            if root.resolved and not self.running:
                break
            if self.running == 0:
                if self.failure is None and self.dryrun:
                    self.logger.info("Dryrun: Additional jobs would run.")
                    raise DryRunResult(self.would_run, self.replayed)
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
                    elif node.kind == graph.FINAL:
                        self._record_final(node)
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
        self._evaluate_under(node.owner, node, expr, on_value, on_error)

    def _evaluate_under(
        self, owner: Any, node: Node, expr: Any, on_value: Callable, on_error: Callable | None
    ) -> None:
        """`evaluate`, with `expr` evaluated as if inside `owner` (a job, its context)."""
        sub_root, ready = self.values.build(expr, owner)
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
        self._forward(node, sub_root)

    def _forward(self, node: Node, sub_root: Node) -> None:
        """Make `node` take the value of `sub_root` (an expression a job or handler returned)."""
        node.kind = graph.FORWARD
        node.children = [sub_root]
        if sub_root.resolved:
            self._resolve(node, sub_root.value)
        else:
            node.waiting = 1
            sub_root.parents.append(node)

    def resolve(self, node: Node, value: Any) -> None:
        # The handler gives the value itself, not a child to forward: hash it as a value.
        node.kind = graph.VALUE
        self._resolve(node, self.values.handler_value(value))

    def fail(self, node: Node, error: BaseException, traceback: str | None, where: str) -> None:
        self._fail_nodes([node], error, traceback, where)

    def lookup(self, eval_hash: str) -> Any | None:
        known = self.scheduler._results.get(eval_hash)
        if known is None and not self.scheduler._results_are_complete:
            found = self.scheduler.store.lookup_calls([eval_hash])
            known = self.values.load_results(found.values()).get(eval_hash)
        return known[1] if known is not None and known[0] in ("expression", "plan") else None

    def context_of(self, node: Node) -> Context:
        return self.context if node.owner is None else node.owner.context

    def record_call(self, eval_hash: str, task: NamedTask, args_hash: str, expr: Any) -> None:
        if self.dryrun:
            return
        try:
            kind, data = self.values.serialize_expression(expr)
        except SerializationError:
            return  # evaluated, just not replayed
        result_hash = hash_bytes(data)
        self._record_task(task)
        self._record_value(result_hash, expr, data)
        self.pending.calls.append(CallRecord(eval_hash=eval_hash, task_hash=task.hash,
            args_hash=args_hash, result_hash=result_hash, result_kind=kind))  # fmt: skip
        self.scheduler._results[eval_hash] = (kind, expr, result_hash)

    def test(self, node: Node, value: Any, then: Callable[[bool], None]) -> None:
        truth = self.values.truth(value)
        if truth is not None:
            then(truth)
            return

        def tested(result: Any) -> None:
            found = self.values.truth(result)
            if found is None:
                raise ExecutorError(f"the job testing {value!r} reported no truth value")
            then(found)

        self.evaluate(node, self.values.truth_test(value), tested, None)

    def error_matches(self, error: BaseException, error_class: Any) -> bool:
        return self.values.error_matches(error, error_class)

    def call(self, function: Any, argument: Any) -> Any:
        return self.values.call(function, argument)

    def evaluable(self, item: Any) -> bool:
        return self.values.evaluable(item)

    def tag_value(self, value: Any, tags: list[tuple[str, str]]) -> None:
        value_hash = hash_value(value)
        self.pending.tags.extend(TagRecord(value_hash, k, v, "value") for k, v in tags)

    # -- calls ----------------------------------------------------------------------------

    def _prepare_call(self, node: Node) -> None:
        task: TaskLike = node.payload.task
        if type(task) is Task:
            current = current_definition(task)
            exports = node.owner.exports if node.owner is not None else None
            if exports:
                # Exported options beat the task's definition, not its call's own options.
                current = current.options(**{
                    name: value for name, value in exports.items()
                    if name not in current._overrides
                })  # fmt: skip
            if current is not task:
                task = current
                node.payload = TaskExpression(task, node.payload.args, node.payload.kwargs)
            if task.expression_defaults and self._evaluate_defaults(node, task):
                return
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
        context = self.context_of(node).updated(task.get_option("_context_override"))
        if type(task) is Task and task.context_options:
            task = self._options_from_context(node, task, context)
        scope = self._cache_scope(task)
        key = context.key(eval_hash)
        running = self.in_flight.get(key)
        if scope == "NONE":
            # As in redun, identical calls of one job are evaluated once even with caching
            # off: a call made while its twin from the same job runs shares its result.
            twin_key = (key, node.owner.id if node.owner is not None else "")
            twin = self.uncached.get(twin_key)
            if twin is not None:
                self._join(twin, node)
            else:
                job = self._dispatch(node, eval_hash, args_hash, context)
                if job is not None:
                    self.uncached[twin_key] = job
            return
        if running is not None:
            self._join(running, node)  # identical call in flight: share its result
            return
        if self._reuse_finished(node, eval_hash, args_hash, context):
            return
        if scope == "CSE":
            self._dispatch(node, eval_hash, args_hash, context)
            return
        shallow = self.values.records_results and _is_shallow(task)
        if shallow:
            final = self._known_final(key)
            if final is not None:
                self._replay_final(node, eval_hash, args_hash, context, final)
                return
            if not self.scheduler._results_are_complete:
                self.to_check.append((node, eval_hash, args_hash, context, True))
                return
        known = self._known_result(eval_hash)
        if known is not None:
            self._replay_checked(node, eval_hash, args_hash, context, known)
            return
        self.to_check.append((node, eval_hash, args_hash, context, False))

    def _options_from_context(self, node: Node, task: Task, context: Context) -> Task:
        """The task with its `get_context(...)` options read from the job's context; the
        call at `node` runs with them (executor, memory, ...)."""
        values = {
            name: get_context_value(context.values, *expr.args, **expr.kwargs)
            for name, expr in task.context_options.items()
        }
        task = task.options(**values)
        node.payload = TaskExpression(task, node.payload.args, node.payload.kwargs)
        return task

    def _cache_scope(self, task: TaskLike) -> str:
        """Where a call may find its result: "NONE" (it runs), "CSE" (an identical call of
        this execution) or "BACKEND" (any recorded execution). cache=False means CSE, as in
        redun, and so does a run with caching off."""
        scope = task.get_option("cache_scope")
        if scope is None:
            scope = "BACKEND" if task.get_option("cache", True) else "CSE"
        else:
            scope = _option_value(scope)
        return "CSE" if scope == "BACKEND" and not self.cache else scope

    def _join(self, running: Job, node: Node) -> None:
        """`node` takes the result of a job already running. A shallow job enclosing `node`
        but not `running` cannot know the tasks under `running`: it records no final value."""
        running.nodes.append(node)
        if self.context_reads:
            self.context_reads.pop(id(node), None)  # no job of its own records them
        owner = node.owner
        tracker = owner if owner is not None and owner.subtree is not None else (
            owner.tracker if owner is not None else None
        )  # fmt: skip
        if tracker is None:
            return
        covered = set()
        enclosing = running.tracker
        while enclosing is not None:
            covered.add(id(enclosing))
            enclosing = enclosing.tracker
        while tracker is not None and id(tracker) not in covered:
            tracker.subtree_complete = False
            tracker = tracker.tracker

    def _known_final(self, key: str) -> Final | None:
        """The final value of a shallow call this scheduler knows, while every task under
        the call (and every task value in it) is defined as it was."""
        final = self.scheduler._finals.get(key)
        if final is None:
            return None
        if not final[2] <= registered_hashes() or (final[3] and changed_tasks(final[3])):
            del self.scheduler._finals[key]
            return None
        return final

    def _load_finals(self, keys: list[str]) -> dict[str, Final]:
        """Final values recorded for these call keys, in one query, whose tasks are all
        still defined as they were."""
        records = self.scheduler.store.lookup_finals(keys)
        current = registered_hashes()
        valid: dict[str, frozenset[str]] = {}
        for key, record in records.items():
            task_hashes = frozenset(record.task_hashes.split())
            if task_hashes <= current:
                valid[key] = task_hashes
            elif self.verbose:
                self.logger.info("Miss   final result %s: a task under it changed", key[:8])
        loaded = self.values.load_results(
            CallRecord(key, "", "", records[key].result_hash, "value") for key in valid
        )
        return {key: (value, result_hash, valid[key], {})
                for key, (_, value, result_hash) in loaded.items()}  # fmt: skip

    def _evaluate_defaults(self, node: Node, task: Task) -> bool:
        """Start evaluating the expression defaults (`get_context(...)`) a call leaves out,
        with the context of the job it will be; the call is prepared again with their values
        as keyword arguments. False when the call gives every such parameter."""
        _, _, positional, named = graph.call_arguments(node)
        try:
            given = bind(task.parameters, positional, named)
        except TypeError:
            return False  # hashing the call reports it
        missing = {
            name: default for name, default in task.expression_defaults.items()
            if name not in given
        }  # fmt: skip
        if not missing:
            return False
        context = self.context_of(node).updated(task.get_option("_context_override"))
        reads = {
            name: default.args[0] for name, default in missing.items()
            if reads_context(default) and default.args
        }  # fmt: skip

        def with_defaults(values: dict[str, Any]) -> None:
            expr = node.payload
            node.payload = TaskExpression(expr.task, expr.args, {**expr.kwargs, **values})
            node.children = [*node.children, *(Node(graph.VALUE, v) for v in values.values())]
            if reads:
                self.context_reads[id(node)] = reads
            self._prepare_call(node)

        self._evaluate_under(JobEnv(node.owner, context), node, missing, with_defaults, None)
        return True

    def _known_result(self, eval_hash: str) -> Result | None:
        """A result this scheduler already has, unless it holds a task value whose
        definition changed since (a task redefined in this process)."""
        known = self.scheduler._results.get(eval_hash)
        task_values = self.scheduler._notes.task_values.get(eval_hash)
        if known is not None and task_values and changed_tasks(task_values):
            del self.scheduler._results[eval_hash]
            del self.scheduler._notes.task_values[eval_hash]
            return None
        external = self.scheduler._notes.external.get(eval_hash)
        if known is not None and external and stale_reasons(external):
            del self.scheduler._results[eval_hash]
            del self.scheduler._notes.external[eval_hash]
            return None
        return known

    def _check_cache(self) -> None:
        """Look the batch of ready calls up in the provenance store in one query."""
        batch, self.to_check = self.to_check, []
        finals: dict[str, Final] = {}
        if self.scheduler._results_are_complete:
            loaded = {}
        else:
            shallow_keys = [call[3].key(call[1]) for call in batch if call[4]]
            if shallow_keys:
                finals = self._load_finals(shallow_keys)
            found = self.scheduler.store.lookup_calls({call[1] for call in batch})
            loaded = self.values.load_results(found.values())
        for node, eval_hash, args_hash, context, shallow in batch:
            key = context.key(eval_hash)
            running = self.in_flight.get(key)
            if running is not None:
                self._join(running, node)
                continue
            if self._reuse_finished(node, eval_hash, args_hash, context):
                continue
            final = (self._known_final(key) or finals.get(key)) if shallow else None
            if final is not None:
                self.scheduler._finals[key] = final
                self._replay_final(node, eval_hash, args_hash, context, final)
                continue
            known = self._known_result(eval_hash)
            if known is not None:
                self._replay_checked(node, eval_hash, args_hash, context, known)
            elif eval_hash in loaded:
                self.scheduler._results[eval_hash] = loaded[eval_hash]
                self._replay_checked(node, eval_hash, args_hash, context, loaded[eval_hash])
            else:
                self._dispatch(node, eval_hash, args_hash, context)

    def _load_earlier(self) -> None:
        """Continue the rows of this execution's earlier life, if it had one: its start
        time, and its jobs by eval hash (see `_earlier_row`). Its tags are those it has:
        run()'s tags tag an execution when it is first recorded, so a tag removed since
        (`kredun tag rm`) is not put back by a resumed run."""
        store = self.scheduler.store
        try:
            self.record.start_time = store.find_execution(self.record.id).start_time
        except NotFoundError:
            return
        self.pending.tags = [t for t in self.pending.tags if t.entity_id != self.record.id]
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

    def _new_job(
        self, node: Node, eval_hash: str, args_hash: str, context: Context, status: str
    ) -> Job:
        task: TaskLike = node.payload.task
        args, kwargs, positional, named = graph.call_arguments(node)
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
            cache_off=None if status == "CACHED" else self._cache_off(task),
        )
        reads = self.context_reads.pop(id(node), None) if self.context_reads else None
        if status != "CACHED" and type(task) is Task:
            # Only jobs that ran: `kredun log --why` explains a replay by its origin.
            record.hashed = self._hashed(task, named, reads)
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
        self._record_arguments(job_id, task, positional, named, status != "CACHED")
        job = Job(job_id, task, eval_hash, args_hash, args, kwargs, parent, executor_name, record)
        job.attempt = record.attempt  # a continued job goes on with its attempt (its Pod's)
        job.references = not self.values.records_results
        job.nodes.append(node)
        job.context = context
        job.key = context.key(eval_hash)
        if parent is not None:
            # Every shallow job enclosing this one records its task among those under it.
            tracker = job.tracker = parent if parent.subtree is not None else parent.tracker
            while tracker is not None and tracker.subtree is not None:
                tracker.subtree.add(task.hash)
                tracker = tracker.tracker
        if not job.references and _is_shallow(task):
            job.subtree = {task.hash}
        exported = task.get_option("_export")
        inherited = parent.exports if parent is not None else None
        if exported or inherited:
            names = {*(exported or ()), *(inherited or ())}
            job.exports = {name: task.get_option(name) for name in names
                           if name in task.option_values}  # fmt: skip
        return job

    def _hashed(self, task: Task, named: dict[str, Node], reads: dict[str, str] | None) -> Any:
        """What else took part in the call's hash, as `provenance.hashed` records it."""
        options = self._hash_inputs.get(task.hash)
        if options is None:
            options = self._hash_inputs[task.hash] = _task_hash_inputs(task)
        if not options and not reads:
            return None
        context = {
            path: (name, named[name].value_hash(), named[name].value)
            for name, path in (reads or {}).items()
            if name in named
        }
        return hashed.encode(options, context)

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

    def _dispatch(self, node: Node, eval_hash: str, args_hash: str, context: Context) -> Job | None:
        """Start (or queue) a job for the call at `node`; None in a dry run."""
        if self.dryrun:
            self._would_run(node, eval_hash, args_hash, context)
            return None
        task = node.payload.task
        limits = job_limits(task.get_option("limits"))
        if limits:
            self._check_capacity(task.fullname, limits)
        job = self._new_job(node, eval_hash, args_hash, context, "RUNNING")
        if job.task.fullname == SUBRUN_TASK and not job.references:
            if job.args[1:] == [{}]:
                # A subrun given no configuration runs on this scheduler's stores and
                # executors, so its inner calls are cached and recorded where this run's are.
                job.args = [job.args[0], self.scheduler.config.to_dict()]
            if context.values:
                job.kwargs = {**job.kwargs, "context": context.values}
            # Its execution is recorded under this job (not part of the call's hash).
            job.kwargs = {**job.kwargs, "parent_job": job.id}
        self.in_flight.setdefault(job.key, job)
        if limits:
            job.limits = limits
            if not self._fits(limits):
                self._update_record(job, status="PENDING")
                self._count(job.task.fullname, None, PENDING)
                self.waiting.append(job)
                return job
        self._start(job, None)
        return job

    def _start(self, job: Job, leave: int | None) -> None:
        """Submit a job, taking the resources it names."""
        for name, amount in (job.limits or {}).items():
            self.limits_used[name] = self.limits_used.get(name, 0) + amount
        executor = self.scheduler.executor(job.executor_name)
        if self.verbose:
            self.logger.info("Run    Job %s:  %s on %s", job.id[:8], job.call_text(), executor.name)
        if leave is not None:
            self._update_record(job, status="RUNNING", start_time=_now())
        self.running += 1
        self._count(job.task.fullname, leave, RUNNING)
        executor.submit(job, self.outcomes.put)

    def _limit(self, name: str) -> int:
        # As in redun: a limit the configuration does not name allows one job at a time.
        return self.scheduler.config.limits.get(name, 1)

    def _check_capacity(self, task_name: str, limits: dict[str, int]) -> None:
        for name, amount in limits.items():
            if amount > self._limit(name):
                raise ConfigError(
                    f"{task_name} needs {amount} of limit {name!r}, but only "
                    f"{self._limit(name)} is configured ([limits] {name} = ...)"
                )

    def _fits(self, limits: dict[str, int]) -> bool:
        used = self.limits_used
        return all(used.get(name, 0) + amount <= self._limit(name)
                   for name, amount in limits.items())  # fmt: skip

    def _release(self, job: Job) -> None:
        """A job holding limits ended: give them back and start the waiting jobs that now
        fit, in the order they became ready."""
        if not job.limits:
            return
        for name, amount in job.limits.items():
            self.limits_used[name] -= amount
        job.limits = None
        if self.failure is not None:
            return
        still_waiting: deque[Job] = deque()
        while self.waiting:
            waiting = self.waiting.popleft()
            if self._fits(waiting.limits or {}):
                self._start(waiting, PENDING)
            else:
                still_waiting.append(waiting)
        self.waiting = still_waiting

    def _would_run(self, node: Node, eval_hash: str, args_hash: str, context: Context) -> None:
        """A dry run stops here: the job is reported, not run, and its node never resolves
        (identical calls join it, so each job is reported once)."""
        job = self._new_job(node, eval_hash, args_hash, context, "PENDING")
        self.in_flight.setdefault(job.key, job)
        self.would_run.append(job.call_text())
        # _new_job has just queued this job's arguments (a dry run never writes them).
        queued = self.pending.arguments
        start = len(queued)
        while start and queued[start - 1].job_id == job.id:
            start -= 1
        reason = explain_miss(
            self.scheduler.store,
            job.task.fullname,
            job.task.hash,
            queued[start:],
            job.record.hashed,
        )
        # Formatted here, so that a handler or patched logger.log sees the whole line.
        self.logger.log(logging.INFO, f"Miss   Job {job.id[:8]}:  {reason}")
        self.logger.info("Dryrun Job %s:  %s would run", job.id[:8], job.call_text())
        self._count(job.task.fullname, None, PENDING)

    def _replay_checked(
        self, node: Node, eval_hash: str, args_hash: str, context: Context, result: Result
    ) -> None:
        """Replay a cached result, unless the value domain must first check the files it
        holds (the operator, in a job): then replay it if they are unchanged, else run the
        call again, straight to a job, so the same cache entry is not found again."""
        check = None if self.dryrun else self.values.files_check(result)
        if check is None:
            self._replay(node, eval_hash, args_hash, context, *result)
            return

        def checked(verdict: Any) -> None:
            running = self.in_flight.get(context.key(eval_hash))
            if running is not None:  # an identical call, rerun meanwhile: share its result
                self._join(running, node)
            elif self.values.truth(verdict):
                self._replay(node, eval_hash, args_hash, context, *result)
            else:
                rerun("a file it holds changed")

        def rerun(reason: str) -> None:
            self.logger.info("Miss   cached result %s is no longer valid: %s",
                             eval_hash[:8], reason)  # fmt: skip
            self.scheduler._results.pop(eval_hash, None)
            self._dispatch(node, eval_hash, args_hash, context)

        def check_failed(error: BaseException, traceback: str | None, where: str) -> None:
            # A result nobody could vouch for is not replayed: the call runs again.
            rerun(f"checking its files failed: {error}")

        self.evaluate(node, check, checked, check_failed)

    def _reuse_finished(self, node: Node, eval_hash: str, args_hash: str, context: Context) -> bool:
        """Replay the result of an identical call this run already ran or replayed, if
        there is one: within a run a call is evaluated once, and, as in redun, its result
        is not checked for validity again (files, `Value.is_valid`) when it is shared."""
        done = self.finished.get(context.key(eval_hash))
        if done is None:
            return False
        self._replay(node, eval_hash, args_hash, context, *done)
        return True

    def _replay(
        self,
        node: Node,
        eval_hash: str,
        args_hash: str,
        context: Context,
        kind: str,
        value: Any,
        result_hash: str | None,
    ) -> None:
        job = self._new_job(node, eval_hash, args_hash, context, "CACHED")
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
        if self.dryrun:
            self.replayed.append(job.call_text())
        self.finished[job.key] = (kind, value, result_hash)
        self._deliver(job, kind, value, result_hash)

    def _replay_final(
        self, node: Node, eval_hash: str, args_hash: str, context: Context, final: Final
    ) -> None:
        """Reuse a shallow call's final value without replaying what it returned."""
        value, result_hash, task_hashes, _ = final
        job = self._new_job(node, eval_hash, args_hash, context, "CACHED")
        tracker = job.tracker
        while tracker is not None and tracker.subtree is not None:
            tracker.subtree.update(task_hashes)
            tracker = tracker.tracker
        self._update_record(job, end_time=job.record.start_time, result_hash=result_hash)
        if self.verbose:
            self.logger.info(
                "Cached Job %s:  %s (eval_hash=%s, check_valid=shallow)",
                job.id[:8], job.call_text(), eval_hash[:8],
            )  # fmt: skip
        self._count(job.task.fullname, None, CACHED)
        self._count(job.task.fullname, None, DONE)
        if self.dryrun:
            self.replayed.append(job.call_text())
        self.finished[job.key] = ("value", value, result_hash)
        self._deliver(job, "value", value, result_hash)

    def _record_final(self, node: Node) -> None:
        """A shallow job's returned expression has its value: record it with the tasks that
        ran under the job, unless some of those are unknown."""
        job: Job = node.payload
        value = node.children[0].value
        value_hash = None
        if job.subtree_complete:
            try:
                with collecting_task_values() as task_values:
                    value_hash, data = encode(value)
            except SerializationError:
                pass  # evaluated, just not reusable
            else:
                self._record_value(value_hash, value, data)
                task_hashes = frozenset(job.subtree or ())
                self.pending.finals.append(
                    FinalRecord(job.key, value_hash, " ".join(sorted(task_hashes)))
                )
                self.scheduler._finals[job.key] = (value, value_hash, task_hashes, task_values)
        self._resolve(node, value, value_hash)

    def _handle_outcome(self, outcome: JobOutcome) -> None:
        job = outcome.job
        self.running -= 1
        # How the job ran, as its executor tells it: where, and after how many attempts.
        ran: dict[str, Any] = {"executor": outcome.executor or job.executor_name}
        if outcome.attempts is not None:
            ran["attempt"] = max(outcome.attempts - 1, 0)
        self._update_record(job, **ran)
        if outcome.provenance is not None or outcome.provenance_problem is not None:
            self._record_nested_run(job, outcome)
        if outcome.error is not None:
            self._job_failed(job, outcome)
            return
        try:
            (kind, value, result_hash), data = self.values.job_result(outcome)
        except KredunError as error:
            failure = JobOutcome.failed(job, type(error)(f"result of {job.task.fullname}: {error}"))
            failure.attempts = outcome.attempts
            self._job_failed(job, failure)
            return
        # A remote job described the result it stored (its bytes may not have been read).
        received = outcome.result if outcome.result and outcome.result.hash == result_hash else None
        if data is not None or received is not None:
            assert result_hash is not None  # serialized results always have their hash
            self._record_value(result_hash, value, data, received)
            self.pending.calls.append(
                CallRecord(eval_hash=job.eval_hash, task_hash=job.task.hash,
                           args_hash=job.args_hash, result_hash=result_hash, result_kind=kind)
            )  # fmt: skip
        if data is not None or not self.values.records_results:
            self.scheduler._results[job.eval_hash] = (kind, value, result_hash)
        self._update_record(job, status="DONE", end_time=_now(), result_hash=result_hash)
        self._count(job.task.fullname, RUNNING, DONE)
        self._release(job)
        self._forget(job)
        self.finished[job.key] = (kind, value, result_hash)
        self._deliver(job, kind, value, result_hash)

    def _record_nested_run(self, job: Job, outcome: JobOutcome) -> None:
        """Record what a remote subrun job's nested scheduler recorded where it ran (its
        provenance fragment), under this job and with ids of this run's making."""
        if outcome.provenance_problem is not None:
            self.logger.warning("Job %s:  %s: %s", job.id[:8], job.task.fullname,
                                outcome.provenance_problem)  # fmt: skip
        if outcome.provenance is None:
            return
        nested = rebase(outcome.provenance, job.id, _source_task_hash)
        pending = self.pending
        pending.executions.extend(nested.executions)
        self.dirty_jobs.update((record.id, record) for record in nested.jobs)
        pending.arguments.extend(nested.arguments)
        pending.edges.extend(nested.edges)
        pending.files.extend(nested.files)
        pending.tags.extend(nested.tags)
        pending.tasks.extend(nested.tasks)
        # Within a batch the last record of a value wins: one this scheduler recorded (maybe
        # still pending) keeps its full row, which it would not write again.
        recorded = self.scheduler._recorded_values
        pending.values.extend(value for value in nested.values if value.hash not in recorded)

    def _forget(self, job: Job) -> None:
        """A job that ended is no longer one an identical call can join."""
        if self.in_flight.get(job.key) is job:
            del self.in_flight[job.key]
        if self.uncached:
            twin_key = (job.key, job.parent.id if job.parent is not None else "")
            if self.uncached.get(twin_key) is job:
                del self.uncached[twin_key]

    def _deliver(self, job: Job, kind: str, value: Any, result_hash: str | None) -> None:
        """Substitute a job's result into every node waiting on it."""
        for node in job.nodes:
            node.producer = job.id
        if kind == "value":
            # Files in a returned expression are arguments of later calls, not outputs.
            self._record_files(job.id, "output", self.scheduler._notes.external.get(job.eval_hash))
            for node in job.nodes:
                self._resolve(node, value, result_hash)
            return
        sub_root, ready = self.values.build(value, job)
        self.ready.extend(ready)
        if job.subtree is not None:
            # The job's nodes take the value through a FINAL node that records it.
            final = Node(graph.FINAL, job, [sub_root])
            if sub_root.resolved:
                self.ready.append(final)
            else:
                final.waiting = 1
                sub_root.parents.append(final)
            sub_root = final
        for node in job.nodes:
            self._forward(node, sub_root)

    def _job_failed(self, job: Job, outcome: JobOutcome) -> None:
        assert outcome.error is not None
        retries = retry_limit(job.task.get_option("retries"), self.scheduler.config.max_retries)
        # An executor that counted attempts made the retries itself.
        if outcome.attempts is None and job.attempt < retries and self.failure is None:
            job.attempt += 1
            self._update_record(job, attempt=job.attempt, executor=job.executor_name)
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
        self._forget(job)
        self.logger.error("Failed Job %s:  %s: %s", job.id[:8], job.call_text(), job.record.error)
        self._fail_nodes(job.nodes, outcome.error, outcome.traceback, job.task.fullname)
        self._release(job)

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

    def _record_task(self, task: NamedTask) -> None:
        if self.dryrun:
            return  # a dry run records nothing
        if task.hash not in self.scheduler._recorded_tasks:
            self.scheduler._recorded_tasks.add(task.hash)
            self.pending.tasks.append(
                TaskRecord(task.hash, task.fullname, task.namespace, task.source)
            )

    def _record_value(self, value_hash: str, value: Any, data: bytes | None,
                      described: Outcome | None = None) -> None:  # fmt: skip
        """`described`: what the remote job that stored the value said of it; `data` may
        then be None (a large value, checked in the value store but not read)."""
        if self.dryrun or value_hash in self.scheduler._recorded_values:
            return
        self.scheduler._recorded_values.add(value_hash)
        if described is not None and data is None:
            record = ValueRecord(value_hash, described.type, described.preview, described.size,
                                 None, truth=described.truth)  # fmt: skip
        else:
            assert data is not None
            type_text, preview_text = (
                (described.type, described.preview)
                if described is not None
                else (type_name(value), preview(value))
            )
            record = store_value(
                self.scheduler.value_store, value_hash, data, type_text, preview_text
            )
            if described is not None:
                record.truth = described.truth
        if described is not None:
            record.holds_files = described.files
        self.pending.values.append(record)

    def _cache_off(self, task: TaskLike) -> str | None:
        """Why a job being created does not consult the cache, if it does not: "run",
        "task" (cache=False) or "scope:CSE" / "scope:NONE" (the task's cache_scope, which
        wins over its cache option)."""
        if not self.cache:
            return "run"
        scope = self._cache_scope(task)
        if scope == "BACKEND":
            return None
        return "task" if task.get_option("cache_scope") is None else f"scope:{scope}"

    def _record_arguments(
        self,
        job_id: str,
        task: TaskLike,
        positional: list[Node],
        named: dict[str, Node],
        values: bool,
    ) -> None:
        """A job's arguments by parameter, the jobs whose results they hold (call-graph
        edges), the Files and Dirs among them, and the task's tags.

        A replayed job's argument values are those of the job that computed the result
        (the same eval hash means the same arguments), so with `values` False they are left
        to `provenance.why.job_arguments` to find there: replays are the cheapest jobs,
        and recording their arguments again made a cached rerun a third slower."""
        parameters = task.parameters
        pending = self.pending
        arguments: list[tuple[int | str, Node]] = [*enumerate(positional), *named.items()]
        given: set[str] = set()
        for position, (key, node) in enumerate(arguments):
            if isinstance(key, str):
                name = key
            elif key < len(parameters) and parameters[key].kind in _POSITIONAL:
                name = parameters[key].name
            else:
                name = str(key)
            given.add(name)
            value = node.value
            if values:
                pending.arguments.append(
                    ArgumentRecord(job_id, position, name, node.value_hash(), preview(value))
                )
            for producer in _producers(node):
                pending.edges.append(EdgeRecord(producer, job_id, name))
            if not isinstance(value, _ATOMIC):
                self._record_files(job_id, "input", _files_in(value))
        defaults = self._defaults.get(task.hash)
        if defaults is None:
            defaults = self._defaults[task.hash] = _default_arguments(task)
        if defaults and values:
            position = len(arguments)
            for name, value_hash, shown in defaults:
                if name not in given:
                    pending.arguments.append(
                        ArgumentRecord(job_id, position, name, value_hash, shown)
                    )
                    position += 1
        tags = task.get_option("tags", None)
        if tags:
            pending.tags.extend(TagRecord(job_id, k, v, "job") for k, v in check_tags(tags))

    def _record_files(self, job_id: str, role: str, found: list[Any] | None) -> None:
        for obj in found or ():
            if isinstance(obj, StagingFile | StagingDir):
                # Role "staged": a staging may be a script's input or its output. By the
                # remote's path and the staging's own hash (of both paths): hashing the
                # remote would mean I/O here, and an output's remote may not exist yet.
                path, value_hash, kind = obj.remote.path, obj.__kredun_hash__(), type(obj).__name__
                role = "staged"
            elif isinstance(obj, File | Dir):
                path, value_hash, kind = obj.path, obj.hash, obj.kind
            else:
                continue
            # Local paths absolute, so `kredun log --file` finds them from anywhere.
            if "://" not in path:
                path = os.path.abspath(path)
            self.pending.files.append(FileRecord(job_id, role, path, value_hash, kind))

    def _flush_if_due(self) -> None:
        rows = len(self.dirty_jobs) + len(self.pending.values)
        if rows >= FLUSH_ROWS or time.monotonic() - self.last_flush >= FLUSH_INTERVAL:
            self._flush()

    def _flush(self) -> None:
        batch, self.pending = self.pending, ProvenanceBatch()
        batch.jobs = list(self.dirty_jobs.values())
        self.dirty_jobs = {}
        if batch and not self.dryrun:
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
        for job in self.waiting:  # never started: the run failed first
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


_POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
_LEAF_KINDS = frozenset((graph.VALUE, graph.LIFTED))
_ATOMIC = (int, float, str, bytes, bool, type(None))
# Argument structures are walked for Files this deep and no further.
_FILE_SEARCH_LIMIT = 10_000


def _producers(node: Node) -> list[str]:
    """The jobs whose results an argument node holds: itself, or within its containers."""
    found: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        # Literals, by far the most common arguments, are skipped first: getattr of an
        # unset slot raises inside, which costs more than all the rest of this loop.
        if current.kind in _LEAF_KINDS:
            continue
        producer = getattr(current, "producer", None)
        if producer is not None:
            found.append(producer)
        elif current.kind != graph.CALL:
            stack.extend(current.children)
    return found


def _task_hash_inputs(task: Task) -> dict[str, dict[str, str]]:
    """The parts of a task's hash besides its name and source, for `provenance.hashed`:
    its `version` and `hash_includes`, each where it has one."""
    found = {}
    if task.version is not None:
        version = str(task.version)
        found["version"] = hashed.entry(version, hash_text(version))
    includes = task.get_option("hash_includes")
    if includes:
        hashes = sorted(hash_value(value) for value in includes)
        found["hash_includes"] = hashed.entry(list(includes), hash_parts("includes", hashes))
    return found


def _default_arguments(task: TaskLike) -> list[tuple[str, str, str]]:
    """Parameters with defaults, recorded for calls that leave them out: the call's hash
    includes them, so `kredun log --why` must see them."""
    values = task.default_values  # empty for a plan's task: it knows defaults by hash only
    return [
        (
            parameter.name,
            parameter.default_hash,
            preview(values[parameter.name])
            if parameter.name in values
            else f"<default {parameter.default_hash[:8]}>",
        )
        for parameter in task.parameters
        if parameter.default_hash is not None
    ]


def _files_in(value: Any) -> list[Any]:
    """The Files, Dirs and stagings in an argument value, through lists, tuples, sets and
    dicts; large structures are searched up to a bound, as this runs for every job."""
    found: list[Any] = []
    stack = [value]
    seen = 0
    while stack and seen < _FILE_SEARCH_LIMIT:
        current = stack.pop()
        seen += 1
        if isinstance(current, File | Dir | StagingFile | StagingDir):
            found.append(current)
        elif isinstance(current, list | tuple | set | frozenset):
            stack.extend(current)
        elif isinstance(current, dict):
            stack.extend(current.values())
    return found
