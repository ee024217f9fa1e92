"""kredun.functools: redun's higher-order helpers, on threads, processes and in subrun."""

from __future__ import annotations

import itertools
import time

import pytest
from kredun import Scheduler, task
from kredun.functools import (
    apply_func,
    as_task,
    compose,
    const,
    delay,
    eval_,
    flat_map,
    flatten,
    force,
    identity,
    map_,
    seq,
    starmap,
    zip_,
)

from tests.support.modes import MODES, run_in

kredun_namespace = "functools_test"


@task()
def inc(x: int) -> int:
    return x + 1


@task()
def double(x: int) -> int:
    return 2 * x


@task()
def add(a: int, b: int = 0) -> int:
    return a + b


@task()
def numbers(n: int) -> list:
    return list(range(n))


@task()
def pair(x: int) -> list:
    return [x, x]


@task()
def stamp(label: str) -> tuple:
    start = time.monotonic()
    time.sleep(0.2)
    return label, start, time.monotonic()


@task()
def fail(message: str) -> int:
    raise ValueError(message)


@pytest.mark.parametrize("mode", MODES)
def test_functools_evaluate_as_in_redun(mode):
    expr = {
        "map": map_(inc, [1, numbers(2)[1], 3]),
        "map_lazy": map_(double, numbers(3)),
        "starmap": starmap(add, [{"a": 1, "b": 2}, {"a": numbers(5)[4]}]),
        "flat_map": flat_map(pair, numbers(2)),
        "flatten": flatten([[1], numbers(2), []]),
        "zip": zip_(numbers(2), ["a", "b"]),
        "compose": compose(inc, double)(5),  # inc(double(5))
        "identity": identity(numbers(1)),
        "const": const(1, numbers(2)),
        "force": force(delay(inc(1))),
        "apply": apply_func(max, numbers(4)),
        "as_task": as_task(max)(3, numbers(2)[1], 7),
        "eval": eval_("[x * y for x in xs]", numbers(3), pos_args=["xs"], y=10),
    }
    assert run_in(mode, expr) == {
        "map": [2, 2, 4],
        "map_lazy": [0, 2, 4],
        "starmap": [3, 4],
        "flat_map": [0, 0, 1, 1],
        "flatten": [1, 0, 1],
        "zip": [(0, "a"), (1, "b")],
        "compose": 11,
        "identity": [0],
        "const": 1,
        "force": 2,
        "apply": 3,
        "as_task": 7,
        "eval": [0, 10, 20],
    }


@pytest.mark.parametrize("mode", ["threads", "process"])
def test_seq_runs_one_after_another(mode):
    results = run_in(mode, seq([stamp("a"), stamp("b"), stamp("c")]))
    assert [label for label, _, _ in results] == ["a", "b", "c"]
    for (_, _, end), (_, start, _) in itertools.pairwise(results):
        assert start >= end  # each started after the previous one ended
    assert run_in(mode, seq([])) == []


def test_delay_does_not_evaluate_until_forced():
    scheduler = Scheduler()
    delayed = scheduler.run(delay(fail("not yet")))  # a partial: nothing ran
    assert delayed.fullname == "kredun.identity" and delayed.args[0].args == ("not yet",)
    with pytest.raises(ValueError, match="not yet"):
        scheduler.run(force(delayed))


@pytest.mark.parametrize("mode", MODES)
def test_failures_inside_helpers_fail_the_run(mode):
    with pytest.raises(ValueError, match="bad item"):
        run_in(mode, map_(inc, [1, fail("bad item")]))
    with pytest.raises(ValueError, match="second"):
        run_in(mode, seq([inc(1), fail("second"), inc(3)]))
    with pytest.raises(TypeError, match="pos_args names 0"):
        run_in(mode, eval_("x", 1))


def test_helpers_cache_like_any_task(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db'}"
    first = Scheduler(db_uri=uri)
    assert first.run(map_(inc, numbers(3))) == [1, 2, 3]
    first.close()
    again = Scheduler(db_uri=uri)
    again.run(map_(inc, numbers(3)))
    records = again.store.jobs_of(again.store.recent_executions(1)[0].id)
    assert records and all(record.status == "CACHED" for record in records)
    again.close()
