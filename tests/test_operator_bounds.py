"""Bounded resources: `retries` validated and capped by the operator's `[jobs] max_retries`."""

from __future__ import annotations

from pathlib import Path

import pytest
from kredun import task
from kredun.config import Config
from kredun.options import retry_limit
from kredun.scheduler import Scheduler

from tests import test_operator_workflows as flow
from tests.support.operator import OperatorCluster
from tests.test_operator_hangs import plan_with_options

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
