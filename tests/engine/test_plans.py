"""The operator's path without Kubernetes: plans, value references, and workers that record
results, with unpickling forbidden in the scheduler's process."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from kredun import Scheduler, task
from kredun.deserialize import resolve
from kredun.errors import ExecutorError, PlanError
from kredun.expression import ValueExpression
from kredun.hashing import encode
from kredun.plan import decode_plan, dumps_plan, loads_plan
from kredun.refs import CompositeRef, DeferredRef, ValueRef, ref_from_json
from kredun.serialize import dumps
from kredun.submit import encode_submission
from kredun.valuestore import open_value_store

from tests.support.worker_executor import TYPE, WorkerProcessExecutor

kredun_namespace = "plans"


@task()
def add(a, b):
    return a + b


@task()
def add4(a, b, c, d):
    return add(add(a, b), add(c, d))


@task()
def intdiv(n, d):
    return {"quotient": n // d, "remainder": n % d}


@task()
def apply_twice(fn, x):
    return fn(fn(x, x), x)


@task()
def fail(message):
    raise ValueError(message)


def run_in_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.fixture
def stores(tmp_path):
    return f"sqlite:///{tmp_path / 'db.sqlite'}", f"file://{tmp_path / 'values'}"


def plan_of(expr, value_store_uri):
    return encode_submission(expr, open_value_store(value_store_uri).put)


def operator_like_run(plan, database, value_store, cache=True, scope=""):
    """What the operator does: reduce a plan over references, jobs in worker processes, all
    in one cache scope."""
    config = {
        "database": {"uri": database},
        "value_store": {"uri": value_store},
        "executors": {"default": {"type": TYPE, "value_store": value_store}},
        "tenancy": {"cache_scope": scope},
    }
    from kredun.domains import ReferencedValues

    real_loads, real_unpickler = pickle.loads, pickle.Unpickler

    def refuse(*args, **kwargs):
        raise AssertionError("the scheduler unpickled data while reducing a plan")

    pickle.loads, pickle.Unpickler = refuse, refuse
    try:
        scheduler = Scheduler(config=config)
        return scheduler.run(loads_plan(dumps_plan(plan)), values=ReferencedValues, cache=cache)
    finally:
        pickle.loads, pickle.Unpickler = real_loads, real_unpickler
        scheduler.close()


def resolved(ref, database, value_store):
    return resolve(ref, Scheduler(db_uri=database, value_store=value_store).fetch_blob)


@pytest.fixture(autouse=True)
def count_workers():
    WorkerProcessExecutor.launched.clear()


def test_plan_with_returned_expressions_ops_and_containers(stores):
    database, value_store = stores
    quotient = intdiv(17, 5)["quotient"]
    expr = {"sum": add4(1, 2, 3, 4), "q": add(quotient, 1), "pair": (add(1, 1), 5)}
    ref = operator_like_run(plan_of(expr, value_store), database, value_store)
    assert isinstance(ref, CompositeRef)
    assert resolved(ref, database, value_store) == {"sum": 10, "q": 4, "pair": (2, 5)}
    names = sorted(WorkerProcessExecutor.launched)
    # Indexing a result costs no job: the add consuming it evaluates it.
    assert names == [*["plans.add"] * 5, "plans.add4", "plans.intdiv"]

    # A second run replays everything from the shared cache: no worker starts.
    WorkerProcessExecutor.launched.clear()
    again = operator_like_run(plan_of(expr, value_store), database, value_store)
    assert again.hash == ref.hash and WorkerProcessExecutor.launched == []


def test_operations_on_results_cost_no_job(stores):
    """Item access, attributes and arithmetic on results are deferred references: evaluated
    where the value is needed (a consuming job, or the submitter fetching the result)."""
    database, value_store = stores
    parts = intdiv(17, 5)
    expr = (parts["quotient"] + 10, add(parts["remainder"] * 3, parts["quotient"]).real)
    ref = operator_like_run(plan_of(expr, value_store), database, value_store)
    assert resolved(ref, database, value_store) == (13, 9)
    assert sorted(WorkerProcessExecutor.launched) == ["plans.add", "plans.intdiv"]
    assert isinstance(ref.items[0], DeferredRef) and isinstance(ref.items[1], DeferredRef)

    WorkerProcessExecutor.launched.clear()
    again = operator_like_run(plan_of(expr, value_store), database, value_store)
    assert again.hash == ref.hash and WorkerProcessExecutor.launched == []

    # Different operands, different names: a cached result is never taken for another's.
    other = (parts["quotient"] + 11, add(parts["remainder"] * 4, parts["quotient"]).real)
    ref2 = operator_like_run(plan_of(other, value_store), database, value_store)
    assert resolved(ref2, database, value_store) == (14, 11)
    assert WorkerProcessExecutor.launched == ["plans.add"]


def test_an_operation_that_is_the_whole_result_runs_as_a_job(stores):
    """Its value is the Execution's: computed by a job, so the status shows it and an error
    fails the run instead of surfacing only where the result is fetched."""
    database, value_store = stores
    ref = operator_like_run(plan_of(intdiv(17, 5)["quotient"], value_store), database, value_store)
    assert isinstance(ref, ValueRef) and resolved(ref, database, value_store) == 3
    assert sorted(WorkerProcessExecutor.launched) == ["kredun.simple_op", "plans.intdiv"]
    with pytest.raises(ExecutorError, match="KeyError: 'missing'"):
        operator_like_run(plan_of(intdiv(17, 5)["missing"], value_store), database, value_store)


def test_deferred_operations_reject_bad_input():
    with pytest.raises(PlanError, match="unknown deferred operation 'call'"):
        ref_from_json({"op": "call", "args": []})
    with pytest.raises(PlanError, match="args"):
        ref_from_json({"op": "getitem", "args": {}})
    # A job may not be handed an unevaluated expression disguised as an operation's value.
    holder = ValueRef("a" * 40, dumps(SimpleNamespace(e=ValueExpression(1))))
    made = DeferredRef("getattr", (holder, ValueRef(*encode("e"))))
    with pytest.raises(PlanError, match="operation getattr made an expression"):
        resolve(made, fetch=None)


def test_same_eval_hashes_as_the_in_process_scheduler(stores):
    """A laptop run and a plan run share cache entries: the worker replays the laptop's."""
    database, value_store = stores
    Scheduler(db_uri=database, value_store=value_store).run(add(add(1, 2), 3))
    ref = operator_like_run(plan_of(add(add(1, 2), 3), value_store), database, value_store)
    assert WorkerProcessExecutor.launched == []
    assert isinstance(ref, ValueRef) and resolved(ref, database, value_store) == 6


def test_higher_order_tasks_in_plans(stores):
    database, value_store = stores
    ref = operator_like_run(plan_of(apply_twice(add, 3), value_store), database, value_store)
    assert resolved(ref, database, value_store) == 9


def test_task_failure_in_worker_reaches_the_caller(stores):
    database, value_store = stores
    from kredun.errors import ExecutorError

    with pytest.raises(ExecutorError, match="ValueError: kaput"):
        operator_like_run(plan_of(add(fail("kaput"), 1), value_store), database, value_store)


def test_plan_round_trips_through_json_and_is_deterministic(stores):
    _, value_store = stores
    expr = [add(i, i) for i in range(3)]
    first, second = plan_of(expr, value_store), plan_of(expr, value_store)
    assert dumps_plan(first) == dumps_plan(second)
    assert loads_plan(dumps_plan(first)) == first


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ("nope", "a plan must be a JSON object"),
        ({"version": 9, "tasks": {}, "nodes": [{}]}, "unsupported plan version 9"),
        ({"version": 1, "tasks": {}, "nodes": []}, "non-empty 'nodes'"),
        ({"version": 1, "tasks": {}, "nodes": [{"bogus": 1}], "root": 0}, "plan node 0"),
        ({"version": 1, "tasks": {}, "nodes": [{"list": [0]}], "root": 0}, "not an earlier node"),
        (
            {"version": 1, "tasks": {}, "nodes": [{"call": "x", "args": []}], "root": 0},
            "unknown task 'x'",
        ),
        ({"version": 1, "tasks": {}, "nodes": [{"value": {"hash": "12"}}], "root": 0}, "40 hex"),
        (
            {"version": 1, "tasks": {}, "nodes": [{"op": "exec", "args": []}], "root": 0},
            "unknown operation 'exec'",
        ),
        (
            {"version": 1, "tasks": {}, "nodes": [{"value": {"hash": "a" * 40}}], "root": 3},
            "plan root",
        ),
    ],
)
def test_malformed_plans_fail_with_the_place(plan, message):
    with pytest.raises(PlanError, match=message):
        decode_plan(plan)


def test_loads_plan_rejects_bad_json():
    with pytest.raises(PlanError, match="not valid JSON"):
        loads_plan(b"{")


def test_forbid_unpickling_blocks_every_loader():
    done = run_in_child(
        textwrap.dedent(
            """
            import pickle, cloudpickle
            from kredun.trust import forbid_unpickling, UnpicklingForbiddenError
            data = pickle.dumps([1])
            forbid_unpickling()
            for load in (lambda: pickle.loads(data), lambda: cloudpickle.loads(data),
                         lambda: pickle.Unpickler(None)):
                try:
                    load()
                except UnpicklingForbiddenError:
                    continue
                raise SystemExit("a loader still worked")
            print("ok")
            """
        )
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_laptop_scheduler_with_remote_workers(stores):
    """A trusted scheduler on remote workers: arguments shipped as references, results
    (values and returned expressions) loaded back as Python objects."""
    database, value_store = stores
    config = {
        "database": {"uri": database},
        "value_store": {"uri": value_store},
        "executors": {"default": {"type": TYPE, "value_store": value_store}},
    }
    scheduler = Scheduler(config=config)
    big = list(range(5000))  # over the inline limit: shipped through the value store
    expr = {"sum": add4(1, 2, 3, 4), "q": intdiv(17, 5)["quotient"], "big": add(big, [1])}
    result = scheduler.run(expr)
    scheduler.close()
    assert result == {"sum": 10, "q": 3, "big": [*big, 1]}
    assert "plans.add4" in WorkerProcessExecutor.launched


EDITED_FLOW = """
from kredun import task

kredun_namespace = "plans_edit"


@task()
def step(x):
    return x + 1


@task()
def parent(x):
    return step(x)


@task()
def apply(fn, x):
    return fn(x)


@task()
def higher(x):
    return apply(step, x)
"""


def _run_before_and_after_an_edit_of_step(stores, tmp_path, entry: str) -> tuple[Any, Any]:
    """Run `plans_edit_flow.<entry>(1)` as the operator would, edit `step` (x + 1 becomes
    x + 100), resubmit: the two results' references. `launched` then lists what ran again."""
    import importlib

    database, value_store = stores
    source = tmp_path / "plans_edit_flow.py"
    source.write_text(EDITED_FLOW)
    sys.path.insert(0, str(tmp_path))
    try:
        flow = importlib.import_module("plans_edit_flow")
        plan = plan_of(getattr(flow, entry)(1), value_store)
        first = operator_like_run(plan, database, value_store)
        source.write_text(EDITED_FLOW.replace("x + 1", "x + 100"))
        flow = importlib.reload(flow)
        WorkerProcessExecutor.launched.clear()
        plan = plan_of(getattr(flow, entry)(1), value_store)
        return first, operator_like_run(plan, database, value_store)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("plans_edit_flow", None)


def test_resubmitted_plan_replays_old_fragments_with_current_code(stores, tmp_path):
    first, second = _run_before_and_after_an_edit_of_step(stores, tmp_path, "parent")
    assert resolved(first, *stores) == 2
    # The child is edited, the parent is not: the resubmission replays the parent's cached
    # fragment, whose call of `step` now means the new code.
    assert resolved(second, *stores) == 101
    assert WorkerProcessExecutor.launched == ["plans_edit.step"]


def test_resubmitted_plan_does_not_replay_an_edited_task_value(stores, tmp_path):
    first, second = _run_before_and_after_an_edit_of_step(stores, tmp_path, "higher")
    assert resolved(first, *stores) == 2
    # `higher`'s cached fragment passes the old `step` as a value: it is stale.
    assert resolved(second, *stores) == 101
    assert sorted(WorkerProcessExecutor.launched) == [
        "plans_edit.apply", "plans_edit.higher", "plans_edit.step"
    ]  # fmt: skip


@task()
def greet(name="world"):
    return f"hello {name}"


def test_a_plan_call_leaving_out_a_defaulted_argument_is_recorded(stores):
    """The operator's scheduler knows a plan task's defaults by hash only; it records the
    argument all the same (provenance of calls through a plan)."""
    database, value_store = stores
    ref = operator_like_run(plan_of(greet(), value_store), database, value_store)
    assert resolved(ref, database, value_store) == "hello world"
