"""Separate processes: tasks and values cross the boundary with cloudpickle."""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import cloudpickle

from ..deserialize import loads
from ..errors import ExecutorError, SerializationError
from ..job import Job
from ..serialize import ship
from .base import Executor, JobOutcome, ReportOutcome, python_function

PARENT_CHECK_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    """In a worker: exit when the scheduler that started it is gone. A scheduler killed
    with SIGKILL cannot stop its workers, and nobody would ever read their results."""

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="kredun-parent-watch", daemon=True).start()


def _run_in_child(payload: bytes) -> bytes:
    """Entry point inside the worker process: run one task call, return pickled outcome."""
    func, args, kwargs = loads(payload)
    try:
        # Shipped back: calls in a returned expression carry their code, in case this
        # process defined a task the scheduler's does not.
        return ship(("ok", func(*args, **kwargs)))
    except BaseException as error:
        formatted = "".join(traceback.format_exception(error))
        try:
            return cloudpickle.dumps(("error", error, formatted))
        except Exception:
            substitute = ExecutorError(f"{type(error).__name__}: {error}")
            return cloudpickle.dumps(("error", substitute, formatted))


class ProcessExecutor(Executor):
    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        workers = int(options.get("max_workers") or os.cpu_count() or 1)
        # spawn, not fork: the scheduler process has threads, and forking those is unsafe.
        context = multiprocessing.get_context(options.get("start_method", "spawn"))
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, job: Job, report: ReportOutcome) -> None:
        try:
            func = python_function(job, self.name)
        except ExecutorError as error:
            report(JobOutcome.failed(job, error))
            return
        try:
            payload = ship((func, job.args, job.kwargs))
        except Exception as error:
            report(JobOutcome.failed(job, SerializationError(
                f"cannot send arguments of {job.task.fullname} to a process: {error}"
            )))  # fmt: skip
            return
        future = self._pool.submit(_run_in_child, payload)
        future.add_done_callback(lambda done: report(self._outcome(job, done)))

    @staticmethod
    def _outcome(job: Job, future: Future) -> JobOutcome:
        try:
            status, *rest = loads(future.result())
        except BaseException as error:  # the worker died or its result would not unpickle
            return JobOutcome.failed(job, ExecutorError(f"process job failed: {error!r}"))
        if status == "ok":
            return JobOutcome(job, rest[0])
        raised, formatted = rest
        return JobOutcome(job, error=raised, traceback=formatted)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
