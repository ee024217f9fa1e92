"""The Execution CRD and the operator against a real kube-apiserver (the control_plane tier).

The emulated API server applies no schema; here the real one does, so the CRD's validation
(OpenAPI schema and CEL rule) is checked by the component that enforces it on a cluster, with
the same valid and invalid specs tests/cluster/test_crd.py checks with jsonschema.

The operator's resilience runs here only, against what decides it on a cluster: kopf peering
between two replicas through the real API server, Pods adopted after a SIGKILL and a SIGTERM
of the operator, the seed subrun example, and the fallback to AWS Batch (moto) of a Pod the
real scheduler reports Unschedulable.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kredun.deserialize import resolve
from kredun.provenance.store import ProvenanceStore
from kredun.refs import ref_from_json

from tests.cluster.test_crd import INVALID_SPECS, VALID_SPECS
from tests.operator import test_fallback as fallback
from tests.operator.test_fallback import aws  # noqa: F401 - a fixture
from tests.support import workflows as flow
from tests.support.aws import MotoBatch, moto_batch, moto_batch_environ  # noqa: F401
from tests.support.controlplane import ControlPlane, KubeError
from tests.support.kube.testing import wait_for
from tests.support.operator import CRD_PATH, REPO_ROOT, OperatorCluster
from tests.support.seed_results import check_subrun_example_groups

# One plugin, so one session-scoped control plane per pytest process for every module.
pytest_plugins = ["tests.support.controlplane_fixtures"]
pytestmark = pytest.mark.control_plane

CRD_NAME = "executions.kredun.dev"


@pytest.fixture
def crd(control_plane: ControlPlane, tmp_path: Path) -> None:
    """The Execution CRD, applied (idempotently: the control plane is shared) and served."""
    kubectl = control_plane.kubectl(tmp_path)
    kubectl("apply", "-f", str(CRD_PATH))
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


def create_execution(plane: ControlPlane, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "kredun.dev/v1",
        "kind": "Execution",
        "metadata": {"generateName": "spec-"},
        "spec": spec,
    }
    # Strict, as kubectl sends it: unknown fields are errors rather than silently pruned.
    path = f"/apis/kredun.dev/v1/namespaces/{namespace}/executions?fieldValidation=Strict"
    return plane.request("POST", path, body)


@pytest.mark.parametrize("name", sorted(INVALID_SPECS))
def test_the_api_server_rejects_invalid_specs(
    control_plane: ControlPlane, namespace: str, crd: None, name: str
) -> None:
    with pytest.raises(KubeError) as rejected:
        create_execution(control_plane, namespace, INVALID_SPECS[name])
    assert rejected.value.status in (400, 422), rejected.value.body
    assert "spec" in rejected.value.body["message"]


def test_the_api_server_accepts_valid_specs_and_fills_in_defaults(
    control_plane: ControlPlane, namespace: str, crd: None
) -> None:
    for name, spec in VALID_SPECS.items():
        created = create_execution(control_plane, namespace, spec)
        kept = {key: created["spec"].get(key) for key in spec}
        assert kept == spec, name  # nothing pruned or changed
        assert created["spec"]["executor"] == spec.get("executor", "k8s")
        assert created["spec"]["cache"] is spec.get("cache", True)


def test_the_exactly_one_rule_speaks_through_cel(
    control_plane: ControlPlane, namespace: str, crd: None
) -> None:
    with pytest.raises(KubeError) as rejected:
        create_execution(control_plane, namespace, INVALID_SPECS["task-and-plan"])
    assert "exactly one of spec.task or spec.plan must be set" in rejected.value.body["message"]


def test_kubectl_applies_the_example_with_validation_and_shows_printer_columns(
    control_plane: ControlPlane, namespace: str, crd: None, tmp_path: Path
) -> None:
    kubectl = control_plane.kubectl(tmp_path)
    example = REPO_ROOT / "examples" / "execution.yaml"
    applied = kubectl("apply", "-n", namespace, "-f", str(example))
    assert "execution.kredun.dev/hello created" in applied.stdout
    header = kubectl("get", "executions", "-n", namespace).stdout.splitlines()[0]
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "CACHED", "AGE", "RESULT"]
    # kubectl's own validation (server-side, strict) refuses a typo the schema doesn't know.
    typo = example.read_text().replace("imagePullPolicy:", "imagePullpolicy:")
    refused = kubectl("apply", "-n", namespace, "-f", "-", input=typo, check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.imagePullpolicy"' in refused.stderr


@pytest.fixture
def real_operator_cluster(control_plane: ControlPlane, tmp_path: Path) -> Iterator[OperatorCluster]:
    namespace = f"op-{secrets.token_hex(4)}"
    with OperatorCluster(tmp_path, control_plane=control_plane, namespace=namespace) as cluster:
        yield cluster


def test_a_real_operator_reduces_the_example_with_pods_the_scheduler_placed(
    real_operator_cluster: OperatorCluster,
) -> None:
    cluster = real_operator_cluster
    example = REPO_ROOT / "examples" / "execution.yaml"
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", str(example))
    status = cluster.wait_for_phase("hello", timeout=120)
    assert status["phase"] == "Succeeded", status
    assert "Hello, kubernetes!" in status["result"]["preview"]
    assert status["jobs"]["done"] == 4
    pods = cluster.pods("hello")
    assert len(pods) == 4
    for pod in pods:
        assert pod["spec"]["nodeName"] == cluster.kubelet.node_name
        assert pod["status"]["phase"] == "Succeeded"
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert scheduled["status"] == "True"
    assert sum(cluster.kubelet.starts.values()) == 4
    row = cluster.kubectl("get", "executions", "-n", cluster.namespace).stdout.splitlines()[1]
    assert row.split()[:4] == ["hello", "Succeeded", "4/4", "0"]

    # The Pods' ownerReferences are the operator's only clean-up: the real garbage collector
    # removes them with their Execution. It learns of a new CRD by rediscovering the API every
    # 30 s (fixed in kube-controller-manager), so a freshly installed CRD can take that long.
    cluster.kubectl("delete", "execution", "hello", "-n", cluster.namespace, "--wait=false")
    wait_for(lambda: not cluster.pods("hello"), timeout=60, message="the Pods to be collected")


# The operator's resilience and the paths that hinge on the scheduler run here only: the real
# API server, scheduler and controller-manager decide what the emulator would only imitate.


def test_peered_replicas_run_each_execution_once(
    real_operator_cluster: OperatorCluster, tmp_path: Path
) -> None:
    cluster = real_operator_cluster
    cluster.stop_operator()
    peering_crds = REPO_ROOT / "helm" / "kredun" / "crds" / "kopf-peering.yaml"
    cluster.kubectl("apply", "-f", str(peering_crds))
    cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    cluster.api_request(
        "POST",
        f"/apis/kopf.dev/v1/namespaces/{cluster.namespace}/kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kredun"}},
    )
    replicas = []
    try:
        for pod_name in ("kredun-replica-a", "kredun-replica-b"):
            log = tmp_path / f"{pod_name}.log"
            env = cluster.operator_env(POD_NAME=pod_name)
            process, port = cluster.spawn_operator("--peering", "kredun", env=env, log=log)
            replicas.append((process, log))
            wait_for(lambda: cluster.healthy(process, port), timeout=30)  # noqa: B023
        # Distinct priorities: the lower one pauses instead of both working (or neither).
        wait_for(
            lambda: (
                sum("Pausing operations in favour of" in log.read_text() for _, log in replicas)
                == 1
            ),
            timeout=30,
            message="one replica paused",
        )
        cluster.create("peered", cluster.plan_spec([flow.sleepy(i, 1) for i in range(3)]))
        status = cluster.wait_for_phase("peered")
        assert status["phase"] == "Succeeded", status
        assert len(cluster.pods("peered")) == 3
        assert set(cluster.kubelet.starts.values()) == {1}
        logs = [log.read_text() for _, log in replicas]
        assert not any("Possibly conflicting operators" in text for text in logs)
    finally:
        for process, _ in replicas:
            process.terminate()
            process.wait(timeout=20)


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


def test_killed_and_restarted_operators_resume_without_rerunning(
    real_operator_cluster: OperatorCluster,
) -> None:
    cluster = real_operator_cluster
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
    # A job whose Pod finished before any operator wrote its launch down is replayed from
    # the cache by the next one (CACHED): timing on a real API server decides which.
    assert {row.status for row in rows} <= {"DONE", "CACHED"}
    assert len({row.eval_hash for row in rows}) == 5
    assert execution.status == "DONE" and execution.end_time is not None
    for row in rows:
        assert row.end_time is not None
        assert execution.start_time <= row.start_time <= row.end_time <= execution.end_time
        assert row.status == "CACHED" or row.start_time < row.end_time
    # The Execution's row keeps the start of its first operator: three stages of 4 s.
    assert (execution.end_time - execution.start_time).total_seconds() >= 8


def test_seed_subrun_example_runs_each_group_in_one_pod(
    real_operator_cluster: OperatorCluster,
) -> None:
    from examples.subrun import main

    cluster = real_operator_cluster
    cluster.create("seed", cluster.plan_spec(main(executor="k8s")))
    status = cluster.wait_for_phase("seed", timeout=180)
    assert status["phase"] == "Succeeded", status
    fetch = cluster.scheduler().fetch_blob
    result = resolve(ref_from_json(status["result"]["ref"]), fetch)
    check_subrun_example_groups(result["results"])
    subrun_pods = [p for p in cluster.pods("seed") if p["metadata"]["labels"]["kredun.dev/task"]
                   == "kredun.subrun"]  # fmt: skip
    assert len(subrun_pods) == 2  # one Pod per group, its records in processes inside it


def test_a_pod_the_scheduler_finds_unschedulable_falls_back_to_batch(
    control_plane: ControlPlane,
    tmp_path: Path,
    aws: MotoBatch,  # noqa: F811
) -> None:
    with OperatorCluster(
        tmp_path,
        control_plane=control_plane,
        namespace=f"op-{secrets.token_hex(4)}",
        kubelet_options={"max_cpu": 1},  # a 2-CPU Pod fits no node
        operator_config=fallback.BATCH_EXECUTOR,
    ) as cluster:
        big = flow.inc.options(executor="k8s", cpus=2, fallback="batch", fallback_after=1)
        # Memory from the Execution's defaults: the Pod asked 3Gi, so must the Batch job.
        spec = cluster.plan_spec(flow.add(big(1), 10), resources={"memory": "3Gi"})
        cluster.create("fallback", spec)
        status = cluster.wait_for_phase("fallback", timeout=90)
        assert status["phase"] == "Succeeded", (status, cluster.log_text()[-4000:])
        assert status["result"]["preview"] == "12"

        [job] = fallback.batch_jobs(aws)
        assert job["status"] == "SUCCEEDED"
        assert job["container"]["command"][:2] == ["kredun", "worker"]
        assert fallback.batch_requirements(aws, job) == {"VCPU": "2", "MEMORY": "3072"}

        [event] = wait_for(lambda: fallback.fallback_events(cluster, "fallback"), timeout=10)
        assert flow.inc.fullname in event["message"]
        # The scheduler's own words reached the event: its PodScheduled=False message.
        assert "'batch'" in event["message"] and "Unschedulable" in event["message"]
        # The Pod that could not be scheduled was withdrawn; `add` ran as a Pod.
        wait_for(lambda: not fallback.task_pods(cluster, "fallback", flow.inc.fullname), timeout=10)
        assert fallback.task_pods(cluster, "fallback", flow.add.fullname)

        executors = fallback.job_records(cluster, status)
        assert executors.get(flow.inc.fullname) == ["batch"], executors
        assert executors.get(flow.add.fullname) == ["default"], executors
        assert "JobFailed" not in cluster.event_reasons("fallback")
