"""The Execution CRD and the operator against a real kube-apiserver (the control_plane tier).

The emulated API server applies no schema; here the real one does, so the CRD's validation
(OpenAPI schema and CEL rule) is checked by the component that enforces it on a cluster, with
the same valid and invalid specs tests/test_crd.py checks with jsonschema.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_operator_e2e as e2e
from tests import test_operator_fallback as fallback
from tests import test_operator_resume as resume
from tests.support.aws import MotoBatch, moto_batch, moto_batch_environ  # noqa: F401
from tests.support.controlplane import ControlPlane, KubeError
from tests.support.kube.testing import wait_for
from tests.support.operator import CRD_PATH, REPO_ROOT, OperatorCluster
from tests.test_crd import INVALID_SPECS, VALID_SPECS
from tests.test_operator_fallback import aws  # noqa: F401 - a fixture

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


# The operator's behaviours below are specified once, by the emulator tier's tests; here the
# same test bodies run against the real API server, scheduler and controller-manager.


def test_peered_replicas_run_each_execution_once_on_the_real_control_plane(
    real_operator_cluster: OperatorCluster, tmp_path: Path
) -> None:
    e2e.test_peered_replicas_run_each_execution_once(real_operator_cluster, tmp_path)


def test_a_killed_operator_adopts_its_pods_without_duplicates_on_the_real_control_plane(
    real_operator_cluster: OperatorCluster,
) -> None:
    resume.test_killed_and_restarted_operators_resume_without_rerunning(real_operator_cluster)


def test_the_seed_subrun_example_runs_each_group_in_one_pod_on_the_real_control_plane(
    real_operator_cluster: OperatorCluster,
) -> None:
    e2e.test_seed_subrun_example_runs_each_group_in_one_pod(real_operator_cluster)


def test_the_real_schedulers_unschedulable_pod_falls_back_to_batch(
    control_plane: ControlPlane,
    tmp_path: Path,
    aws: MotoBatch,  # noqa: F811
) -> None:
    # The node has one CPU: the real scheduler reports a 2-CPU Pod Unschedulable.
    with OperatorCluster(
        tmp_path,
        control_plane=control_plane,
        namespace=f"op-{secrets.token_hex(4)}",
        kubelet_options={"max_cpu": 1},
        operator_config=fallback.BATCH_EXECUTOR,
    ) as cluster:
        fallback.test_unschedulable_pod_falls_back_to_batch(cluster, aws)
