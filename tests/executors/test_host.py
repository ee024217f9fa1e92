"""The executor seam: executors are bound to an `ExecutorHost`, never the scheduler, and
tell the scheduler how a job ran only through its `JobOutcome`, whose `attempts` and
`executor` the scheduler records itself."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from kredun import Scheduler, task
from kredun.executors import (
    Executor,
    ExecutorHost,
    JobOutcome,
    ReportOutcome,
    register_executor_type,
)
from kredun.job import Job

kredun_namespace = "host_test"
TYPE = "host-test"

ran: list[int] = []


class ElsewhereExecutor(Executor):
    """Runs each job once on a thread and reports what an executor that retried it on a
    system of its own would: options `attempts` (reported) and `ran_on` (an executor name)."""

    bound: list[ExecutorHost] = []

    def bind(self, host: ExecutorHost) -> None:
        ElsewhereExecutor.bound.append(host)

    def submit(self, job: Job, report: ReportOutcome) -> None:
        threading.Thread(target=self._run, args=(job, report)).start()

    def _run(self, job: Job, report: ReportOutcome) -> None:
        try:
            outcome = JobOutcome(job, job.task.func(*job.args, **job.kwargs))
        except Exception as error:
            outcome = JobOutcome.failed(job, error)
        outcome.attempts = self.options.get("attempts")
        outcome.executor = self.options.get("ran_on")
        report(outcome)

    def shutdown(self) -> None:
        pass


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    import kredun.executor_types as catalogue
    import kredun.options as registry

    for module, name in [(catalogue, "EXECUTOR_TYPES"), (catalogue, "CONFIG_KEYS"),
                         (registry, "_EXECUTOR_OPTIONS")]:  # fmt: skip
        monkeypatch.setattr(module, name, dict(getattr(module, name)))
    monkeypatch.setattr(registry, "_known", None)
    register_executor_type(TYPE, f"{__name__}:ElsewhereExecutor")
    ElsewhereExecutor.bound.clear()
    ran.clear()
    logging.getLogger("kredun").setLevel(logging.WARNING)
    yield
    logging.getLogger("kredun").setLevel(logging.INFO)


@task(executor="there", retries=2, cache=False)
def flaky(x: int) -> int:
    ran.append(x)
    if x < 0:
        raise ValueError(f"negative {x}")
    return x * 2


def scheduler(tmp_path: Any, **options: Any) -> Scheduler:
    return Scheduler(
        f"sqlite:///{tmp_path}/prov.db",
        config={
            "executors": {"there": {"type": TYPE, **options}},
            "tenancy": {"cache_scope": "ns/team-a"},
        },
        value_store=f"file://{tmp_path}/values",
    )


def only_job(scheduler: Scheduler) -> Any:
    (execution,) = scheduler.store.recent_executions()
    (job,) = scheduler.store.jobs_of(execution.id)
    return job


def test_an_executor_is_bound_to_the_stores_and_settings_not_the_scheduler(tmp_path) -> None:
    runner = scheduler(tmp_path)
    assert runner.run(flaky(2)) == 4
    (host,) = ElsewhereExecutor.bound
    assert not isinstance(host, Scheduler)
    assert host.stores is runner.stores
    assert host.database_uri == f"sqlite:///{tmp_path}/prov.db"
    assert host.value_store_uri == f"file://{tmp_path}/values"
    assert host.cache_scope == "ns/team-a"
    # A fallback is found through the host, among the scheduler's own executors.
    assert host.executor("there") is runner.executor("there")


def test_the_scheduler_records_the_executor_that_ran_the_job(tmp_path) -> None:
    runner = scheduler(tmp_path, ran_on="fallback")
    assert runner.run(flaky(2)) == 4
    job = only_job(runner)
    assert (job.executor, job.attempt, job.status) == ("fallback", 0, "DONE")


def test_a_job_reported_without_an_executor_name_ran_where_it_was_sent(tmp_path) -> None:
    runner = scheduler(tmp_path)
    runner.run(flaky(2))
    assert only_job(runner).executor == "there"


def test_attempts_an_executor_made_are_recorded_and_not_retried_again(tmp_path) -> None:
    runner = scheduler(tmp_path, attempts=3)
    with pytest.raises(ValueError, match="negative -1"):
        runner.run(flaky(-1))
    assert ran == [-1]  # the executor's three attempts are the job's: none on top
    job = only_job(runner)
    assert (job.attempt, job.status) == (2, "FAILED")


def test_without_attempts_the_scheduler_retries(tmp_path) -> None:
    runner = scheduler(tmp_path)
    with pytest.raises(ValueError, match="negative -1"):
        runner.run(flaky(-1))
    assert ran == [-1, -1, -1]
    assert only_job(runner).attempt == 2
