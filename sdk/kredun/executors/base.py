"""The executor interface: submit a job, report its outcome through a callback.

An executor gets what it needs from the scheduler that creates it through `bind`, as an
`ExecutorHost` (the stores, the few settings executors read, the scheduler's logger and a
way to find another executor by name), never the scheduler itself. It tells the scheduler
how a job ran through the `JobOutcome` alone: the scheduler keeps its own records.
"""

from __future__ import annotations

import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ExecutorError
from ..task import Task

if TYPE_CHECKING:
    from ..job import Job
    from ..outcome import Outcome
    from ..provenance.records import ProvenanceBatch
    from ..stores import Stores


@dataclass(slots=True)
class JobOutcome:
    job: Job
    value: Any = None
    error: BaseException | None = None
    traceback: str | None = None  # the task's own traceback, formatted where it ran
    # What a job that ran elsewhere reported (kredun.outcome), and its result blob's bytes,
    # checked against the reported hash and size.
    result: Outcome | None = None
    data: bytes | None = None
    truth: bool | None = None  # bool(result), computed where the job ran
    # A task error reported by a remote job: its class names along the MRO, and the blob
    # of the pickled exception (None if it could not be pickled).
    error_classes: tuple[str, ...] = ()
    error_hash: str | None = None
    # Attempts the executor made itself (it retried, or adopted a job that had made them):
    # the scheduler records the count and does not retry on top. None: one attempt, which
    # the scheduler may retry.
    attempts: int | None = None
    # The executor that ran the job when not the one it was submitted to (a fallback).
    executor: str | None = None
    # What a subrun job's nested scheduler recorded where it ran, as the job's provenance
    # fragment holds it (ids as the job gave them), or why such a fragment is not recorded.
    provenance: ProvenanceBatch | None = None
    provenance_problem: str | None = None

    @classmethod
    def failed(cls, job: Job, error: BaseException) -> JobOutcome:
        return cls(job, error=error, traceback="".join(traceback.format_exception(error)))


# Called from any thread, once per submitted job.
ReportOutcome = Callable[[JobOutcome], None]


def python_function(job: Job, executor: str) -> Callable[..., Any]:
    """The function a job's task calls, for an executor that calls it from this process.
    Only a task defined here has one: a plan's task reference names code that only
    `kredun worker` loads."""
    if not isinstance(job.task, Task):
        raise ExecutorError(
            f"executor {executor!r} runs Python functions in this process; "
            f"{job.task.fullname} is a task reference (run it on a k8s or batch executor)"
        )
    return job.task.func


class ExecutorHost(Protocol):
    """What the scheduler that submits an executor's jobs lends it."""

    @property
    def stores(self) -> Stores:
        """The scheduler's stores: remote executors move arguments and results through
        the value store."""

    @property
    def database_uri(self) -> str:
        """The provenance database's URI, which identifies the scheduler's jobs (never
        handed to a job)."""

    @property
    def value_store_uri(self) -> str:
        """The root of the value store, before the cache scope is applied."""

    @property
    def cache_scope(self) -> str:
        """Whose cached values the jobs read and write (kredun.tenancy)."""

    @property
    def max_retries(self) -> int | None:
        """The most retries of one job, whatever its `retries` option says."""

    @property
    def logger(self) -> logging.Logger: ...

    def executor(self, name: str) -> Executor:
        """The scheduler's executor of that name, created on first use; call it only on
        the scheduler's thread (a fallback is looked up when its job is launched)."""


@dataclass(frozen=True, slots=True)
class Host:
    """An `ExecutorHost` made of plain values: what a scheduler binds its executors to."""

    stores: Stores
    database_uri: str
    value_store_uri: str
    cache_scope: str
    max_retries: int | None
    logger: logging.Logger
    executor: Callable[[str], Executor]


class Executor(ABC):
    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options

    def bind(self, host: ExecutorHost) -> None:  # noqa: B027 -- optional hook
        """Called once by the scheduler that will submit jobs; remote executors need its
        stores and settings, others ignore them."""

    @abstractmethod
    def submit(self, job: Job, report: ReportOutcome) -> None:
        """Start the job; call `report` exactly once when it ends, from any thread."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release workers. Jobs already running may finish first."""
