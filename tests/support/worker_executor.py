"""Test-only executor: each job is a fresh `kredun worker` process, as in a Pod.

It exercises the operator's path — job specs, workers recording results in the shared
stores, the scheduler reading them back as references — without Kubernetes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

from kredun.errors import ExecutorError
from kredun.executors import Executor, JobOutcome, ReportOutcome, register_executor_type
from kredun.worker import job_spec

TYPE = "test-worker"


class WorkerProcessExecutor(Executor):
    """Options: `database` and `value_store` URIs the workers use; `launched` counts jobs."""

    launched: list[str] = []  # job task names, across instances (tests reset it)

    def submit(self, job: Any, report: ReportOutcome) -> None:
        spec = json.dumps(job_spec(job, job.record.execution_id))
        env = {
            **os.environ,
            "KREDUN_DATABASE_URI": self.options["database"],
            "KREDUN_VALUE_STORE": self.options["value_store"],
        }
        WorkerProcessExecutor.launched.append(job.task.fullname)
        process = subprocess.Popen(
            [sys.executable, "-m", "kredun", "worker", "--spec-json", spec],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._wait, args=(job, process, report), daemon=True).start()

    @staticmethod
    def _wait(job: Any, process: subprocess.Popen, report: ReportOutcome) -> None:
        output, _ = process.communicate()
        if process.returncode == 0:
            report(JobOutcome(job))
            return
        tail = "\n".join(output.strip().splitlines()[-5:])
        error = ExecutorError(f"worker exited with {process.returncode}: {tail}")
        report(JobOutcome(job, error=error, traceback=output))

    def shutdown(self) -> None:
        pass


register_executor_type(TYPE, f"{__name__}:WorkerProcessExecutor")
