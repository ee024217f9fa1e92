"""Lazy expressions: what calling a task, or operating on such a call, returns.

Nothing here evaluates anything; the scheduler reduces expressions to values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from .hashing import hash_parts, hash_value

if TYPE_CHECKING:
    from .task import Task


class Expression:
    """Base of lazy values. Operators, item/attribute access and calls build new expressions."""

    __slots__ = ()

    # Identity semantics: __eq__ is lazy, so hashing by content would be meaningless.
    __hash__ = object.__hash__

    def __getitem__(self, key: Any) -> SimpleExpression | list[SimpleExpression]:
        if isinstance(key, slice):
            # As redun: a slice of a lazy sequence is a list of lazy items, so its length
            # must be known where it is written.
            if key.stop is None or (key.start or 0) < 0 or key.stop < 0:
                raise TypeError(
                    "a slice of an expression needs a non-negative start and an explicit stop "
                    "(expr[0:3]); its length is not known until the scheduler runs it"
                )
            start, stop, step = key.start or 0, key.stop, key.step or 1
            return [SimpleExpression("getitem", (self, i), {}) for i in range(start, stop, step)]
        return SimpleExpression("getitem", (self, key), {})

    def __getattr__(self, name: str) -> SimpleExpression:
        # Private and dunder names stay real attribute errors, so copy, pickle and
        # introspection never mistake an expression for an object with those hooks.
        if name.startswith("_"):
            raise AttributeError(name)
        return SimpleExpression("getattr", (self, name), {})

    def __call__(self, *args: Any, **kwargs: Any) -> SimpleExpression:
        return SimpleExpression("call", (self, args, kwargs), {})

    def __iter__(self) -> NoReturn:
        raise TypeError(
            "an expression's value is not known until the scheduler runs it; index it "
            "(expr[0]), or give its task nout=N or a '-> tuple[int, str]' return annotation "
            "so its calls unpack"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            "an expression has no truth value until the scheduler runs it: use "
            "cond(pred, then, otherwise) for a lazy if, or test the value inside a task"
        )

    def __kredun_hash__(self) -> str:
        raise NotImplementedError


def _binary(
    name: str,
) -> tuple[
    Callable[[Expression, Any], SimpleExpression], Callable[[Expression, Any], SimpleExpression]
]:
    def forward(self: Expression, other: Any) -> SimpleExpression:
        return SimpleExpression(name, (self, other), {})

    def reverse(self: Expression, other: Any) -> SimpleExpression:
        return SimpleExpression(name, (other, self), {})

    return forward, reverse


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor"):
    _forward, _reverse = _binary(_name)
    setattr(Expression, f"__{_name}__", _forward)
    setattr(Expression, f"__r{_name}__", _reverse)
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(Expression, f"__{_name}__", _binary(_name)[0])
for _name in ("neg", "pos", "invert", "abs"):
    setattr(
        Expression,
        f"__{_name}__",
        (lambda op: lambda self: SimpleExpression(op, (self,), {}))(_name),
    )


def _call(function: Any, args: tuple, kwargs: dict) -> Any:
    return function(*args, **kwargs)


# The operations a SimpleExpression may name, and how to apply them to concrete values.
SIMPLE_OPERATIONS: dict[str, Any] = {
    "getitem": operator.getitem,
    "getattr": getattr,
    "call": _call,
    "and": operator.and_,
    "or": operator.or_,
    "abs": abs,
    # A cond's predicate whose truth nobody reported: tested in a job that reports it.
    "truth": bool,
    **{
        name: getattr(operator, name)
        for name in (
            *("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "xor"),
            *("lt", "le", "eq", "ne", "gt", "ge", "neg", "pos", "invert"),
        )
    },
}


class _Call(Expression):
    """What a call of a task and a call of a scheduler task share: the callee and its
    (unevaluated) arguments."""

    __slots__ = ("args", "kwargs", "task")
    # Declared, so that reading them is not mistaken for a lazy attribute (__getattr__).
    task: Any
    args: tuple
    kwargs: dict
    _hash_tag = ""

    def __init__(self, task: Any, args: tuple, kwargs: dict) -> None:
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)

    @property
    def task_name(self) -> str:
        return self.task.fullname

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task.fullname!r}, {self.args!r}, {self.kwargs!r})"

    def __kredun_hash__(self) -> str:
        return hash_parts(
            self._hash_tag, [self.task.hash, hash_value(self.args), hash_value(self.kwargs)]
        )


class TaskExpression(_Call):
    """A call of a task on arguments, not yet evaluated."""

    __slots__ = ()
    task: Task
    _hash_tag = "expr:task"

    def __iter__(self) -> Iterator[SimpleExpression]:  # type: ignore[override]
        length = getattr(self.task, "nout", None)
        if length is None:  # nout=0 unpacks into nothing
            return super().__iter__()
        return (SimpleExpression("getitem", (self, i), {}) for i in range(length))

    def __kredun_hash__(self) -> str:
        # A call's own options (`task.options(cache_scope=...)(x)`) make it another
        # expression: a recorded `catch` of the call must not stand in for it.
        overrides = getattr(self.task, "_overrides", None)
        if not overrides:
            return super().__kredun_hash__()
        return hash_parts("expr:task+options", [super().__kredun_hash__(), hash_value(overrides)])

    def __reduce__(self) -> tuple[Any, ...]:
        return self.task.call_reduction(self.args, self.kwargs)


class SimpleExpression(Expression):
    """An operation (item/attribute access, a call, an operator) on lazy values."""

    __slots__ = ("args", "func_name", "kwargs")
    func_name: str
    args: tuple
    kwargs: dict

    def __init__(self, func_name: str, args: tuple, kwargs: dict) -> None:
        object.__setattr__(self, "func_name", func_name)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)

    def __repr__(self) -> str:
        return f"SimpleExpression({self.func_name!r}, {self.args!r}, {self.kwargs!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SimpleExpression, (self.func_name, self.args, self.kwargs))

    def __kredun_hash__(self) -> str:
        return hash_parts(
            "expr:simple", [self.func_name, hash_value(self.args), hash_value(self.kwargs)]
        )


class SchedulerExpression(_Call):
    """A call of a scheduler task. Its arguments are evaluated only as its handler asks."""

    __slots__ = ()
    _hash_tag = "expr:scheduler"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SchedulerExpression, (self.task, self.args, self.kwargs))


class ValueExpression(Expression):
    """A concrete value lifted into an expression; it evaluates to the value as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, Expression):
            raise TypeError(f"ValueExpression takes a concrete value, not {value!r}")
        object.__setattr__(self, "value", value)

    def __repr__(self) -> str:
        return f"ValueExpression({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ValueExpression, (self.value,))

    def __kredun_hash__(self) -> str:
        return hash_parts("expr:value", [hash_value(self.value)])


class QuotedExpression:
    """An expression carried as a plain value, so the scheduler does not evaluate it.

    `subrun` quotes its sub-expression: the nested scheduler evaluates it, not the parent.
    """

    __slots__ = ("expr",)

    def __init__(self, expr: Any) -> None:
        self.expr = expr

    def __repr__(self) -> str:
        return f"QuotedExpression({self.expr!r})"

    def eval(self) -> Any:
        """The quoted expression itself, e.g. to return it from a task for evaluation."""
        return self.expr

    def __reduce__(self) -> tuple[Any, ...]:
        return (QuotedExpression, (self.expr,))

    def __kredun_hash__(self) -> str:
        return hash_parts("quoted", [hash_value(self.expr)])


def quote(expr: Any) -> QuotedExpression:
    """Wrap `expr` so the scheduler passes it along unevaluated (`.eval()` unwraps it)."""
    return QuotedExpression(expr)
