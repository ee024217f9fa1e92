"""Scheduler tasks: expressions the scheduler itself reduces, deciding what to evaluate next.

`cond`, `catch`, `catch_all`, `seq` and `map_` cannot be ordinary tasks: an ordinary task's
arguments are all evaluated before it runs, while these evaluate some arguments only after
seeing others (the branch after the predicate, the recovery after the error). Their calls
are `SchedulerExpression`s; the scheduler hands each one to its handler with a small API
(`ControlRun` below) for evaluating sub-expressions with continuations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from .errors import SerializationError
from .expression import Expression, SchedulerExpression
from .hashing import hash_eval, hash_parts, hash_value, is_namedtuple
from .task import PartialTask, task

OnValue = Callable[[Any], None]
OnError = Callable[[BaseException, str | None, str], None]


class ControlRun(Protocol):
    """What a handler may ask of the run reducing its expression (`node`: the expression's
    place in the graph; it ends with `become`, `resolve` or `fail`)."""

    caching: bool

    def evaluate(self, node: Any, expr: Any, on_value: OnValue, on_error: OnError | None) -> None:
        """Evaluate `expr`, then call `on_value(value)`; a failure calls `on_error(error,
        traceback, where)`, or fails `node` when there is no `on_error`."""

    def become(self, node: Any, expr: Any) -> None:
        """`node` takes the value of `expr`, evaluated as if written in its place."""

    def resolve(self, node: Any, value: Any) -> None: ...

    def fail(self, node: Any, error: BaseException, traceback: str | None, where: str) -> None: ...

    def lookup(self, eval_hash: str) -> Any | None:
        """The expression recorded for a scheduler task call, or None."""

    def record_call(self, eval_hash: str, task: SchedulerTask, args_hash: str, expr: Any) -> None:
        """Record what a scheduler task call reduced to, for later runs to replay."""

    def context_of(self, node: Any) -> Any:
        """The `kredun.context.Context` the expression at `node` is evaluated under."""

    def tag_value(self, value: Any, tags: list[tuple[str, str]]) -> None:
        """Record tags on a value (by its hash) in the provenance store."""

    # What differs between Python values and the operator's references (kredun.domains).

    def test(self, node: Any, value: Any, then: Callable[[bool], None]) -> None:
        """Call `then(bool(value))`, once the truth of `value` is known (on a cluster, a
        job may have to find it out)."""

    def error_matches(self, error: BaseException, error_class: Any) -> bool:
        """Whether `error` is an instance of `error_class` (a class or tuple of them, or
        the class names a plan gives)."""

    def call(self, function: Any, argument: Any) -> Any:
        """The expression `function(argument)`: a recovery's call with its error (for
        catch_all, a nested value holding errors), or map_'s call with an item."""

    def evaluable(self, item: Any) -> bool:
        """Whether `item` is still to be evaluated (an expression, or a plan's)."""


class SchedulerTask:
    """A task the scheduler evaluates itself, by calling `handler(run, node, *args)`."""

    def __init__(self, handler: Callable[..., None], name: str, version: str = "1") -> None:
        self.handler = handler
        self.name = name
        self.namespace = "kredun"
        self.fullname = f"{self.namespace}.{name}"
        self.version = version
        self.source = ""
        self.hash = hash_parts("task", [self.fullname, "version", version])
        self.__doc__ = handler.__doc__
        _scheduler_tasks[self.fullname] = self

    def __repr__(self) -> str:
        return f"SchedulerTask(fullname={self.fullname}, hash={self.hash[:8]})"

    def __call__(self, *args: Any, **kwargs: Any) -> SchedulerExpression:
        return SchedulerExpression(self, args, kwargs)

    def partial(self, *args: Any, **kwargs: Any) -> PartialTask:
        """This scheduler task with some arguments supplied: `map_.partial(double)`."""
        return PartialTask(self, args, kwargs)

    def __kredun_hash__(self) -> str:
        return self.hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (scheduler_task_named, (self.fullname,))


_scheduler_tasks: dict[str, SchedulerTask] = {}


def scheduler_task_named(fullname: str) -> SchedulerTask:
    return _scheduler_tasks[fullname]


def scheduler_task(name: str, version: str = "1") -> Callable[[Callable], SchedulerTask]:
    return lambda handler: SchedulerTask(handler, name, version)


# -- cond -------------------------------------------------------------------------------------


@scheduler_task("cond")
def _cond(run: ControlRun, node: Any, *clauses: Any) -> None:
    """Evaluate predicates in turn; the first true one's expression is the value, else the
    last expression (the else) is, or None when there is none. Branches not taken are
    never evaluated."""

    def test(index: int) -> None:
        run.evaluate(node, clauses[index], lambda value: choose(index, value), None)

    def choose(index: int, value: Any) -> None:
        run.test(node, value, lambda truth: take(index, truth))

    def take(index: int, truth: bool) -> None:
        if truth:
            run.become(node, clauses[index + 1])
        elif index + 3 == len(clauses):
            run.become(node, clauses[index + 2])
        elif index + 2 == len(clauses):
            run.resolve(node, None)
        else:
            test(index + 2)

    test(0)


def cond(pred: Any, then: Any, *rest: Any) -> SchedulerExpression:
    """A lazy if: `cond(pred, then, otherwise)`, or `cond(p1, e1, p2, e2, ..., otherwise)`."""
    return _cond(pred, then, *rest)


# -- throw, catch, catch_all ------------------------------------------------------------------


@task(namespace="kredun", name="throw", version="1")
def throw(error: BaseException) -> None:
    """Raise `error` lazily, where the call is evaluated."""
    raise error


def _check_error_class(value: Any, where: str) -> None:
    classes = value if isinstance(value, tuple) else (value,)
    if not classes or not all(
        isinstance(cls, type) and issubclass(cls, BaseException) for cls in classes
    ):
        raise TypeError(f"{where}: expected an exception class or a tuple of them, not {value!r}")


@scheduler_task("catch")
def _catch(run: ControlRun, node: Any, expr: Any, *handlers: Any) -> None:
    """Evaluate `expr`; an error matching a class is replaced by its recovery's value.

    A recovery that succeeds is recorded under the call's hash, so a later run replays the
    recovery (itself cached) instead of running the failing expression again. Errors
    themselves are never recorded: a recovery that fails is not cached."""
    pairs = list(zip(handlers[0::2], handlers[1::2], strict=True))
    try:
        args_hash = hash_value((expr, *handlers))
    except SerializationError:
        args_hash = None  # not hashable: evaluated, just not replayed
    eval_hash = hash_eval(_catch.hash, args_hash) if args_hash else None

    def recovered(recovery: Any, value: Any) -> None:
        if eval_hash is not None and args_hash is not None:
            run.record_call(eval_hash, _catch, args_hash, recovery)
        run.resolve(node, value)

    def on_error(error: BaseException, traceback: str | None, where: str) -> None:
        for error_class, recover in pairs:
            if run.error_matches(error, error_class):
                recovery = run.call(recover, error)
                run.evaluate(node, recovery, functools.partial(recovered, recovery), None)
                return
        run.fail(node, error, traceback, where)

    cached = run.lookup(eval_hash) if eval_hash is not None and run.caching else None
    target = expr if cached is None else cached
    run.evaluate(node, target, lambda value: run.resolve(node, value), on_error)


def catch(expr: Any, *handlers: Any) -> SchedulerExpression:
    """`catch(expr, ErrorClass, recover, ...)`: like `try: expr / except ErrorClass as e:
    recover(e)`, lazily. `ErrorClass` may be a tuple; pairs are tried in order."""
    if not handlers or len(handlers) % 2:
        raise TypeError("catch() takes an expression and pairs of error class and recovery")
    for index in range(0, len(handlers), 2):
        _check_error_class(handlers[index], f"catch() argument {index + 2}")
        if not callable(handlers[index + 1]):
            raise TypeError(f"catch() argument {index + 3}: the recovery must be callable")
    return _catch(expr, *handlers)


class _Failed:
    """A term of catch_all that failed, until every term has ended."""

    __slots__ = ("error", "traceback", "where")

    def __init__(self, error: BaseException, traceback: str | None, where: str) -> None:
        self.error, self.traceback, self.where = error, traceback, where


def map_nested(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """`value` with every non-container inside lists, tuples, sets, dicts and namedtuples
    replaced by `leaf(item)`."""
    kind = type(value)
    if kind is list:
        return [map_nested(item, leaf) for item in value]
    if kind is tuple:
        return tuple(map_nested(item, leaf) for item in value)
    if kind is set:
        return {map_nested(item, leaf) for item in value}
    if kind is dict:
        return {map_nested(k, leaf): map_nested(v, leaf) for k, v in value.items()}
    if is_namedtuple(value):
        return kind(*(map_nested(item, leaf) for item in value))
    return leaf(value)


@scheduler_task("catch_all")
def _catch_all(
    run: ControlRun, node: Any, exprs: Any, error_class: Any = None, recover: Any = None
) -> None:
    """Evaluate every expression in `exprs` to its end, failed or not; then, if any failed,
    `recover(exprs with errors in place of the failed values)`."""
    slots: list[Any] = []
    remaining = 0

    def add_term(item: Any) -> Any:
        nonlocal remaining
        if not run.evaluable(item):
            return item
        index = len(slots)
        slots.append(None)
        remaining += 1
        run.evaluate(node, item, lambda value: settle(index, value),
                     lambda error, tb, where: settle(index, _Failed(error, tb, where)))  # fmt: skip
        return _Slot(index)

    def settle(index: int, outcome: Any) -> None:
        nonlocal remaining
        slots[index] = outcome
        remaining -= 1
        if remaining == 0:
            finish()

    def finish() -> None:
        failures = [slot for slot in slots if isinstance(slot, _Failed)]
        if not failures:
            run.resolve(node, map_nested(shape, fill))
            return
        if recover is None:
            first = failures[0]
            run.fail(node, first.error, first.traceback, first.where)
            return
        if run.evaluable(error_class) or run.evaluable(recover):
            run.evaluate(node, (error_class, recover), decide, None)
        else:
            decide((error_class, recover))

    def decide(handler: tuple[Any, Any]) -> None:
        classes, recovery = handler
        for failed in (slot for slot in slots if isinstance(slot, _Failed)):
            if not run.error_matches(failed.error, classes):
                run.fail(node, failed.error, failed.traceback, failed.where)
                return
        run.become(node, run.call(recovery, map_nested(shape, fill)))

    def fill(item: Any) -> Any:
        if isinstance(item, _Slot):
            slot = slots[item.index]
            return slot.error if isinstance(slot, _Failed) else slot
        return item

    shape = map_nested(exprs, add_term)
    if remaining == 0:
        run.resolve(node, shape)


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def catch_all(exprs: Any, error_class: Any = None, recover: Any = None) -> SchedulerExpression:
    """Evaluate every expression in the nested value `exprs`; if any fail, call
    `recover(exprs with each failed one replaced by its error)` when every error is an
    `error_class`, else re-raise the first error (the first of all when no `recover`)."""
    if recover is not None and not isinstance(error_class, Expression):
        _check_error_class(error_class, "catch_all() error_class")
    return _catch_all(exprs, error_class, recover)


# -- sequencing and mapping -------------------------------------------------------------------


@scheduler_task("seq")
def seq(run: ControlRun, node: Any, exprs: Any) -> None:
    """Evaluate `exprs` serially, each only after the one before has finished; the value is
    the list of their values."""
    items = list(exprs)
    values: list[Any] = []

    def step(value: Any) -> None:
        values.append(value)
        if len(values) == len(items):
            run.resolve(node, values)
        else:
            run.evaluate(node, items[len(values)], step, None)

    if not items:
        run.resolve(node, [])
    else:
        run.evaluate(node, items[0], step, None)


# `map_` and `seq` are the scheduler tasks themselves, as in redun: `map_.partial(task)`
# makes a task over lists.
@scheduler_task("map_")
def map_(run: ControlRun, node: Any, a_task: Any, values: Any) -> None:
    """Apply a task to each of `values` (a list or an expression of one), like `map`:
    `[a_task(value) for value in values]`, once the task and the values are known."""

    def with_task(function: Any) -> None:
        if isinstance(values, list | tuple):
            run.become(node, [run.call(function, value) for value in values])
        else:
            run.evaluate(node, values, lambda items: run.become(
                node, [run.call(function, value) for value in items]
            ), None)  # fmt: skip

    if run.evaluable(a_task):
        run.evaluate(node, a_task, with_task, None)
    else:
        with_task(a_task)


# -- threads ----------------------------------------------------------------------------------


class Thread:
    """A handle on an expression `fork_thread` evaluates in the background."""

    __slots__ = ("id",)

    def __init__(self, thread_id: str) -> None:
        self.id = thread_id

    def __repr__(self) -> str:
        return f"Thread({self.id[:8]})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Thread, (self.id,))

    def __kredun_hash__(self) -> str:
        return hash_parts("thread", [self.id])


class _ThreadState:
    __slots__ = ("failure", "finished", "value", "waiting")

    def __init__(self) -> None:
        self.finished = False
        self.value: Any = None
        self.failure: tuple[BaseException, str | None, str] | None = None
        self.waiting: list[Any] = []


def _thread_ended(run: Any, state: _ThreadState, value: Any, failure: Any) -> None:
    state.finished, state.value, state.failure = True, value, failure
    for node in state.waiting:
        _settle_join(run, node, state)
    state.waiting = []


def _settle_join(run: ControlRun, node: Any, state: _ThreadState) -> None:
    if state.failure is not None:
        run.fail(node, *state.failure)
    else:
        run.resolve(node, state.value)


@scheduler_task("fork_thread")
def _fork_thread(run: Any, node: Any, expr: Any) -> None:
    """Start evaluating `expr` and resolve at once to a Thread handle on it."""
    import uuid

    thread = Thread(uuid.uuid4().hex)
    state = run.threads[thread.id] = _ThreadState()
    run.evaluate(
        node, expr, lambda value: _thread_ended(run, state, value, None),
        lambda error, tb, where: _thread_ended(run, state, None, (error, tb, where)),
    )  # fmt: skip
    run.resolve(node, thread)


@scheduler_task("join_thread")
def _join_thread(run: Any, node: Any, thread: Any) -> None:
    """The value of a forked expression, once it has one (its error, if it failed)."""

    def join(handle: Any) -> None:
        state = run.threads.get(getattr(handle, "id", None))
        if state is None:
            raise TypeError(f"join_thread() needs a Thread from fork_thread() in this run, "
                            f"not {handle!r}")  # fmt: skip
        if state.finished:
            _settle_join(run, node, state)
        else:
            state.waiting.append(node)

    run.evaluate(node, thread, join, None)


def fork_thread(expr: Any) -> SchedulerExpression:
    """Evaluate `expr` in the background: the value is a Thread for `join_thread`, so the
    task that forked it can finish before `expr` does."""
    return _fork_thread(expr)


def join_thread(thread: Any) -> SchedulerExpression:
    """Wait for a forked expression and take its value (or its error)."""
    return _join_thread(thread)
