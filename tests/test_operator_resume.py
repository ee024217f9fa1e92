"""Operator restarts: SIGKILL (no clean-up at all) and SIGTERM mid-run. The Execution still
succeeds, no finished job runs again and no running Pod is duplicated."""

from __future__ import annotations

import uuid
from collections import Counter

from kredun.provenance.store import ProvenanceStore

from tests import test_operator_workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find


def _running(cluster, task: str) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in cluster.pods("resume")
        if pod["metadata"]["labels"]["kredun.dev/task"] == task
        and pod["status"].get("phase") == "Running"
    ]


def _left_alone(cluster, names: set[str]) -> bool:
    """The Pods still exist, not being deleted: an operator that went away left them."""
    pods = {pod["metadata"]["name"]: pod for pod in cluster.pods("resume")}
    return all(name in pods and not pods[name]["metadata"].get("deletionTimestamp")
               for name in names)  # fmt: skip


def test_killed_and_restarted_operators_resume_without_rerunning(operator_cluster) -> None:
    cluster = operator_cluster
    # Stage one: three sleeping jobs at once; stage two: one more sleeping on their sum.
    first = [flow.sleepy(i, 4) for i in (1, 2, 3)]
    expr = flow.sleepy(flow.total(first), 4)
    cluster.create("resume", cluster.plan_spec(expr))

    def first_stage() -> list[str] | None:
        running = _running(cluster, "opflow.sleepy")
        return running if len(running) == 3 else None

    first_pods = set(wait_for(first_stage, timeout=30, message="three jobs running"))
    cluster.kill_operator()  # SIGKILL while three Pods run
    assert _left_alone(cluster, first_pods)
    cluster.start_operator()

    # Stage two runs under the new operator; stop that one politely (SIGTERM) meanwhile.
    last = wait_for(
        lambda: set(_running(cluster, "opflow.sleepy")) - first_pods,
        timeout=30,
        message="the last job running",
    )
    cluster.stop_operator()
    assert _left_alone(cluster, last)
    cluster.start_operator()

    status = cluster.wait_for_phase("resume", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"] == "6"
    pods = cluster.pods("resume")
    assert len(pods) == 5  # three sleepy, total, the last sleepy: one Pod per job
    per_job = Counter(pod["metadata"]["labels"]["kredun.dev/eval-hash"] for pod in pods)
    assert set(per_job.values()) == {1}, "a job ran in two Pods"
    assert sorted(cluster.kubelet.starts) == sorted(pod["metadata"]["name"] for pod in pods)
    assert set(cluster.kubelet.starts.values()) == {1}, cluster.kubelet.starts
    assert status["jobs"]["failed"] == 0
    assert status["startTime"] <= status["completionTime"]
    # Provenance tells the same story: one row per job, all DONE, none left RUNNING, each
    # lasting from its first recorded launch to its end (a launch the SIGKILLed operator had
    # not yet written down starts with the next operator's row), within the Execution's.
    with ProvenanceStore(cluster.database) as store:
        execution_id = uuid.UUID(status["executionId"]).hex
        rows = store.jobs_of(execution_id)
        execution = store.find_execution(execution_id)
    assert len(rows) == 5, [(row.task_name, row.status) for row in rows]
    assert {row.status for row in rows} == {"DONE"}
    assert len({row.eval_hash for row in rows}) == 5
    assert execution.status == "DONE" and execution.end_time is not None
    for row in rows:
        assert row.end_time is not None
        assert execution.start_time <= row.start_time < row.end_time <= execution.end_time
    # The Execution's row keeps the start of its first operator: three stages of 4 s.
    assert (execution.end_time - execution.start_time).total_seconds() >= 8
