"""Bounded resources: `retries` validated and capped (`[jobs] max_retries`); running
Executions and running jobs per namespace capped, the queued ones shown in status; one
bounded database pool in the operator whatever the number of Executions."""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import pytest
from kredun import task
from kredun.config import Config
from kredun.options import retry_limit
from kredun.scheduler import Scheduler

from tests.operator.test_hangs import plan_with_options
from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import OperatorCluster
from tests.support.postgres import postgres_database_uri  # noqa: F401

ATTEMPTS: list[int] = []


@task(retries=5, executor="local")
def always_fails(x: int) -> int:
    ATTEMPTS.append(x)
    raise ValueError("no")


@pytest.mark.parametrize(
    ("value", "cap", "allowed"),
    [(3, None, 3), (3, 2, 2), (0, 5, 0), (None, 5, 0), (-1, 5, 0), (1e6, 5, 0),
     ("3", 5, 0), (True, 5, 0), (10**9, None, 10**9)],
)  # fmt: skip
def test_retry_limit(value, cap, allowed) -> None:
    assert retry_limit(value, cap) == allowed


def test_the_scheduler_caps_retries_by_its_configuration() -> None:
    ATTEMPTS.clear()
    with pytest.raises(ValueError, match="no"):
        Scheduler(config=Config(max_retries=1)).run(always_fails(7))
    assert ATTEMPTS == [7, 7]  # the first attempt and one retry, not five


def test_the_operator_caps_a_plans_retries(tmp_path: Path) -> None:
    """A hand-made plan asks for a million retries (and @task never saw it); the operator's
    `[jobs] max_retries` allows two: three Pods in all, then the Execution fails."""
    with OperatorCluster(tmp_path, operator_config="[jobs]\nmax_retries = 2\n") as cluster:
        cluster.create("many", plan_with_options(cluster, flow.boom("x"), retries=10**6))
        status = cluster.wait_for_phase("many", timeout=60)
        assert status["phase"] == "Failed", status
        assert "ValueError: x" in status["message"]
        assert len(cluster.pods("many")) == 3
        cluster.create("junk", plan_with_options(cluster, flow.boom("y"), retries="lots"))
        status = cluster.wait_for_phase("junk", timeout=60)
        assert "option retries='lots' must be a whole number" in status["message"], status
        assert cluster.pods("junk") == []


def spans(directory: Path) -> list[tuple[float, float]]:
    return sorted(tuple(map(float, path.read_text().split())) for path in directory.iterdir())


def test_running_jobs_per_namespace_are_capped_and_queued_ones_shown(tmp_path: Path) -> None:
    """Two Executions of three jobs each, a namespace limit of one running job: the six
    jobs run one after another, and the status counts the queued ones meanwhile."""
    runs = tmp_path / "runs"
    runs.mkdir()
    config = "[jobs]\nmax_running_per_namespace = 1\n"
    with OperatorCluster(tmp_path, operator_config=config) as cluster:
        for name, first in (("one", 0), ("two", 3)):
            # Long enough that the queue outlasts a status write (they are coalesced).
            jobs = [flow.timed(i, 1.5, str(runs)) for i in range(first, first + 3)]
            cluster.create(name, cluster.plan_spec(jobs))
        queued = wait_for(
            lambda: (cluster.status("one").get("jobs") or {}).get("queued"), timeout=30
        )
        assert queued >= 1
        for name in ("one", "two"):
            assert cluster.wait_for_phase(name)["phase"] == "Succeeded"
            assert cluster.status(name)["jobs"]["queued"] == 0
    ran = spans(runs)
    assert len(ran) == 6
    for (_, end), (start, _) in itertools.pairwise(ran):
        assert start >= end, "two jobs of the namespace ran at once"


def most_at_once(spans_: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans_] + [(end, -1) for _, end in spans_])
    running = most = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    return most


def test_named_limits_from_the_operator_config_bound_an_executions_jobs(tmp_path: Path) -> None:
    """`[limits] db = 2` in the operator's configuration: of four jobs that each hold one
    `db`, two run at a time (an unconfigured name would allow one)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    config = "[limits]\ndb = 2\n"
    with OperatorCluster(tmp_path, kubelet_parallel=4, operator_config=config) as cluster:
        holding = flow.timed.options(limits=["db"])
        cluster.create("limited", cluster.plan_spec([holding(i, 3.0, str(runs)) for i in range(4)]))
        assert cluster.wait_for_phase("limited")["phase"] == "Succeeded"
    assert most_at_once(spans(runs)) == 2


def test_running_executions_are_capped_and_the_queue_is_shown(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    config = "[operator]\nmax_running_executions = 1\n"
    with OperatorCluster(tmp_path, operator_config=config) as cluster:
        cluster.create("first", cluster.plan_spec(flow.timed(0, 2.0, str(runs))))
        cluster.wait_for_phase("first", ("Running",), timeout=30)
        cluster.create("second", cluster.plan_spec(flow.timed(1, 0.1, str(runs))))
        cluster.create("third", cluster.plan_spec(flow.timed(2, 0.1, str(runs))))
        status = wait_for(lambda: (s := cluster.status("third")).get("message") and s, timeout=30)
        assert status["phase"] == "Pending"
        assert "queued, number 2 in line" in status["message"], status
        assert "at most 1 Executions at once" in status["message"]
        [admitted] = [c for c in status["conditions"] if c["type"] == "Admitted"]
        assert admitted["status"] == "False" and admitted["reason"] == "Queued"
        for name in ("first", "second", "third"):
            final = cluster.wait_for_phase(name)
            assert final["phase"] == "Succeeded", final
        assert cluster.status("third")["message"] != status["message"]
    ran = spans(runs)
    for (_, end), (start, _) in itertools.pairwise(ran):
        assert start >= end, "two Executions ran at once"


def operator_connections(database_uri: str, application: str) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
            return int(connection.execute(text(query), {"name": application}).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_one_bounded_database_pool_whatever_the_number_of_executions(
    tmp_path: Path,
    postgres_database_uri: str,  # noqa: F811
) -> None:
    """Eight Executions running at once share the operator's pool of two connections (the
    operator names itself to PostgreSQL; its job Pods do not). Without the shared pool,
    each running Execution held a connection of its own: 8 here."""
    application = f"kredun-operator-{uuid.uuid4().hex[:8]}"
    config = "[operator]\ndatabase_pool_size = 2\n"
    cluster = OperatorCluster(
        tmp_path, database=postgres_database_uri, operator_config=config, kubelet_parallel=8
    )
    with cluster:
        cluster.stop_operator()
        env = cluster.operator_env()
        env["PGAPPNAME"] = application  # libpq's: the job Pods' environment lacks it
        cluster.start_operator(env=env)
        names = [f"pool-{i}" for i in range(8)]
        for i, name in enumerate(names):
            cluster.create(name, cluster.plan_spec([flow.sleepy(i, 2.0), flow.inc(i)]))
        most = 0
        while not all(cluster.status(name).get("phase") == "Succeeded" for name in names):
            most = max(most, operator_connections(postgres_database_uri, application))
            assert all(cluster.status(n).get("phase") != "Failed" for n in names)
            time.sleep(0.1)
        assert 1 <= most <= 2, most
