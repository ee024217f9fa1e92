"""The seed notebook `scheduler-walkthrough.md`, cell by cell, with kredun in place of redun.

Each test is one or a few cells; values and reprs are checked as the notebook shows them.
Hashes differ from redun's (a different hash function), so reprs are matched up to them.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from kredun import Scheduler, task

from tests.support.tasks import restored_registry  # noqa: F401

redun_namespace = "redun_notebook"

HEX8 = r"[0-9a-f]{8}"


@task()
def add(a, b):
    return a + b


@task()
def add_many(values, init=0):
    if len(values) == 0:
        return init
    elif len(values) == 1:
        return values[0]
    else:
        k = len(values) // 2
        sum1 = add_many(values[:k])
        sum2 = add_many(values[k:])
        return add(sum1, sum2)


@task()
def intdiv(numerator, denominator):
    quotient, remainder = divmod(numerator, denominator)
    return {"quotient": quotient, "remainder": remainder}


class User:
    def __init__(self, name, friend=None):
        self.name = name
        self.friend = friend

    def get_friend(self):
        return self.friend


@task()
def returns_alot():
    return User("Alice", friend=User("Bob"))


@task()
def divide_and_conquer(a_task, values, init=0):
    if len(values) == 0:
        return init
    elif len(values) == 1:
        return values[0]
    else:
        k = len(values) // 2
        sum1 = divide_and_conquer(a_task, values[:k])
        sum2 = divide_and_conquer(a_task, values[k:])
        return a_task(sum1, sum2)


@task()
def mult(a, b):
    return a * b


@task()
def pair(a, b):
    return (a, b)


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def scheduler():
    scheduler = Scheduler()
    scheduler.logger.setLevel(logging.INFO)
    yield scheduler
    scheduler.close()


@pytest.fixture
def log_lines(scheduler):
    handler = LogLines()
    scheduler.logger.addHandler(handler)
    yield handler.lines
    scheduler.logger.removeHandler(handler)


def test_cells_4_to_6_task_repr_properties_and_expression():
    assert re.fullmatch(rf"Task\(fullname=redun_notebook\.add, hash={HEX8}\)", repr(add))
    assert add.name == "add"
    assert re.fullmatch(r"[0-9a-f]{40}", add.hash)
    assert repr(add).endswith(f"hash={add.hash[:8]})")
    assert add.func.__name__ == "add" and add.func(1, 2) == 3
    assert add.source == "def add(a, b):\n    return a + b\n"
    assert repr(add(1, 2)) == "TaskExpression('redun_notebook.add', (1, 2), {})"


def test_cell_7_run_logs_job_and_status_table(scheduler, log_lines):
    assert scheduler.run(add(1, 2)) == 3
    assert log_lines[0].startswith("Start Execution ")
    assert re.fullmatch(
        rf"Run    Job {HEX8}:  redun_notebook\.add\(a=1, b=2\) on default", log_lines[1]
    )
    table = log_lines[2:]
    assert table[0] == ""
    assert re.fullmatch(r"\| JOB STATUS \d{4}/\d\d/\d\d \d\d:\d\d:\d\d", table[1])
    assert table[2:6] == [
        "| TASK               PENDING RUNNING  FAILED  CACHED    DONE   TOTAL",
        "| ",
        "| ALL                      0       0       0       0       1       1",
        "| redun_notebook.add       0       0       0       0       1       1",
    ]
    assert re.fullmatch(r"Execution duration: \d+\.\d\d seconds", log_lines[-1])


def test_cells_8_and_11_nested_expression_and_cache_replay(scheduler, log_lines):
    expr = add(add(1, 2), 3)
    assert repr(expr) == (
        "TaskExpression('redun_notebook.add', "
        "(TaskExpression('redun_notebook.add', (1, 2), {}), 3), {})"
    )
    assert scheduler.run(add(1, 2)) == 3
    log_lines.clear()
    assert scheduler.run(expr) == 6
    cached = [line for line in log_lines if line.startswith("Cached Job")]
    assert len(cached) == 1
    assert re.fullmatch(
        rf"Cached Job {HEX8}:  redun_notebook\.add\(a=1, b=2\) \(eval_hash={HEX8}\)", cached[0]
    )
    assert "| ALL                      0       0       0       1       2       2" in log_lines


@pytest.mark.usefixtures("restored_registry")
def test_cells_13_14_version_changes_hash_and_source():
    @task(version="1", namespace="redun_notebook", name="add")
    def slow_add(a, b):
        time.sleep(0)
        return a + b

    assert slow_add.fullname == add.fullname
    assert slow_add.hash != add.hash
    assert slow_add.source.startswith("def slow_add(a, b):\n    time.sleep(0)")

    # The version, not the source, decides the hash.
    @task(version="1", namespace="redun_notebook", name="add")
    def other_body(a, b):
        return a - b

    assert other_body.hash == slow_add.hash


def test_cell_15_independent_tasks_run_in_parallel(scheduler):
    spans: dict[tuple, tuple[float, float]] = {}
    lock = threading.Lock()

    @task(namespace="redun_notebook")
    def timed_add(a, b):
        start = time.monotonic()
        time.sleep(0.4)
        with lock:
            spans[(a, b)] = (start, time.monotonic())
        return a + b

    assert scheduler.run(timed_add(timed_add(1, 2), timed_add(3, 4))) == 10
    (start1, stop1), (start2, stop2) = spans[(1, 2)], spans[(3, 4)]
    assert start1 < stop2 and start2 < stop1, "the two independent adds must overlap"
    assert spans[(3, 7)][0] >= max(stop1, stop2), "the outer add waits for both"


def test_cells_16_17_task_returning_expression_grows_graph(scheduler, log_lines):
    @task(namespace="redun_notebook")
    def add4(a, b, c, d):
        return add(add(a, b), add(c, d))

    assert scheduler.run(add4(5, 6, 7, 8)) == 26
    assert "| redun_notebook.add        0       0       0       0       3       3" in log_lines
    assert "| redun_notebook.add4       0       0       0       0       1       1" in log_lines


def test_cells_18_19_recursive_add_many(scheduler):
    assert scheduler.run(add_many(list(range(100)))) == 4950


def test_cells_21_22_scatter_gather(scheduler):
    values = [add(i, 1) for i in range(10)]
    assert scheduler.run(add_many(values)) == 55
    assert repr(values[0]) == "TaskExpression('redun_notebook.add', (0, 1), {})"
    assert repr(values[9]) == "TaskExpression('redun_notebook.add', (9, 1), {})"


def test_cell_24_dict(scheduler):
    expr = {"first": add(1, 2), "second": add(3, 4)}
    assert str(expr) == (
        "{'first': TaskExpression('redun_notebook.add', (1, 2), {}), "
        "'second': TaskExpression('redun_notebook.add', (3, 4), {})}"
    )
    assert scheduler.run(expr) == {"first": 3, "second": 7}


def test_cell_25_list_of_dicts(scheduler):
    expr = [{"id": 1, "price": add(1, 2)}, {"id": 2, "price": add(3, 4)}]
    assert scheduler.run(expr) == [{"id": 1, "price": 3}, {"id": 2, "price": 7}]


def test_cell_26_cumulative_sum(scheduler):
    cumsum = [0]
    for value in range(10):
        cumsum.append(add(cumsum[-1], value))
    assert str(cumsum).startswith(
        "[0, TaskExpression('redun_notebook.add', (0, 0), {}), "
        "TaskExpression('redun_notebook.add', "
        "(TaskExpression('redun_notebook.add', (0, 0), {}), 1), {})"
    )
    assert scheduler.run(cumsum) == [0, 0, 1, 3, 6, 10, 15, 21, 28, 36, 45]


def test_cells_28_29_lazy_getitem(scheduler):
    assert repr(intdiv(12, 5)["quotient"]) == (
        "SimpleExpression('getitem', (TaskExpression('redun_notebook.intdiv', (12, 5), {}), "
        "'quotient'), {})"
    )
    result = intdiv(12, 5)
    x = add(result["quotient"], 1)
    y = add(result["remainder"], 2)
    assert scheduler.run(add(x, y)) == 7


def test_cells_33_34_lazy_getattr_and_call(scheduler):
    expr = returns_alot().get_friend().name
    assert repr(expr) == (
        "SimpleExpression('getattr', (SimpleExpression('call', (SimpleExpression('getattr', "
        "(TaskExpression('redun_notebook.returns_alot', (), {}), 'get_friend'), {}), (), {}), "
        "{}), 'name'), {})"
    )
    assert scheduler.run(expr) == "Bob"


def test_cell_35_lazy_operators(scheduler):
    expr = (add(1, 2) + 1) * add(1, 1)
    assert str(expr) == (
        "SimpleExpression('mul', (SimpleExpression('add', (TaskExpression('redun_notebook.add', "
        "(1, 2), {}), 1), {}), TaskExpression('redun_notebook.add', (1, 1), {})), {})"
    )
    assert scheduler.run(expr) == 8


def test_more_operators(scheduler):
    three = add(1, 2)
    assert scheduler.run([10 - three, 2**three, -three, three > 2, three == 3, 7 // three]) == [
        7, 8, -3, True, True, 2,
    ]  # fmt: skip


def test_cells_36_to_43_higher_order_tasks(scheduler):
    assert scheduler.run(divide_and_conquer(add, list(range(10)))) == 45
    assert scheduler.run(divide_and_conquer(mult, list(range(1, 10)))) == 362880
    assert scheduler.run(divide_and_conquer(pair, list(range(10)))) == (
        ((0, 1), (2, (3, 4))), ((5, 6), (7, (8, 9)))
    )  # fmt: skip


def test_cell_44_partial(scheduler):
    inc = add.partial(1)
    assert re.fullmatch(
        rf"PartialTask\(fullname=redun_notebook\.add, hash={HEX8}, args=\(1,\), kwargs=\{{\}}\)",
        repr(inc),
    )
    assert inc.hash != add.hash
    assert repr(inc(10)) == "TaskExpression('redun_notebook.add', (1, 10), {})"
    assert scheduler.run(inc(10)) == 11


def test_cells_49_to_51_cache_false_still_records(scheduler, capsys):
    @task(cache=False, namespace="redun_notebook")
    def double(x):
        print("Doubling", x)
        return x * 2

    assert scheduler.run(double(1)) == 2
    assert scheduler.run(double(1)) == 2
    assert capsys.readouterr().out.count("Doubling 1") == 2
    assert scheduler.run(double.options(cache=True)(1)) == 2
    assert scheduler.run(double.options(cache=True)(1)) == 2
    assert "Doubling" not in capsys.readouterr().out


def test_nested_set_tuple_namedtuple(scheduler):
    from collections import namedtuple

    Point = namedtuple("Point", "x y")
    result = scheduler.run(
        {"set": {add(1, 1), 5}, "tuple": (add(1, 2),), "point": Point(add(2, 2), 0)}
    )
    assert result == {"set": {2, 5}, "tuple": (3,), "point": Point(4, 0)}
    assert type(result["point"]) is Point


def test_redun_and_kredun_namespace_globals():
    namespace = {"kredun_namespace": "mine", "task": task}
    exec("@task()\ndef f():\n    return 1\n", namespace)
    assert namespace["f"].fullname == "mine.f"
