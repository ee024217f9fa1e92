"""cond, catch and throw in plans: encoded by the SDK, reduced over value references with
unpickling forbidden (as the operator reduces them), jobs in worker processes."""

from __future__ import annotations

import pytest
from kredun import task
from kredun.control import catch, catch_all, cond, fork_thread, map_, seq, throw
from kredun.errors import ExecutorError, KredunError, PlanError
from kredun.plan import ErrorClassNames, PlanFunction, decode_plan, dumps_plan, loads_plan

from tests.engine.test_plans import operator_like_run, plan_of, resolved, stores
from tests.support.worker_executor import WorkerProcessExecutor

__all__ = ["stores"]  # a fixture: imported for pytest to find

kredun_namespace = "plan_control"


@task()
def ident(x):
    return x


@task()
def status(ok):
    return {"ok": ok}


@task()
def fail(message):
    raise ValueError(message)


@task()
def explain(error):
    return f"recovered from {type(error).__name__}: {error}"


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


@task()
def fail_unpicklably(message):
    raise Unpicklable(message)


@task()
def poison_own_result(token):
    """Stores other bytes under the hash of its own result: the receiver must reject it."""
    import os

    from kredun.hashing import hash_bytes
    from kredun.serialize import dumps
    from kredun.valuestore import open_value_store

    result = f"honest {token}"
    open_value_store(os.environ["KREDUN_VALUE_STORE"]).put(hash_bytes(dumps(result)), b"forged")
    return result


@pytest.fixture(autouse=True)
def count_workers():
    WorkerProcessExecutor.launched.clear()


def run(expr, stores, **options):
    database, value_store = stores
    ref = operator_like_run(plan_of(expr, value_store), database, value_store, **options)
    return resolved(ref, database, value_store)


def launched(name):
    return WorkerProcessExecutor.launched.count(f"{kredun_namespace}.{name}")


# -- encoding and decoding --------------------------------------------------------------------


def test_control_nodes_carry_their_arguments_as_plans(stores):
    _, value_store = stores
    plan = loads_plan(dumps_plan(plan_of(catch(cond(True, ident(1), ident(2)), ValueError,
                                               explain), value_store)))  # fmt: skip
    node = plan["nodes"][plan["root"]]
    assert node["control"] == "kredun.catch"
    guarded, classes, recovery = node["args"]
    assert classes == {"classes": ["builtins.ValueError"]}
    inner = guarded["plan"]["nodes"][guarded["plan"]["root"]]
    assert inner["control"] == "kredun.cond"
    predicate = inner["args"][0]["plan"]
    assert predicate["nodes"][predicate["root"]]["truth"] is True
    assert sum("parameter" in spec for spec in recovery["function"]["nodes"]) == 1
    root, ready = decode_plan(plan)
    assert root.kind == "control" and ready == [root]
    assert root.payload.task.fullname == "kredun.catch"
    assert isinstance(root.payload.args[1], ErrorClassNames)
    assert isinstance(root.payload.args[2], PlanFunction)


def test_control_tasks_not_carried_are_refused_at_submit_time(stores):
    _, value_store = stores
    with pytest.raises(PlanError, match=r"catch_all.* takes dicts with text keys"):
        plan_of(catch_all({1: ident(1)}), value_store)
    with pytest.raises(PlanError, match=r"kredun.fork_thread\(\) cannot run on a cluster yet"):
        plan_of(fork_thread(ident(1)), value_store)
    with pytest.raises(PlanError, match=r"kredun.map_\(\) on a cluster over a list a task "):
        plan_of(map_(str.upper, ident(["a"])), value_store)
    with pytest.raises(PlanError, match=r"kredun.seq\(\) on a cluster takes a list"):
        plan_of(seq(ident([1])), value_store)


def _plan(*nodes):
    return {"version": 1, "tasks": {}, "nodes": list(nodes), "root": len(nodes) - 1}


_LEAF = {"value": {"hash": "a" * 40}}
_SUB = {"plan": _plan(_LEAF)}


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"control": "kredun.fork_thread", "args": [_SUB]}, "plan node 0: unknown scheduler task"),
        ({"control": "kredun.map_", "args": [{"function": _plan({"parameter": 0})}, {"items": 1}]},
         "argument 1: 'items' must be a list of plans"),
        ({"control": "kredun.seq", "args": [_SUB]}, r"plan node 0 argument 0: expected \{'plans'"),
        ({"control": "kredun.seq", "args": [{"plans": [3]}]}, r"argument 0\[0\]: 'plan' must"),
        ({"control": "kredun.cond", "args": [_SUB]}, r"plan node 0: kredun.cond\(\) cannot take 1"),
        ({"control": "kredun.cond", "args": "x"}, "plan node 0: 'args' must be a list"),
        ({"control": "kredun.cond", "args": [_SUB, _SUB], "kwargs": {"a": 1}}, "kwargs"),
        ({"control": "kredun.cond", "args": [_SUB, {"plan": 3}]}, "argument 1: 'plan' must be"),
        ({"control": "kredun.cond", "args": [_SUB, {"classes": []}]}, "argument 1: expected"),
        ({"control": "kredun.catch", "args": [_SUB, {"classes": []}, {"function": _plan(_LEAF)}]},
         "argument 1: 'classes' must list"),
        ({"control": "kredun.catch", "args": [_SUB, {"classes": ["builtins.ValueError"]},
                                              {"function": _plan(_LEAF)}]},
         "argument 2: a function plan needs exactly one parameter node"),
        ({"control": "kredun.catch", "args": [_SUB, {"classes": ["builtins.ValueError"]}]},
         r"kredun.catch\(\) cannot take 2"),
        ({"control": "kredun.catch_all", "args": [{"terms": {"set": []}}]},
         "argument 0: expected one of 'plan', 'list', 'tuple', 'dict'"),
        ({"control": "kredun.catch_all", "args": [{"terms": {"dict": [[1, _SUB]]}}]},
         "argument 0: 'dict' must list"),
        ({"control": "kredun.catch_all", "args": [{"terms": {"list": [_SUB, {"plan": 2}]}}]},
         r"argument 0\[1\]: 'plan' must be a plan"),
        ({"control": "kredun.catch_all", "args": [{"terms": _SUB}, {"classes": ["x.E"]}]},
         r"kredun.catch_all\(\) cannot take 2"),
    ],
)  # fmt: skip
def test_malformed_control_nodes_fail_naming_the_node(node, message):
    with pytest.raises(PlanError, match=message):
        decode_plan(_plan(node))


def test_a_malformed_branch_fails_the_run_naming_its_control_node(stores):
    database, value_store = stores
    true = {**_LEAF, "truth": True}
    plan = _plan({"control": "kredun.cond", "args": [
        {"plan": _plan(true)}, {"plan": _plan({"tuple": [4]})}, {"plan": _plan(true)}
    ]})  # fmt: skip
    with pytest.raises(PlanError, match="plan node 0 argument 1: plan node 0: child 4"):
        operator_like_run(plan, database, value_store)


def test_a_parameter_outside_a_function_plan_is_refused():
    with pytest.raises(PlanError, match="plan node 0"):
        decode_plan(_plan({"parameter": 0}))


# -- reduced over references ------------------------------------------------------------------


def test_cond_on_a_literal_takes_one_branch_and_never_runs_the_other(stores):
    assert run(cond(True, ident("then"), ident("else")), stores) == "then"
    assert launched("ident") == 1
    assert run(cond(0, ident("then2"), ident("else2")), stores) == "else2"
    assert launched("ident") == 2
    assert run(cond(False, ident(1), [], ident(2), ident(3)), stores) == 3
    assert run(cond(False, ident(1), ident(False), ident(2)), stores) is None  # no else


def test_cond_on_a_job_result_uses_the_truth_the_job_reported(stores):
    assert run(cond(ident(""), ident("yes"), ident("no")), stores) == "no"
    assert WorkerProcessExecutor.launched.count("kredun.simple_op") == 0
    assert launched("ident") == 2


def test_cond_on_an_operation_tests_it_in_a_job(stores):
    result = run(cond(status(True)["ok"], ident("ok"), ident("not ok")), stores)
    assert result == "ok"
    assert WorkerProcessExecutor.launched.count("kredun.simple_op") == 1
    assert launched("ident") == 1
    # A list of results is a container reference: its truth is tested in a job too.
    assert run(cond([ident(0)], ident("list"), ident("empty")), stores) == "list"
    assert WorkerProcessExecutor.launched.count("kredun.simple_op") == 2


def test_cond_on_a_cached_result_reads_its_truth_from_provenance(stores):
    assert run(cond(ident(1), ident("a"), ident("b")), stores) == "a"
    WorkerProcessExecutor.launched.clear()
    assert run(cond(ident(1), ident("a"), ident("b")), stores) == "a"
    assert WorkerProcessExecutor.launched == []  # replayed; nothing tested the value again


def test_seq_evaluates_one_expression_after_another(stores):
    assert run(seq([ident(1), ident("two"), [ident(3)]]), stores) == [1, "two", [3]]
    assert WorkerProcessExecutor.launched == [f"{kredun_namespace}.ident"] * 3
    assert run(cond(seq([]), 1, 2), stores) == 2


@task()
def zeroes(results):
    return [0 if isinstance(item, Exception) else item for item in results]


@task()
def errors_of(results):
    return {key: f"{type(value).__name__}: {value}" for key, value in results.items()}


def test_catch_all_waits_for_every_expression_then_recovers(stores):
    assert run(catch_all([ident(1), ident(2)], ValueError, zeroes), stores) == [1, 2]
    expr = catch_all([ident(4), fail("a"), (ident(5),), fail("b")], ValueError, zeroes)
    assert run(expr, stores) == [4, 0, (5,), 0]
    expr = catch_all({"ok": ident(3), "bad": fail("c"), "n": None}, Exception, errors_of)
    assert run(expr, stores) == {"ok": "int: 3", "bad": "ValueError: c", "n": "NoneType: None"}
    assert run(catch_all((ident(6), [ident(7)])), stores) == (6, [7])


def test_catch_all_fails_with_an_error_not_of_the_class(stores):
    with pytest.raises(ExecutorError, match="ValueError: d"):
        run(catch_all([ident(1), fail("d")]), stores)  # no recovery: the first error
    with pytest.raises(ExecutorError, match="ValueError: e"):
        run(catch_all([fail("e"), throw(KeyError("k"))], KeyError, zeroes), stores)
    assert launched("zeroes") == 0


@task()
def add(a, b):
    return a + b


def test_map_calls_a_task_on_each_item(stores):
    assert run(map_(ident, [1, ident(2), [3]]), stores) == [1, 2, [3]]
    assert run(map_(add.partial(b=10), [1, add(1, 1)]), stores) == [11, 12]
    assert run(map_.partial(ident)([]), stores) == []
    assert run(cond(map_(ident, [0]), "some", "none"), stores) == "some"


def test_map_over_a_list_a_task_computes_makes_its_calls_in_a_job(stores):
    WorkerProcessExecutor.launched.clear()
    assert run(map_(add.partial(b=10), add([1], [2])), stores) == [11, 12]
    # The built-in job expands the list into calls; the operator reduces them.
    assert WorkerProcessExecutor.launched.count("kredun.map_items") == 1
    assert launched("add") == 3
    assert run(map_.partial(ident)(ident([])), stores) == []


def test_a_malformed_function_call_is_refused_naming_the_node():
    from kredun.plan import list_plan

    with pytest.raises(PlanError, match="plan node 1: child -1 is not an earlier node"):
        decode_plan(list_plan([_plan(_LEAF, {"list": [5]})]))


def test_catch_recovers_with_the_exception_and_replays_the_recovery(stores):
    expr = catch(fail("kaput"), (KeyError, ValueError), explain)
    assert run(expr, stores) == "recovered from ValueError: kaput"
    assert launched("fail") == 1 and launched("explain") == 1
    WorkerProcessExecutor.launched.clear()
    assert run(expr, stores) == "recovered from ValueError: kaput"
    assert WorkerProcessExecutor.launched == []  # the recovery was recorded, and cached


def test_catch_without_a_matching_class_fails_and_caches_no_error(stores):
    with pytest.raises(ExecutorError, match="ValueError: kaput"):
        run(catch(fail("kaput"), KeyError, explain), stores)
    assert launched("explain") == 0
    with pytest.raises(ExecutorError, match="ValueError: kaput"):
        run(catch(fail("kaput"), KeyError, explain), stores)
    assert launched("fail") == 2  # errors are never replayed


def test_catch_matches_base_classes_and_a_recovery_that_is_not_a_task(stores):
    expr = catch(fail("x"), Exception, lambda error: ident(f"lambda got {error}"))
    assert run(expr, stores) == "lambda got x"
    assert WorkerProcessExecutor.launched.count("kredun.simple_op") == 1


def test_an_unpicklable_exception_reaches_the_recovery_as_a_kredun_error(stores):
    result = run(catch(fail_unpicklably("odd"), Unpicklable, explain), stores)
    assert result.startswith("recovered from RemoteTaskError: Unpicklable: odd")


def test_throw_raises_lazily_and_catch_takes_it(stores):
    expr = catch(throw(KeyError("missing")), KeyError, explain)
    assert run(expr, stores) == "recovered from KeyError: 'missing'"


def test_catch_of_an_error_the_receiving_side_raises(stores):
    # The job's outcome is rejected (its result blob was forged): an OutcomeError, a kredun
    # error that no task raised, matched by its class names like a task's own.
    result = run(catch(poison_own_result("t"), KredunError, explain), stores)
    assert result.startswith("recovered from RemoteTaskError: ")
    assert "hash mismatch" in result


EDITED_FLOW = """
from kredun import task
from kredun.control import catch, cond

kredun_namespace = "control_edit"


@task()
def step(x):
    return x + 1


@task()
def apply(fn, x):
    return fn(x)


@task()
def guarded(x):
    return cond(x, apply(step, x), 0)


@task()
def fails(x):
    raise ValueError(x)


@task()
def recover(error):
    return step(int(str(error)))
"""


def _before_and_after_an_edit(stores, tmp_path, entry):
    """Run `control_edit_flow.<entry>` as the operator would, edit `step` (x + 1 becomes
    x + 100) and resubmit: the two results. `launched` then lists what ran again."""
    import importlib
    import sys

    source = tmp_path / "control_edit_flow.py"
    source.write_text(EDITED_FLOW)
    sys.path.insert(0, str(tmp_path))
    try:
        flow = importlib.import_module("control_edit_flow")
        first = run(entry(flow), stores)
        source.write_text(EDITED_FLOW.replace("x + 1", "x + 100"))
        flow = importlib.reload(flow)
        WorkerProcessExecutor.launched.clear()
        return first, run(entry(flow), stores)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("control_edit_flow", None)


def test_a_task_returning_cond_is_replayed_with_current_code(stores, tmp_path):
    # `guarded` returns a cond whose branch passes `step` as a value: once `step` is
    # edited, that cached fragment is stale and runs again.
    first, second = _before_and_after_an_edit(stores, tmp_path, lambda flow: flow.guarded(1))
    assert (first, second) == (2, 101)
    assert sorted(WorkerProcessExecutor.launched) == [
        "control_edit.apply", "control_edit.guarded", "control_edit.step"
    ]  # fmt: skip


def test_a_replayed_recovery_calls_the_current_code(stores, tmp_path):
    expr = lambda flow: catch(flow.fails(1), ValueError, flow.recover)  # noqa: E731
    first, second = _before_and_after_an_edit(stores, tmp_path, expr)
    assert (first, second) == (2, 101)
    # The recorded recovery replays (`fails` does not run again); its call of `step` is
    # today's code, and `recover` itself replays from the cache.
    assert WorkerProcessExecutor.launched == ["control_edit.step"]


def test_a_laptop_scheduler_catches_what_a_remote_job_raised(stores):
    """In-process values, jobs elsewhere: the catch matches, and the recovery receives, the
    task's own exception, loaded from the value store where its job pickled it."""
    from kredun import Scheduler

    from tests.support.worker_executor import TYPE

    database, value_store = stores
    scheduler = Scheduler(config={
        "database": {"uri": database},
        "value_store": {"uri": value_store},
        "executors": {"default": {"type": TYPE, "value_store": value_store}},
    })  # fmt: skip
    try:
        assert scheduler.run(catch(fail("far"), ValueError, explain)) == (
            "recovered from ValueError: far"
        )
        with pytest.raises(ExecutorError, match="ValueError: far"):
            scheduler.run(catch(fail("far"), KeyError, explain))
    finally:
        scheduler.close()
