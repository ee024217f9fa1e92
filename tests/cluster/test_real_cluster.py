"""End to end on a real cluster (kind, k3s, ...): skipped unless KREDUN_E2E_KUBECONFIG is set.

Prerequisites: kredun installed in the cluster with its Helm chart (CRD, operator, RBAC,
stores), serving the namespace KREDUN_E2E_NAMESPACE (default: "default"), and a job image
KREDUN_E2E_IMAGE that contains the `examples` package (images/Dockerfile builds one),
loaded into the cluster. Only hand-written Executions are used, so the test machine needs
no access to the cluster's database or value store::

    KREDUN_E2E_KUBECONFIG=~/.kube/config KREDUN_E2E_IMAGE=kredun:latest \\
        python -m pytest tests/cluster/test_real_cluster.py
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest

from tests.support.kube.testing import Kubectl

KUBECONFIG = os.environ.get("KREDUN_E2E_KUBECONFIG")
IMAGE = os.environ.get("KREDUN_E2E_IMAGE", "kredun:latest")
NAMESPACE = os.environ.get("KREDUN_E2E_NAMESPACE", "default")
TIMEOUT = float(os.environ.get("KREDUN_E2E_TIMEOUT", "300"))

pytestmark = [
    pytest.mark.e2e_cluster,
    pytest.mark.skipif(not KUBECONFIG, reason="set KREDUN_E2E_KUBECONFIG to run on a cluster"),
]


@pytest.fixture
def kubectl(tmp_path: Path) -> Kubectl:
    return Kubectl(Path(KUBECONFIG or "").expanduser(), tmp_path / "kubectl-cache")


@pytest.fixture
def names(kubectl: Kubectl):
    """Unique Execution names, deleted after the test."""
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        created.append(name)
        return name

    yield make
    for name in created:
        kubectl("delete", "execution", name, "-n", NAMESPACE, "--ignore-not-found", check=False)


def apply(kubectl: Kubectl, name: str, spec: dict) -> None:
    manifest = {
        "apiVersion": "kredun.dev/v1",
        "kind": "Execution",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))


def get(kubectl: Kubectl, kind: str, *args: str) -> dict:
    return json.loads(kubectl("get", kind, *args, "-n", NAMESPACE, "-o", "json").stdout)


def wait_finished(kubectl: Kubectl, name: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = get(kubectl, "execution", name).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return status
        time.sleep(2)
    pytest.fail(f"execution {name} did not finish within {TIMEOUT:.0f}s")


def test_hello_example(kubectl: Kubectl, names) -> None:
    name = names("hello")
    apply(kubectl, name, {"task": "examples.hello.main", "kwargs": {"name": "kubernetes"},
                          "image": IMAGE, "imagePullPolicy": "IfNotPresent"})  # fmt: skip
    status = wait_finished(kubectl, name)
    assert status["phase"] == "Succeeded", status
    assert "Hello, kubernetes!" in status["result"]["preview"]
    assert status["jobs"]["done"] == status["jobs"]["total"] == 4
    table = kubectl("get", "executions", name, "-n", NAMESPACE).stdout
    assert table.split()[:6] == ["NAME", "PHASE", "PROGRESS", "CACHED", "AGE", "RESULT"]
    pods = get(kubectl, "pods", "-l", f"kredun.dev/execution={name}")["items"]
    assert len(pods) == 4
    assert all(pod["spec"]["restartPolicy"] == "Never" for pod in pods)
    assert all(pod["metadata"]["ownerReferences"][0]["name"] == name for pod in pods)


def test_unknown_task_fails_with_the_import_error(kubectl: Kubectl, names) -> None:
    name = names("unknown")
    apply(kubectl, name, {"task": "examples.nope.main", "image": IMAGE})
    status = wait_finished(kubectl, name)
    assert status["phase"] == "Failed"
    assert "cannot import module 'examples.nope'" in status["message"]


def test_an_image_that_cannot_be_pulled_fails(kubectl: Kubectl, names) -> None:
    name = names("noimage")
    apply(kubectl, name, {"task": "examples.hello.main", "image": "kredun.invalid/none:0",
                          "imagePullPolicy": "Always"})  # fmt: skip
    status = wait_finished(kubectl, name)
    assert status["phase"] == "Failed"
    assert "kredun.invalid/none:0" in status["message"]


def test_deleting_an_execution_leaves_no_pods(kubectl: Kubectl, names) -> None:
    name = names("deleted")
    apply(kubectl, name, {"task": "examples.hello.main", "image": IMAGE})
    kubectl("delete", "execution", name, "-n", NAMESPACE, "--timeout", f"{TIMEOUT:.0f}s")
    deadline = time.monotonic() + TIMEOUT
    while get(kubectl, "pods", "-l", f"kredun.dev/execution={name}")["items"]:
        assert time.monotonic() < deadline, "job pods outlived their Execution"
        time.sleep(2)
