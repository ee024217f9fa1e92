"""Expressions as redun users write them: ValueExpression, quote, no truth value, checked
names, slices, and calling a task or partial that another task produced."""

from __future__ import annotations

import pytest
from kredun import QuotedExpression, Scheduler, ValueExpression, quote, task
from kredun.errors import KredunError, TaskNameError

from tests.engine.test_plans import operator_like_run, plan_of, resolved
from tests.support.modes import MODES, run_in

kredun_namespace = "expr_test"


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def make_partial():
    return add.partial(1)


@task()
def make_task():
    return add


@task()
def make_number():
    return 5


@task()
def divide(a: int, b: int) -> float:
    return a / b


@task()
def is_quoted(value) -> bool:
    return isinstance(value, QuotedExpression)


@task()
def unquote(value):
    return value.eval()


@pytest.mark.parametrize("mode", MODES)
def test_calling_a_lazily_produced_partial_or_task_evaluates_it(mode):
    assert run_in(mode, make_partial()(10)) == 11
    assert run_in(mode, make_task()(2, b=3)) == 5
    assert run_in(mode, [make_partial()(make_partial()(1)), add(make_partial()(0), 1)]) == [3, 2]


@pytest.mark.parametrize("mode", MODES)
def test_a_lazily_produced_call_that_fails_fails_the_run(mode):
    lazily_divide = make_task.options()  # same task; returns `add`
    with pytest.raises(ZeroDivisionError):
        run_in(mode, add(make_partial()(divide(1, 0)), lazily_divide()(1, 1)))
    with pytest.raises(TypeError, match="not callable"):
        run_in(mode, make_number()(1))


def test_calling_a_lazily_produced_partial_in_a_plan(tmp_path):
    """The operator's path: the call runs as a simple operation in a worker, whose result
    (a task call) comes back as a plan fragment."""
    database, values = f"sqlite:///{tmp_path / 'db'}", f"file://{tmp_path / 'values'}"
    ref = operator_like_run(plan_of(make_partial()(10), values), database, values)
    assert resolved(ref, database, values) == 11


@pytest.mark.parametrize("mode", MODES)
def test_value_expression_evaluates_to_its_value(mode):
    assert run_in(mode, ValueExpression(10)) == 10
    assert run_in(mode, add(ValueExpression(2), 3)) == 5
    # Its value is taken as it is, even a container.
    assert run_in(mode, [ValueExpression({"a": [1, 2]}), 3]) == [{"a": [1, 2]}, 3]


def test_value_expression_basics():
    expr = ValueExpression(10)
    assert repr(expr) == "ValueExpression(10)"
    assert expr.value == 10
    with pytest.raises(TypeError, match="concrete value"):
        ValueExpression(add(1, 2))
    scheduler = Scheduler()
    # The same call whether the argument is lifted or not: one job, replayed.
    assert scheduler.run(add(ValueExpression(1), 2)) == scheduler.run(add(1, 2)) == 3
    assert scheduler.run(add(ValueExpression(1), 2)) == 3


@pytest.mark.parametrize("mode", ["threads", "process"])
def test_quote_passes_an_expression_along_unevaluated(mode):
    quoted = quote(add(1, 2))
    assert isinstance(quoted, QuotedExpression) and quoted.eval().args == (1, 2)
    assert run_in(mode, is_quoted(quoted)) is True
    assert run_in(mode, unquote(quoted)) == 3  # returned from a task, it is evaluated


def test_an_expression_has_no_truth_value():
    with pytest.raises(TypeError, match=r"cond\(pred, then, otherwise\)"):
        bool(add(1, 2))
    with pytest.raises(TypeError, match="no truth value"):
        if add(1, 2) == 3:
            pass


def test_slices_of_expressions_are_lists_of_items():
    items = add(1, 2)[0:3]
    assert isinstance(items, list) and len(items) == 3
    assert Scheduler().run(make_task()(["a"], ["b", "c"])[1:3]) == ["b", "c"]
    with pytest.raises(TypeError, match="explicit stop"):
        add(1, 2)[1:]


@pytest.mark.parametrize(
    ("name", "namespace", "message"),
    [
        ("my-task", None, "task name 'my-task'"),
        ("1st", None, "task name '1st'"),
        ("ok", "bad ns", "task namespace 'bad ns'"),
        ("ok", ".lead", "task namespace '.lead'"),
    ],
)
def test_task_and_namespace_names_are_checked(name, namespace, message):
    def body():
        return 1

    with pytest.raises(TaskNameError, match=message) as raised:
        task(name=name, namespace=namespace)(body)
    assert isinstance(raised.value, KredunError) and isinstance(raised.value, ValueError)
    assert task(name="ok_2", namespace="a.b_c.d")(body).fullname == "a.b_c.d.ok_2"
