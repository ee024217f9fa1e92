"""cond, catch and throw through the operator: a branch not taken costs no Pod, a caught
error reaches its recovery in the recovery's Pod, and the operator decides both from what
jobs reported, never unpickling (it never can: loaders are disabled in its process)."""

from __future__ import annotations

import base64
import json

from kredun import task
from kredun.control import catch, catch_all, cond, map_, seq
from kredun.deserialize import resolve
from kredun.hashing import hash_bytes
from kredun.refs import ref_from_json

from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import IMAGE, operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find

kredun_namespace = "opcontrol"


@task()
def explain(error: BaseException) -> str:
    return f"recovered from {type(error).__name__}: {error}"


@task()
def slow_explain(error: BaseException, seconds: float) -> str:
    import time

    time.sleep(seconds)
    return f"slowly recovered from {type(error).__name__}"


@task()
def zeroes(results: list) -> list:
    return [0 if isinstance(item, Exception) else item for item in results]


def tasks_run(cluster, execution: str) -> list[str]:
    return sorted(pod["metadata"]["labels"]["kredun.dev/task"] for pod in cluster.pods(execution))


def succeeded(cluster, name: str, expr) -> dict:
    cluster.create(name, cluster.plan_spec(expr))
    status = cluster.wait_for_phase(name)
    assert status["phase"] == "Succeeded", status
    return status


def test_cond_runs_only_the_branch_taken(operator_cluster) -> None:
    cluster = operator_cluster
    status = succeeded(cluster, "literal", cond(True, flow.inc(1), flow.inc(100)))
    assert status["result"]["preview"] == "2"
    assert tasks_run(cluster, "literal") == ["opflow.inc"]  # no Pod for the other branch

    # inc(-1) is 0: its Pod reported the value false; no Pod tests it again.
    status = succeeded(cluster, "job", cond(flow.inc(-1), flow.add(1, 1), flow.add(2, 2)))
    assert status["result"]["preview"] == "4"
    assert tasks_run(cluster, "job") == ["opflow.add", "opflow.inc"]

    # The predicate replays from the cache: its truth comes from provenance.
    status = succeeded(cluster, "cached", cond(flow.inc(-1), flow.add(5, 5), flow.add(6, 6)))
    assert status["result"]["preview"] == "12"
    assert tasks_run(cluster, "cached") == ["opflow.add"]
    assert status["jobs"]["cached"] == 1


def test_catch_recovers_replays_and_lets_other_errors_through(operator_cluster) -> None:
    cluster = operator_cluster
    expr = catch(flow.boom("kaput"), ValueError, explain)
    status = succeeded(cluster, "caught", expr)
    assert status["result"]["preview"] == "'recovered from ValueError: kaput'"
    assert tasks_run(cluster, "caught") == ["opcontrol.explain", "opflow.boom"]

    # The recovery was recorded: a second Execution replays it, the failing task not rerun.
    status = succeeded(cluster, "again", expr)
    assert status["result"]["preview"] == "'recovered from ValueError: kaput'"
    assert tasks_run(cluster, "again") == []

    cluster.create("uncaught", cluster.plan_spec(catch(flow.boom("kaput"), KeyError, explain)))
    status = cluster.wait_for_phase("uncaught")
    assert status["phase"] == "Failed"
    assert "ValueError: kaput" in status["failure"]["error"]
    assert tasks_run(cluster, "uncaught") == ["opflow.boom"]  # errors are never cached


def test_a_recovery_running_when_the_operator_dies_is_adopted(operator_cluster) -> None:
    cluster = operator_cluster
    expr = catch(flow.boom("kaput"), ValueError, slow_explain.partial(seconds=3))
    cluster.create("restart", cluster.plan_spec(expr))

    def recovering() -> bool:
        return any(
            pod["metadata"]["labels"]["kredun.dev/task"] == "opcontrol.slow_explain"
            and pod["status"].get("phase") == "Running"
            for pod in cluster.pods("restart")
        )

    wait_for(recovering, timeout=30, interval=0.1, message="the recovery's Pod running")
    cluster.kill_operator()
    cluster.start_operator()
    status = cluster.wait_for_phase("restart")
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"] == "'slowly recovered from ValueError'"
    # The restarted operator found the recovery's Pod: one Pod for it, not two.
    assert tasks_run(cluster, "restart").count("opcontrol.slow_explain") == 1


def test_malformed_control_nodes_fail_the_execution_naming_the_node(operator_cluster) -> None:
    cluster = operator_cluster
    leaf = {"value": {"hash": hash_bytes(b"x"), "inline": base64.b64encode(b"x").decode()}}

    def plan(*nodes: dict) -> dict:
        return {"version": 1, "tasks": {}, "nodes": list(nodes), "root": len(nodes) - 1}

    literal_true = plan({**leaf, "truth": True})
    broken_branch = plan({"list": [0]})
    specs = {
        "unknown": plan({"control": "kredun.fork_thread", "args": [{"plan": literal_true}]}),
        "branch": plan({"control": "kredun.cond", "args": [
            {"plan": literal_true}, {"plan": broken_branch}, {"plan": literal_true}
        ]}),
    }  # fmt: skip
    for name, spec in specs.items():
        data = json.dumps(spec).encode()
        inline = {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}
        cluster.create(name, {"plan": inline, "image": IMAGE})
    cluster.create("good", cluster.plan_spec(cond(False, flow.inc(0), flow.inc(2))))
    expected = {
        "unknown": "invalid plan: plan node 0: unknown scheduler task 'kredun.fork_thread'",
        "branch": "invalid plan: plan node 0 argument 1: plan node 0: child 0 is not an earlier",
    }
    for name, message in expected.items():
        status = cluster.wait_for_phase(name)
        assert status["phase"] == "Failed", (name, status)
        assert message in status["message"], (name, status["message"])
    assert cluster.wait_for_phase("good")["result"]["preview"] == "3"


def test_seq_map_and_catch_all_on_the_operator(operator_cluster) -> None:
    cluster = operator_cluster
    expr = {
        "map": map_(flow.inc, [1, flow.inc(1)]),
        "seq": seq([flow.add(1, 2), flow.add(3, 4)]),
        "all": catch_all([flow.inc(9), flow.boom("x")], ValueError, zeroes),
        # Over a list a task computes: a built-in job makes the calls.
        "computed": map_(flow.inc, flow.add([1], [5])),
    }
    status = succeeded(cluster, "others", expr)
    scheduler = cluster.scheduler()
    try:
        value = resolve(ref_from_json(status["result"]["ref"]), scheduler.fetch_blob)
    finally:
        scheduler.close()
    assert value == {"map": [2, 3], "seq": [3, 7], "all": [10, 0], "computed": [2, 6]}
    # inc(1) is map_'s item and a call of both maps: one Pod (inc(1), inc(2), inc(9), inc(5)).
    assert tasks_run(cluster, "others") == sorted(
        ["opflow.inc"] * 4
        + ["opflow.add"] * 3
        + ["opflow.boom", "opcontrol.zeroes", "kredun.map_items"]
    )
