"""Higher-order helpers over tasks and lazy values, with redun's names and meanings.

`map_` and `seq` are scheduler tasks (they decide what to evaluate as values arrive); the
rest are ordinary tasks, or partial applications of them, so they cache like any call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from textwrap import dedent
from typing import Any

from .compat import unsupported as _unsupported
from .control import map_, seq
from .task import PartialTask, task

__all__ = [
    "apply_func", "as_task", "compose", "const", "delay", "eval_", "flat_map", "flatten",
    "force", "identity", "map_", "seq", "starmap", "zip_",
]  # fmt: skip


@task(namespace="kredun", version="1")
def identity(x: Any) -> Any:
    """Its argument."""
    return x


@task(namespace="kredun", version="1")
def compose_apply(tasks: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
    """`tasks[0](tasks[1](...tasks[-1](*args, **kwargs)))`, as expressions."""
    *outer, innermost = tasks
    result = innermost(*args, **kwargs)
    for function in reversed(outer):
        result = function(result)
    return result


def compose(*tasks: Any) -> PartialTask:
    """`compose(f, g)(x)` is `f(g(x))`."""
    if not tasks:
        raise TypeError("compose() needs at least one task")
    return compose_apply.partial(tasks)


def delay(x: Any) -> PartialTask:
    """A call that evaluates `x` only when forced: `force(delay(expr))`."""
    return identity.partial(x)


def force(x: Any) -> Any:
    """Evaluate a delayed value (or call any argument-less task)."""
    return x()


@task(namespace="kredun", version="1")
def const(x: Any, _: Any) -> Any:
    """`x`, once `_` has been evaluated too (to run something for its effect)."""
    return x


@task(namespace="kredun", version="1")
def apply_func(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`func(*args, **kwargs)` on evaluated arguments; `func` must be importable (module level)."""
    return func(*args, **kwargs)


def as_task(func: Callable[..., Any]) -> PartialTask:
    """A plain function as a task: `as_task(max)(10, lazy_value)`."""
    return apply_func.partial(func)


@task(namespace="kredun", version="1")
def eval_(code: str, *args: Any, **kwargs: Any) -> Any:
    """Evaluate the Python expression `code` with `kwargs` as variables; positional
    arguments are named by the `pos_args` keyword: `eval_("x + 1", 2, pos_args=["x"])`."""
    names = kwargs.pop("pos_args", [])
    if len(names) != len(args):
        raise TypeError(
            f"eval_() got {len(args)} positional argument(s) but pos_args names {len(names)}"
        )
    variables = dict(zip(names, args, strict=True))
    variables.update(kwargs)
    return eval(dedent(code), variables)  # the workflow's own code, run in its job


def starmap(a_task: Any, kwargs: Any = ()) -> Any:
    """`[a_task(**item) for item in kwargs]`."""
    return map_(eval_.partial("a_task(**x)", pos_args=["x"], a_task=a_task), kwargs)


@task(namespace="kredun", version="1")
def flatten(list_of_lists: Sequence[Sequence[Any]]) -> list[Any]:
    """One list of all the items of the inner lists."""
    return [value for inner in list_of_lists for value in inner]


@task(namespace="kredun", version="1")
def flat_map(a_task: Any, values: list) -> Any:
    """`a_task` applied to each value, the resulting lists concatenated."""
    return flatten(map_(a_task, values))


@task(namespace="kredun", version="1")
def zip_(*lists: list) -> list[tuple]:
    """`list(zip(*lists))` on evaluated lists."""
    return list(zip(*lists))  # noqa: B905 -- zip's own semantics, as redun's zip_


def __getattr__(name: str) -> Any:
    # redun helpers kredun lacks (no_prov) fail with what to use instead.
    raise _unsupported(__name__, name)
