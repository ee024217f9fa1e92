"""The executor interface: submit a job, report its outcome through a callback."""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..job import Job
    from ..outcome import Outcome
    from ..scheduler import Scheduler


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

    @classmethod
    def failed(cls, job: Job, error: BaseException) -> JobOutcome:
        return cls(job, error=error, traceback="".join(traceback.format_exception(error)))


# Called from any thread, once per submitted job.
ReportOutcome = Callable[[JobOutcome], None]


class Executor(ABC):
    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options

    def bind(self, scheduler: Scheduler) -> None:  # noqa: B027 -- optional hook
        """Called once by the scheduler that will submit jobs; remote executors need its
        stores, others ignore it."""

    @abstractmethod
    def submit(self, job: Job, report: ReportOutcome) -> None:
        """Start the job; call `report` exactly once when it ends, from any thread."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release workers. Jobs already running may finish first."""
