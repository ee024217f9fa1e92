"""nout: calls of a task whose result has a known length unpack lazily (`a, b = split(x)`)."""

from __future__ import annotations

import typing
from typing import NamedTuple

import pytest
from kredun import Scheduler, task
from kredun.errors import TaskOptionError

from tests.support.modes import MODES, run_in

kredun_namespace = "nout_test"


class Pair(NamedTuple):
    name: str
    age: int


@task()
def split(text: str) -> tuple[str, str]:
    head, _, tail = text.partition(" ")
    return head, tail


@task()
def typed_split(text: str) -> typing.Tuple[str, int, float]:  # noqa: UP006 -- the old spelling
    return text, len(text), 1.5


@task()
def named(text: str) -> Pair:
    return Pair(text, len(text))


@task(nout=3)
def three(x: int) -> list:
    return [x, x + 1, x + 2]


@task()
def listed(x: int) -> list:
    return [x, x * 2]


@task()
def shout(word: str) -> str:
    return word.upper()


@task()
def explode(text: str) -> tuple[str, str]:
    raise ValueError(f"cannot split {text!r}")


@task()
def main(text: str) -> list:
    # Unpacking inside a task: the scheduler evaluates what the task returns.
    first, rest = split(text)
    return [shout(first), rest]


def test_nout_is_the_option_or_the_return_annotation():
    assert (split.nout, typed_split.nout, named.nout, three.nout, listed.nout) == (
        2, 3, 2, 3, None
    )  # fmt: skip
    assert listed.options(nout=2).nout == 2


@pytest.mark.parametrize("mode", MODES)
def test_lazy_results_unpack(mode):
    first, second = split("hello big world")
    a, b, c = three(1)
    name, size = named("bob")
    x, y = listed.options(nout=2)(4)
    expr = [shout(first), second, [a, b, c], name, size, x + y]
    assert run_in(mode, expr) == ["HELLO", "big world", [1, 2, 3], "bob", 3, 12]
    assert run_in(mode, main("good day")) == ["GOOD", "day"]


@pytest.mark.parametrize("mode", MODES)
def test_unpacking_a_failing_call_fails_the_run(mode):
    first, _ = explode("x")
    with pytest.raises(ValueError, match="cannot split 'x'"):
        run_in(mode, shout(first))


def test_wrong_lengths_and_unknown_lengths():
    with pytest.raises(ValueError, match="too many values to unpack"):
        _first, _second = three(1)
    with pytest.raises(TypeError, match="nout=N"):
        _first, _second = listed(1)
    # A result shorter than nout claims fails where the missing item is used.
    short = listed.options(nout=3)(1)
    with pytest.raises(IndexError):
        Scheduler().run(list(short))


@pytest.mark.parametrize("bad", ["3", -1, 2.0, True])
def test_bad_nout_is_rejected_at_decoration(bad):
    with pytest.raises(TaskOptionError, match="option nout=") as raised:

        @task(nout=bad)
        def make_list() -> list:
            return [1, 2, 3]

    assert isinstance(raised.value, TypeError)
    with pytest.raises(TypeError, match="option nout="):
        listed.options(nout=bad)
