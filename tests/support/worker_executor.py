"""Test-only executor: each job is a fresh `kredun worker` process, as in a Pod.

It exercises the path of every remote executor — job specs, workers recording results in
the shared stores, the scheduler reading them back — without Kubernetes or AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from typing import Any

from kredun.errors import ExecutorError
from kredun.executors import ReportOutcome, register_executor_type
from kredun.executors.remote import RemoteExecutor

TYPE = "test-worker"


class WorkerProcessExecutor(RemoteExecutor):
    """Options: `database` and `value_store` URIs the workers use."""

    launched: list[str] = []  # job task names, across instances (tests reset it)

    def launch(self, job: Any, spec_json: str, report: ReportOutcome, resources: Any) -> None:
        # Like a Pod, the worker cannot import the test modules: it runs elsewhere, with
        # no checkout on its path, and gets task code only as shipped.
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            "KREDUN_DATABASE_URI": self.options["database"],
            "KREDUN_VALUE_STORE": self.options["value_store"],
            "KREDUN_CACHE_SCOPE": self.scheduler.config.cache_scope,
        }
        WorkerProcessExecutor.launched.append(job.task.fullname)
        process = subprocess.Popen(
            [sys.executable, "-m", "kredun", "worker", "--spec-json", spec_json],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        threading.Thread(target=self._wait, args=(job, process, report), daemon=True).start()

    def _wait(self, job: Any, process: subprocess.Popen, report: ReportOutcome) -> None:
        output, _ = process.communicate()
        if process.returncode == 0:
            self.finished(job, report)
            return
        tail = "\n".join(output.strip().splitlines()[-5:])
        self.finished(
            job, report, ExecutorError(f"worker exited with {process.returncode}: {tail}"), output
        )

    def shutdown(self) -> None:
        pass


register_executor_type(TYPE, f"{__name__}:WorkerProcessExecutor")
