"""Kubernetes -> AWS Batch fallback: a job whose Pod cannot be scheduled (the local kubelet
holds it Unschedulable), or whose request exceeds the configured cluster maximum, leaves
Kubernetes for the `batch` executor (moto, jobs run as local processes sharing the
cluster's SQLite database and directory value store). The plain Unschedulable fallback is
tested against the real scheduler (tests/cluster/test_operator.py), which also uses the
helpers here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kredun.provenance.store import ProvenanceStore

from tests.support import workflows as flow
from tests.support.aws import MotoBatch, moto_batch, moto_batch_environ  # noqa: F401
from tests.support.kube.testing import wait_for
from tests.support.operator import REPO_ROOT, OperatorCluster

QUEUE = "kredun"
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
BATCH_EXECUTOR = f"""
[executors.batch]
type = "batch"
job_queue = "{QUEUE}"
image = "kredun:test"
poll_interval = 0.1
batch_window = 0.1
"""


@pytest.fixture
def aws(moto_batch_environ: MotoBatch, monkeypatch: pytest.MonkeyPatch) -> MotoBatch:  # noqa: F811
    # Batch jobs (local processes) import the test workflows from the repository; the
    # operator subprocess inherits the AWS_* variables pointing at moto.
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    moto_batch_environ.create_batch_environment(QUEUE)
    return moto_batch_environ


def cluster_with(tmp_path: Path, config: str = "", **kubelet: Any) -> OperatorCluster:
    # The node has one CPU; a task asking for more stays Pending, Unschedulable.
    return OperatorCluster(
        tmp_path,
        kubelet_options={"max_cpu": 1, **kubelet},
        operator_config=BATCH_EXECUTOR + config,
    )


@pytest.fixture
def small_cluster(tmp_path: Path, aws: MotoBatch) -> Iterator[OperatorCluster]:
    with cluster_with(tmp_path) as cluster:
        yield cluster


def batch_jobs(aws: MotoBatch) -> list[dict[str, Any]]:
    batch = aws.client("batch")
    ids = [
        summary["jobId"]
        for status in STATUSES
        for summary in batch.list_jobs(jobQueue=QUEUE, jobStatus=status)["jobSummaryList"]
    ]
    return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


def batch_requirements(aws: MotoBatch, job: dict[str, Any]) -> dict[str, str]:
    """The resources a Batch job's definition asks for: {"VCPU": "2", "MEMORY": MiB}."""
    batch = aws.client("batch")
    [definition] = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
        "jobDefinitions"
    ]
    requirements = definition["containerProperties"]["resourceRequirements"]
    return {item["type"]: item["value"] for item in requirements}


def job_records(cluster: OperatorCluster, status: dict[str, Any]) -> dict[str, list[str]]:
    """task name -> executors of its jobs in the provenance store."""
    with ProvenanceStore(cluster.database) as store:
        records = store.jobs_of(uuid.UUID(status["executionId"]).hex)
    executors: dict[str, list[str]] = {}
    for record in records:
        executors.setdefault(record.task_name, []).append(record.executor)
    return executors


def fallback_events(cluster: OperatorCluster, name: str) -> list[dict[str, Any]]:
    return [event for event in cluster.events(name) if event["reason"] == "JobFallback"]


def task_pods(cluster: OperatorCluster, execution: str, task_name: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in cluster.pods(execution)
        if pod["metadata"]["annotations"].get("kredun.dev/task") == task_name
    ]


def test_request_over_the_cluster_maximum_goes_straight_to_batch(tmp_path: Path, aws) -> None:
    # Executor-level fallback: every job of [executors.k8s] may fall back.
    config = '[executors.k8s]\ntype = "k8s"\nfallback = "batch"\nmax_cpus = 1\n'
    with cluster_with(tmp_path, config) as cluster:
        big = flow.inc.options(executor="k8s", cpus=4)
        cluster.create("maximum", cluster.plan_spec(flow.add(big(2), 10)))
        status = cluster.wait_for_phase("maximum", timeout=90)
        assert status["phase"] == "Succeeded", (status, cluster.log_text()[-4000:])
        assert status["result"]["preview"] == "13"

        # No Pod was ever created for `inc`.
        created = [
            request
            for request in cluster.api.request_log
            if request.verb == "create"
            and request.resource == "pods"
            and request.subresource is None
        ]
        assert len(created) == 1  # `add`'s
        assert not task_pods(cluster, "maximum", flow.inc.fullname)
        [job] = batch_jobs(aws)
        assert job["status"] == "SUCCEEDED"
        # The Pod asked no memory (no defaults set), so Batch gives its own 2 GiB.
        assert batch_requirements(aws, job) == {"VCPU": "4", "MEMORY": "2048"}
        [event] = wait_for(lambda: fallback_events(cluster, "maximum"), timeout=10)
        assert "cpus 4 > 1" in event["message"] and "'batch'" in event["message"]
        executors = job_records(cluster, status)
        assert executors.get(flow.inc.fullname) == ["batch"], executors


def test_without_a_fallback_the_pod_stays_pending(small_cluster: OperatorCluster, aws) -> None:
    cluster = small_cluster
    big = flow.inc.options(executor="k8s", cpus=2, fallback_after=0.5)
    cluster.create("pending", cluster.plan_spec(big(1)))

    def unschedulable() -> bool:
        pods = task_pods(cluster, "pending", flow.inc.fullname)
        conditions = pods[0]["status"].get("conditions") or [] if pods else []
        return any(c.get("reason") == "Unschedulable" for c in conditions)

    wait_for(unschedulable, timeout=30)
    time.sleep(2.5)  # well past fallback_after
    [pod] = task_pods(cluster, "pending", flow.inc.fullname)
    assert pod["status"]["phase"] == "Pending"
    assert not pod["metadata"].get("deletionTimestamp")
    assert cluster.status("pending").get("phase") == "Running"
    assert not fallback_events(cluster, "pending")
    assert batch_jobs(aws) == []


def test_maximum_options_and_unschedulable_pods() -> None:
    from fractions import Fraction

    from kredun.errors import ConfigError
    from kredun.resources import GIB, Resources
    from kredun_operator.pods import _maximum, _unschedulable

    assert _maximum("k8s", {"max_cpus": 8, "max_memory": "64Gi", "max_gpus": 0}) == Resources(
        Fraction(8), 64 * GIB, 0
    )
    assert _maximum("k8s", {"max_memory": 2}) == Resources(memory=2 * GIB)  # GiB, as `memory`
    with pytest.raises(ConfigError, match="executor 'k8s': max_gpus must be a whole number"):
        _maximum("k8s", {"max_gpus": 1.5})
    pending = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    ]}  # fmt: skip
    assert _unschedulable(pending)
    assert not _unschedulable({"phase": "Pending"})
    assert not _unschedulable({**pending, "phase": "Running"})
