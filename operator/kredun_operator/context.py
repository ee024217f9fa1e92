"""State shared across the operator (`Runtime`) and within one Execution (`ExecutionContext`).

The scheduler creates executors from configuration dicts, so the Pod executors of an
Execution receive its context as an executor option and reach the shared runtime through it.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kredun.config import Config
from kredun.valuestore import ValueStore, open_value_store

from .events import EventRecorder
from .kube import KubeClient
from .metrics import Metrics
from .podspec import PodTemplate
from .podwatch import PodWatcher
from .settings import OperatorSettings

# Executor names a plan may use that the operator runs as Pods: in a cluster, even a task
# that asked for local threads or processes runs in a Pod of its own, never in the operator.
POD_EXECUTOR_NAMES = ("default", "k8s", "local", "process")
API_THREADS = 16  # concurrent Kubernetes calls made for jobs (Pod creation, logs, Events)


@dataclass
class Runtime:
    """Process-wide: settings, the API client, the shared Pod watch, metrics."""

    settings: OperatorSettings
    kube: KubeClient
    pods: PodWatcher
    metrics: Metrics
    pool: ThreadPoolExecutor

    @classmethod
    def create(
        cls, settings: OperatorSettings, namespaces: list[str] | None, metrics: Metrics
    ) -> Runtime:
        kube = KubeClient.from_environment(
            on_error=lambda error: metrics.api_errors.labels(str(error.status)).inc()
        )
        pool = ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="kube-api")
        return cls(settings, kube, PodWatcher(kube, namespaces), metrics, pool)

    def __post_init__(self) -> None:
        self._value_stores: dict[str, ValueStore] = {}
        self._value_stores_lock = threading.Lock()
        self.executions = Admission(self.settings.max_running_executions or None)
        self._namespace_slots: dict[str, JobSlots] = {}

    def namespace_slots(self, namespace: str) -> JobSlots:
        """The job slots all Executions of a namespace share ([jobs]
        max_running_per_namespace)."""
        with self._value_stores_lock:
            slots = self._namespace_slots.get(namespace)
            if slots is None:
                limit = self.settings.jobs.max_running_per_namespace or None
                slots = self._namespace_slots[namespace] = JobSlots(limit)
            return slots

    def value_store(self, scope: str) -> ValueStore:
        """The part of the value store that holds one cache scope's values."""
        with self._value_stores_lock:
            store = self._value_stores.get(scope)
            if store is None:
                store = open_value_store(self.settings.value_store_uri, scope)
                self._value_stores[scope] = store
            return store


class JobSlots:
    """At most `limit` jobs of an Execution running at once (spec.maxParallelJobs); the
    others start, in order, as running ones end. No limit when `limit` is None."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._running = 0
        self._waiting: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self, start: Callable[[], None]) -> None:
        with self._lock:
            if self.limit is not None and self._running >= self.limit:
                self._waiting.append(start)
                return
            self._running += 1
        start()

    def release(self) -> None:
        with self._lock:
            if not self._waiting:
                self._running -= 1
                return
            start = self._waiting.popleft()
        start()


class Admission:
    """At most `limit` Executions running at once ([operator] max_running_executions); the
    others wait, Pending, and enter in the order they asked. No limit when None."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._running = 0
        self._waiting: deque[object] = deque()
        self._lock = threading.Lock()

    def enter(self, who: object) -> int:
        """0 if `who` may run now; otherwise its place in the queue (1 is next)."""
        with self._lock:
            if who not in self._waiting:
                self._waiting.append(who)
            place = self._waiting.index(who)
            if self.limit is None or self._running + place < self.limit:
                self._waiting.remove(who)
                self._running += 1
                return 0
            return place + 1

    def withdraw(self, who: object) -> None:
        """`who` stopped waiting (cancelled or deleted while queued)."""
        with self._lock:
            if who in self._waiting:
                self._waiting.remove(who)

    def leave(self) -> None:
        with self._lock:
            self._running -= 1


class StopMode(enum.Enum):
    """Why an Execution's run stops before it ends on its own."""

    CANCEL = "cancel"  # spec.cancel: delete running Pods, end Cancelled
    DELETE = "delete"  # the Execution is being deleted: delete running Pods
    PAUSE = "pause"  # another operator replica takes over: leave Pods running
    EXIT = "exit"  # this operator exits: leave Pods running for its successor


class ExecutionContext:
    """One Execution, as its runner and its Pod executors share it."""

    def __init__(
        self,
        runtime: Runtime,
        template: PodTemplate,
        events: EventRecorder,
        max_parallel_jobs: int | None = None,
        scope: str = "",
    ) -> None:
        self.runtime = runtime
        self.template = template
        # The Execution's cache scope: its namespace's, or a shared group's (kredun.tenancy).
        self.scope = scope
        self.events = events
        self.slots = JobSlots(max_parallel_jobs)
        self.namespace_slots = runtime.namespace_slots(template.namespace)
        self.queued_jobs = 0  # launched, waiting for a slot
        self._queue_lock = threading.Lock()
        # When job outcomes were handed to the scheduler, for its reaction-time metric.
        self.delivered: deque[float] = deque()
        self._stop: StopMode | None = None
        self._stopped = threading.Event()
        # Set when the scheduler should end the run: its stop token (Scheduler.run(stop=)).
        self.run_ended = threading.Event()

    def queue(self, change: int) -> None:
        with self._queue_lock:
            self.queued_jobs += change

    @property
    def stop_mode(self) -> StopMode | None:
        return self._stop

    def stop(self, mode: StopMode) -> None:
        """Ask the run to stop; the first reason given wins."""
        if self._stop is None:
            self._stop = mode
        self._stopped.set()
        if self.ends_run:
            self.run_ended.set()

    def wait_for_stop(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early (True) when asked to stop."""
        return self._stopped.wait(timeout)

    @property
    def ends_run(self) -> bool:
        """Whether the scheduler should stop now. An exiting operator lets its runs be:
        they end with the process, and the provenance store keeps them as running."""
        return self._stop not in (None, StopMode.EXIT)

    @property
    def deletes_pods(self) -> bool:
        return self._stop in (StopMode.CANCEL, StopMode.DELETE)

    def scheduler_config(self, default_executor: str) -> Config:
        """The configuration of this Execution's scheduler: the shared stores; Pods for
        every job, unless the spec or a task chose another configured executor."""
        settings = self.runtime.settings
        pods = {"type": "k8s", "context": self}
        executors = {**{name: pods for name in POD_EXECUTOR_NAMES}, **settings.executors}
        if default_executor != "k8s":
            executors["default"] = settings.executors.get(
                default_executor, {"type": default_executor}
            )
        for name, options in executors.items():
            if options.get("type") == "k8s" and "context" not in options:
                # Configured Pods, e.g. [executors.default] type = "k8s", fallback = "batch"
                executors[name] = {**options, "context": self}
        return Config(
            database_uri=settings.database_uri,
            value_store_uri=settings.value_store_uri,
            executors=executors,
            cache_scope=self.scope,
            max_retries=settings.jobs.max_retries,
            database_pool_size=settings.database_pool_size,
            limits=settings.limits,
        )

    @property
    def value_store(self) -> ValueStore:
        """Where this Execution's values, plans and job specs are."""
        return self.runtime.value_store(self.scope)
