"""Threads in the scheduler's process: the default, cheapest executor."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..job import Job
from .base import Executor, JobOutcome, ReportOutcome, python_function


def default_thread_count() -> int:
    # I/O-bound tasks are common in pipelines; threads are cheap, but keep a bound.
    return min(32, (os.cpu_count() or 1) * 4 + 4)


class LocalExecutor(Executor):
    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        workers = int(options.get("max_workers") or default_thread_count())
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"kredun-{name}")

    def submit(self, job: Job, report: ReportOutcome) -> None:
        self._pool.submit(self._run, job, report)

    def _run(self, job: Job, report: ReportOutcome) -> None:
        try:
            value = python_function(job, self.name)(*job.args, **job.kwargs)
        except BaseException as error:  # the task's failure is data for the scheduler
            report(JobOutcome.failed(job, error))
        else:
            report(JobOutcome(job, value))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
