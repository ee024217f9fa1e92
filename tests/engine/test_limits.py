"""Resource limits: `@task(limits=...)` and the `[limits]` config section bound how many jobs
holding a named resource run at once, whatever executor runs them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kredun import Scheduler, catch, subrun, task
from kredun.errors import ConfigError, TaskOptionError

from tests.support.modes import PROCESS

kredun_namespace = "limits_test"


@task(limits=["db"])
def uses_db(directory: str, i: int) -> int:
    """Marks itself running with a file, notes how many are running, then leaves."""
    mine = Path(directory) / f"running-{i}"
    mine.touch()
    running = len(list(Path(directory).glob("running-*")))
    with open(Path(directory) / "seen", "a") as handle:
        handle.write(f"{running}\n")
    time.sleep(0.15)
    mine.unlink()
    return i


@task(limits={"gpu": 2})
def needs_two_gpus(directory: str, i: int) -> int:
    return uses_db.func(directory, i)


@task()
def fails_holding(directory: str) -> int:
    raise ValueError("gave up")


def peak(directory: Path) -> int:
    return max(int(line) for line in (directory / "seen").read_text().split())


@pytest.mark.parametrize("executor", ["threads", "process"])
def test_limits_bound_concurrent_jobs(tmp_path, executor):
    config = {**(PROCESS if executor == "process" else {}), "limits": {"db": 2}}
    if executor == "process":
        config["executors"]["default"]["max_workers"] = 4
    scheduler = Scheduler(config=config)
    assert scheduler.run([uses_db(str(tmp_path), i) for i in range(6)]) == list(range(6))
    scheduler.close()
    assert peak(tmp_path) == 2  # never more, and the limit was used in full


def test_unconfigured_limit_allows_one_and_amounts_add_up(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    scheduler = Scheduler(config={"limits": {"gpu": 4}})
    assert scheduler.run([uses_db(str(one), i) for i in range(3)]) == [0, 1, 2]
    assert peak(one) == 1  # "db" is not configured: one at a time
    assert scheduler.run([needs_two_gpus(str(two), i) for i in range(5)]) == list(range(5))
    assert peak(two) == 2  # 4 gpus, 2 per job


def test_limits_inside_subrun(tmp_path):
    inner = [uses_db(str(tmp_path), i) for i in range(4)]
    config = {"executors": {"default": {"type": "local", "max_workers": 8}}, "limits": {"db": 3}}
    assert Scheduler().run(subrun(inner, "process", config=config)) == list(range(4))
    assert peak(tmp_path) <= 3


def test_limits_are_released_when_jobs_fail(tmp_path):
    held = fails_holding.options(limits=["db"])
    scheduler = Scheduler()
    expr = [catch(held(str(tmp_path)), ValueError, lambda error: -1), uses_db(str(tmp_path), 1)]
    assert scheduler.run(expr) == [-1, 1]


def test_bad_limits_are_refused(tmp_path):
    with pytest.raises(TaskOptionError, match=r"limits=.* must be a list of limit names"):
        uses_db.options(limits={"db": -1})
    with pytest.raises(TaskOptionError, match="limits="):
        uses_db.options(limits="db")
    with pytest.raises(ConfigError, match=r"limits.db = 'x' must be a whole number"):
        Scheduler(config={"limits": {"db": "x"}})
    with pytest.raises(ConfigError, match="needs 2 of limit 'gpu', but only 1 is configured"):
        Scheduler().run(needs_two_gpus(str(tmp_path), 1))
    assert os.listdir(tmp_path) == []
