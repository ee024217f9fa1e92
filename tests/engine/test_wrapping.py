"""wraps_task: decorators that wrap a task in another, with redun's naming and hashing."""

from __future__ import annotations

import pytest
from kredun import Scheduler, get_task, task, wraps_task

from tests.support.modes import MODES, run_in
from tests.support.tasks import restored_registry  # noqa: F401

kredun_namespace = "wrap_test"


def doubled():
    @wraps_task()
    def _doubled(inner):
        def double(*args, **kwargs):
            return 2 * inner.func(*args, **kwargs)

        return double

    return _doubled


def scaled(factor: int):
    @wraps_task(wrapper_hash_includes=[factor])
    def _scaled(inner):
        def scale(*args, **kwargs):
            return factor * inner.func(*args, **kwargs)

        return scale

    return _scaled


@doubled()
@task()
def plus_one(x: int) -> int:
    return x + 1


@doubled()
@doubled()
def plus_two(x: int) -> int:
    return x + 2


@pytest.mark.parametrize("mode", MODES)
def test_a_wrapped_task_runs_the_wrapper_in_its_place(mode):
    assert run_in(mode, [plus_one(1), plus_two(1)]) == [4, 12]


def test_the_inner_task_moves_to_an_inner_namespace_and_keeps_its_signature():
    assert plus_one.fullname == "wrap_test.plus_one"
    hidden = get_task("wrap_test._doubled.plus_one")
    assert hidden is not None and hidden.func(1) == 2
    assert get_task("wrap_test._doubled._doubled.plus_two") is not None  # wrapped twice
    assert list(plus_one.signature.parameters) == ["x"]


@pytest.mark.usefixtures("restored_registry")
def test_the_inner_code_and_the_wrapper_arguments_take_part_in_the_hash():
    def define(body, factor):
        @scaled(factor)
        @task(namespace="wrap_unit", name="step", version=body)
        def step(x):
            return eval(body, {"x": x})

        return step

    first = define("x + 1", 3)
    assert define("x + 1", 3).hash == first.hash
    assert define("x + 2", 3).hash != first.hash  # the inner task changed
    assert define("x + 1", 4).hash != first.hash  # the wrapper's argument changed
    assert Scheduler().run(define("x + 1", 4)(1)) == 8
