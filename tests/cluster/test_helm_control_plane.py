"""The Helm chart for real (the control_plane tier): the README's cluster quick start, step by
step, against a real kube-apiserver that enforces the chart's RBAC.

`helm install` creates the chart's Deployment; the controller-manager makes its ReplicaSet and
Pod, the scheduler binds the Pod to the local kubelet's Node, and the kubelet runs the Pod's
command (`kredun operator` with the chart's args and env) with its volumes mounted where the
chart says: the ConfigMap at /etc/kredun, the claim at the value store's path, and the
ServiceAccount token from the TokenRequest API where in-cluster clients look for it. The
operator therefore talks to the API server as the chart's ServiceAccount, nothing more: a
permission missing from the chart fails this test (the operator cannot reduce the Execution),
and the audit log shows every request it made and that none was refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane, KubeError
from tests.support.kube.kubelet import LocalKubelet
from tests.support.kube.testing import Kubectl, wait_for
from tests.support.operator import REPO_ROOT, REQUESTS_DIR_VARIABLE, free_port
from tests.support.tools import CHART_DIR, run_helm

pytest_plugins = ["tests.support.controlplane_fixtures"]
pytestmark = pytest.mark.control_plane

RELEASE = "kredun"  # the README's release name: resources are "kredun", "kredun-values", ...
EXAMPLE = REPO_ROOT / "examples" / "execution.yaml"


@dataclass
class Install:
    plane: ControlPlane
    namespace: str
    kubeconfig: Path
    kubectl: Kubectl
    kubelet: LocalKubelet
    # The chart's fixed ports would collide with other test runs on this machine.
    port_args: tuple[str, ...]

    @property
    def operator_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{RELEASE}"

    def helm(self, *args: str) -> str:
        return run_helm([*args, "--kubeconfig", str(self.kubeconfig), "-n", self.namespace]).stdout

    def get(self, path: str) -> dict[str, Any]:
        return self.plane.request("GET", f"/api/v1/namespaces/{self.namespace}/{path}")

    def operator_pods(self) -> list[dict[str, Any]]:
        selector = "app.kubernetes.io/component=operator"
        pods = self.get(f"pods?labelSelector={selector}")["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def phase(self, name: str) -> str | None:
        path = f"/apis/kredun.dev/v1/namespaces/{self.namespace}/executions/{name}"
        return (self.plane.request("GET", path).get("status") or {}).get("phase")

    def run_example(self, name: str) -> None:
        """`kubectl apply -f examples/execution.yaml` (renamed), then wait for Succeeded."""
        manifest = EXAMPLE.read_text().replace("name: hello", f"name: {name}")
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=manifest)

        def finished() -> bool:
            used_rules(self.plane, self.operator_account)  # a refusal fails at once
            return self.phase(name) in ("Succeeded", "Failed")

        wait_for(
            finished,
            timeout=120,
            interval=0.5,
            message=f"Execution {name} to finish",
        )
        assert self.phase(name) == "Succeeded", self.kubectl(
            "get", "execution", name, "-n", self.namespace, "-o", "yaml"
        ).stdout


@pytest.fixture
def install(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Install]:
    namespace = f"kredun-{secrets.token_hex(3)}"
    node = f"kubelet-{namespace}"
    volume = f"{namespace}-values"
    values_dir = tmp_path / "values-volume"
    values_dir.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    kubelet = LocalKubelet(
        control_plane.write_kubeconfig(tmp_path / "kubelet.kubeconfig"),
        logs_dir=tmp_path / "pod-logs",
        work_dir=tmp_path / "kubelet",
        node_name=node,
        schedule_pods=False,
        max_grace_period=2.0,
        # The image's contents: kredun on PATH and the examples package importable.
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}"},
    )
    # No volume provisioner here: the claim binds to a hostPath volume made for it (a cluster's
    # default StorageClass would provision one).
    control_plane.request(
        "POST",
        "/api/v1/persistentvolumes",
        {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(values_dir)},
                "claimRef": {"namespace": namespace, "name": f"{RELEASE}-values"},
            },
        },
    )
    ports = ("--set", f"health.port={free_port()}", "--set", f"metrics.port={free_port()}")
    try:
        with kubelet:
            yield Install(
                control_plane,
                namespace,
                control_plane.write_kubeconfig(tmp_path / "admin.kubeconfig"),
                control_plane.kubectl(tmp_path),
                kubelet,
                ports,
            )
    finally:
        save_operator_requests(control_plane, f"system:serviceaccount:{namespace}:{RELEASE}")
        control_plane.delete_namespace(namespace)
        control_plane.delete_node(node)
        with contextlib.suppress(KubeError):
            control_plane.request("DELETE", f"/api/v1/persistentvolumes/{volume}")


def save_operator_requests(plane: ControlPlane, username: str) -> None:
    """With $KREDUN_TEST_OPERATOR_REQUESTS set, leave what the operator asked for, from the
    audit log, where tests/cluster/test_rbac.py holds the chart's rules against it."""
    directory = os.environ.get(REQUESTS_DIR_VARIABLE)
    if not directory:
        return
    requests = plane.audited_requests(username)
    record = {"modes": ["namespaced", "standalone"], "requests": requests}  # chart defaults
    (Path(directory) / f"chart-{os.getpid()}.json").write_text(json.dumps(record))


def used_rules(plane: ControlPlane, username: str) -> set[tuple[str, str, str]]:
    """(API group, resource[/subresource], verb) of every request ``username`` made."""
    used = set()
    for event in plane.audit_events(username):
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/api, /apis, /version): open to every authenticated user
        status = (event.get("responseStatus") or {}).get("code", 200)
        assert status != 403, f"the chart's RBAC refused {event['verb']} {ref}"
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return used


def test_the_chart_installs_runs_an_execution_upgrades_and_uninstalls(install: Install) -> None:
    # helm install, as the README's quick start does it (the image exists on the node).
    install.helm(
        "install", RELEASE, str(CHART_DIR), "--create-namespace", "--wait", "--timeout", "120s",
        "--set", "image.repository=kredun", "--set", "image.tag=latest",
        "--set", "image.pullPolicy=IfNotPresent", *install.port_args,
    )  # fmt: skip
    [operator] = install.operator_pods()
    assert operator["spec"]["nodeName"] == install.kubelet.node_name
    assert operator["spec"]["serviceAccountName"] == RELEASE
    assert install.get("persistentvolumeclaims/kredun-values")["status"]["phase"] == "Bound"

    install.run_example("hello")
    row = install.kubectl("get", "executions", "-n", install.namespace).stdout.splitlines()[1]
    assert row.split()[:3] == ["hello", "Succeeded", "4/4"]
    pods = install.get("pods?labelSelector=kredun.dev/execution=hello")["items"]
    assert len(pods) == 4
    assert {p["spec"]["serviceAccountName"] for p in pods} == {f"{RELEASE}-jobs"}

    # Everything the operator asked for, as the chart's ServiceAccount, was granted.
    used = used_rules(install.plane, install.operator_account)
    assert ("", "pods", "create") in used
    assert ("kredun.dev", "executions/status", "patch") in used

    # helm upgrade: the operator Pod is replaced (Recreate) with the new settings and works on.
    install.helm(
        "upgrade", RELEASE, str(CHART_DIR), "--wait", "--timeout", "120s", "--reuse-values",
        "--set", "operator.logLevel=debug",
    )  # fmt: skip
    wait_for(
        lambda: (
            [p["metadata"]["uid"] for p in install.operator_pods()]
            not in ([], [operator["metadata"]["uid"]])
        ),
        timeout=60,
        message="the upgraded operator Pod",
    )
    [upgraded] = install.operator_pods()
    assert "debug" in upgraded["spec"]["containers"][0]["args"]
    install.run_example("hello-again")

    # helm uninstall removes the operator; the CRD, the Executions and the values stay.
    install.helm("uninstall", RELEASE, "--wait", "--timeout", "60s")
    wait_for(lambda: not install.operator_pods(), timeout=60, message="the operator Pod to go")
    with pytest.raises(KubeError):
        install.plane.request(
            "GET", f"/apis/apps/v1/namespaces/{install.namespace}/deployments/{RELEASE}"
        )
    assert install.phase("hello") == "Succeeded"
    install.plane.request(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/executions.kredun.dev"
    )
    assert install.get("persistentvolumeclaims/kredun-values")["status"]["phase"] == "Bound"
