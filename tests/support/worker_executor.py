"""Test-only executor: each job is a fresh `kredun worker` process, as in a Pod.

It exercises the path of every remote executor — job specs, workers storing results in
their scope's value store and reporting an outcome (here the last line of their standard
output), the executor verifying and the scheduler recording them — without Kubernetes or
AWS. Workers get an unreachable database URI: a worker that opened it would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from typing import Any

from kredun.errors import ExecutorError, KredunError
from kredun.executors import ReportOutcome, register_executor_type
from kredun.executors.remote import RemoteExecutor
from kredun.outcome import parse
from kredun.tenancy import scoped_store_uri

# The test process's own, which a worker "elsewhere" would not have.
LOCAL_VARIABLES = ("PYTHONPATH", "KREDUN_")
UNREACHABLE_DATABASE = "postgresql+psycopg://nobody:secret@127.0.0.1:9/unreachable"
TYPE = "test-worker"


class WorkerProcessExecutor(RemoteExecutor):
    """Options: `value_store`, the root URI of the value store the workers use."""

    launched: list[str] = []  # job task names, across instances (tests reset it)

    def launch(self, job: Any, spec_json: str, report: ReportOutcome, resources: Any) -> None:
        # Like a Pod, the worker cannot import the test modules: it runs elsewhere, with
        # no checkout on its path, and gets task code only as shipped.
        scope = self.host.cache_scope
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(LOCAL_VARIABLES)}
        env = {
            **inherited,
            "KREDUN_DATABASE_URI": UNREACHABLE_DATABASE,
            "KREDUN_VALUE_STORE": scoped_store_uri(self.options["value_store"], scope),
        }
        WorkerProcessExecutor.launched.append(job.task.fullname)
        process = subprocess.Popen(
            [sys.executable, "-m", "kredun", "worker", "--spec-json", spec_json],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        threading.Thread(target=self._wait, args=(job, process, report), daemon=True).start()

    def _wait(self, job: Any, process: subprocess.Popen, report: ReportOutcome) -> None:
        output, errors = process.communicate()
        lines = output.strip().splitlines()
        outcome, problem = None, None
        try:
            outcome = parse(lines[-1] if lines else "")
        except KredunError as error:
            problem = error
        if process.returncode == 0:
            self.finished(job, report, problem, outcome=outcome)
            return
        tail = "\n".join(errors.strip().splitlines()[-5:])
        self.finished(
            job, report, ExecutorError(f"worker exited with {process.returncode}: {tail}"),
            errors, outcome,
        )  # fmt: skip

    def shutdown(self) -> None:
        pass


register_executor_type(TYPE, f"{__name__}:WorkerProcessExecutor")
