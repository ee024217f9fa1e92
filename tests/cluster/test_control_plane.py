"""The real control plane fixture itself: what the operator's control_plane tests build on.

Each test says which component it proves works: the API server (version, RBAC), the
controller-manager (Deployments, garbage collection) and the scheduler (binding, Unschedulable).
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import (
    ADMIN,
    USER,
    ControlPlane,
    KubeError,
    build_module,
)
from tests.support.kube.kubelet import LocalKubelet, parse_quantity
from tests.support.kube.testing import wait_for

# One plugin, so one session-scoped control plane per pytest process for every module.
pytest_plugins = ["tests.support.controlplane_fixtures"]
pytestmark = pytest.mark.control_plane

# Matches no Node the tests register, so these Pods stay unbound whatever else runs.
NOWHERE = {"kredun.test/node": "nowhere"}


def pod_template(labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "kredun:test", "command": ["sleep", "3600"]}
    return {"metadata": {"labels": labels}, "spec": {"containers": [container], **spec}}


def items(plane: ControlPlane, path: str) -> list[dict[str, Any]]:
    return plane.request("GET", path)["items"]


def test_api_server_reports_the_pinned_version(control_plane: ControlPlane, tmp_path) -> None:
    pinned = build_module().KUBERNETES_VERSION
    assert control_plane.request("GET", "/version")["gitVersion"] == pinned
    kubectl = control_plane.kubectl(tmp_path)
    server = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert server["gitVersion"] == pinned
    assert (server["major"], server["minor"]) == tuple(pinned.removeprefix("v").split(".")[:2])


def test_rbac_denies_the_unprivileged_user_until_a_role_grants_it(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    with pytest.raises(KubeError) as denied:
        control_plane.request("GET", pods, user=USER)
    assert denied.value.status == 403
    assert USER.name in denied.value.body["message"]
    user_kubectl = control_plane.kubectl(tmp_path, USER)
    answer = user_kubectl("auth", "can-i", "list", "pods", "-n", namespace, check=False)
    assert answer.stdout.strip() == "no"
    # Authenticated but unauthorized, not unknown: a RoleBinding to its group lets it read.
    binding = {
        "metadata": {"name": "users-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": USER.groups[0]}
        ],
    }
    rolebindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    control_plane.request("POST", rolebindings, binding)

    def can_list() -> bool:  # the authorizer sees new bindings through its informer, soon
        try:
            return control_plane.request("GET", pods, user=USER)["items"] == []
        except KubeError as error:
            assert error.status == 403
            return False

    wait_for(can_list, timeout=10, message="the RoleBinding to take effect")
    with pytest.raises(KubeError) as still_denied:
        control_plane.request("DELETE", f"{pods}/anything", user=USER)
    assert still_denied.value.status == 403
    # The admin's kubeconfig comes from the same token file, in system:masters.
    assert control_plane.kubectl(tmp_path, ADMIN)("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_a_deployment_becomes_a_replicaset_and_pods_and_goes_with_them(
    control_plane: ControlPlane, namespace: str
) -> None:
    labels = {"app": "sleeper"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": pod_template(labels, nodeSelector=NOWHERE),
        },
    }
    apps = f"/apis/apps/v1/namespaces/{namespace}"
    created = control_plane.request("POST", f"{apps}/deployments", deployment)

    (replicaset,) = wait_for(
        lambda: items(control_plane, f"{apps}/replicasets"), timeout=30, message="a ReplicaSet"
    )
    assert replicaset["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    pods = wait_for(
        lambda: len(found := items(control_plane, pods_path)) == 2 and found,
        timeout=30,
        message="two Pods",
    )
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["uid"] == replicaset["metadata"]["uid"]
        # The ServiceAccount admission plugin and the token controller did their part.
        assert pod["spec"]["serviceAccountName"] == "default"
        assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])

    # Deleting the owner leaves the rest to the garbage collector.
    control_plane.request("DELETE", f"{apps}/deployments/sleeper")
    wait_for(
        lambda: (
            not items(control_plane, f"{apps}/replicasets") and not items(control_plane, pods_path)
        ),
        timeout=60,
        message="the ReplicaSet and Pods to be garbage-collected",
    )


def test_deleting_an_owner_garbage_collects_its_dependents(
    control_plane: ControlPlane, namespace: str
) -> None:
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = control_plane.request("POST", configmaps, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    for name in ("dependent-1", "dependent-2"):
        control_plane.request(
            "POST", configmaps, {"metadata": {"name": name, "ownerReferences": [reference]}}
        )
    control_plane.request("POST", configmaps, {"metadata": {"name": "bystander"}})

    control_plane.request("DELETE", f"{configmaps}/owner")

    def remaining() -> set[str]:
        return {
            item["metadata"]["name"]
            for item in items(control_plane, configmaps)
            if item["metadata"]["name"] != "kube-root-ca.crt"
        }

    wait_for(lambda: remaining() == {"bystander"}, timeout=60, message="dependents to go")


@pytest.fixture
def labelled_node(control_plane: ControlPlane) -> Iterator[dict[str, str]]:
    """A Node created through the API (no kubelet behind it), tainted so that only Pods
    tolerating it land there; yields its name and the label that selects it."""
    name = f"api-node-{secrets.token_hex(3)}"
    yield {"name": name, "label": name}
    control_plane.delete_node(name)


def test_the_scheduler_binds_a_pod_once_a_node_fits_it(
    control_plane: ControlPlane, namespace: str, labelled_node: dict[str, str]
) -> None:
    node_name = labelled_node["name"]
    selector = {"kredun.test/node": labelled_node["label"]}
    taint = {"key": "kredun.test/only", "value": node_name, "effect": "NoSchedule"}
    # No kubelet renews this Node's Lease, so it keeps the not-ready taint new Nodes get: the
    # Pod tolerates every taint, and the selector alone takes it there.
    pod = pod_template({}, nodeSelector=selector, tolerations=[{"operator": "Exists"}])
    pod["metadata"]["name"] = "waiting"
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}
    pod_path = f"/api/v1/namespaces/{namespace}/pods/waiting"
    control_plane.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)

    def scheduled_condition() -> dict[str, Any] | None:
        conditions = control_plane.request("GET", pod_path)["status"].get("conditions") or []
        return next((c for c in conditions if c["type"] == "PodScheduled"), None)

    condition = wait_for(scheduled_condition, timeout=30, message="a PodScheduled condition")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert "nodes" in condition["message"]  # "no nodes available" or "0/N nodes are ..."

    node = {
        "metadata": {"name": node_name, "labels": selector},
        "spec": {"taints": [taint]},
        "status": {
            "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"},
            "capacity": {"cpu": "1", "memory": "1Gi", "pods": "10"},
        },
    }
    control_plane.request("POST", "/api/v1/nodes", node)
    bound = wait_for(
        lambda: control_plane.request("GET", pod_path)["spec"].get("nodeName"),
        timeout=60,
        message="the Pod to be bound",
    )
    assert bound == node_name
    # Bound and no kubelet to finish a graceful deletion: delete it at once.
    control_plane.request("DELETE", f"{pod_path}?gracePeriodSeconds=0")


@pytest.fixture
def gpu_kubelet(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[LocalKubelet]:
    """The local kubelet as the one node with GPUs, binding nothing itself."""
    node = f"kubelet-{namespace}"
    try:
        with LocalKubelet(
            control_plane.write_kubeconfig(tmp_path / "kubelet.kubeconfig"),
            logs_dir=tmp_path / "pod-logs",
            work_dir=tmp_path / "kubelet",
            node_name=node,
            max_cpu="2",
            max_memory="2Gi",
            max_gpus=1,
            max_grace_period=5,
            schedule_pods=False,
        ) as kubelet:
            yield kubelet
    finally:
        control_plane.delete_node(node)


def gpu_pod(name: str, gpus: int, code: str) -> dict[str, Any]:
    pod = pod_template({}, restartPolicy="Never")
    pod["metadata"]["name"] = name
    container = pod["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", code]
    container["env"] = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    container["resources"] = {"limits": {"cpu": "500m", "nvidia.com/gpu": str(gpus)}}
    return pod


def test_the_local_kubelet_runs_what_the_scheduler_binds_to_its_node(
    control_plane: ControlPlane, namespace: str, gpu_kubelet: LocalKubelet
) -> None:
    node_name = gpu_kubelet.node_name
    node = control_plane.request("GET", f"/api/v1/nodes/{node_name}")
    allocatable = {k: parse_quantity(v) for k, v in node["status"]["allocatable"].items()}
    assert allocatable["cpu"] == 2 and allocatable["memory"] == 2 * 2**30
    assert allocatable["nvidia.com/gpu"] == 1
    # Its Lease is what keeps the node lifecycle controller from tainting it unreachable.
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node_name}"
    lease = wait_for(lambda: control_plane.request("GET", lease_path), message="the node Lease")
    assert lease["spec"]["holderIdentity"] == node_name
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    wait_for(
        lambda: (
            not control_plane.request("GET", f"/api/v1/nodes/{node_name}")["spec"].get("taints")
        ),
        timeout=30,
        message="the not-ready taint to be lifted",
    )
    pods = f"/api/v1/namespaces/{namespace}/pods"

    control_plane.request(
        "POST", pods, gpu_pod("one-gpu", 1, "import os; print('on', os.environ['NODE'])")
    )
    control_plane.request("POST", pods, gpu_pod("two-gpus", 2, "print('never')"))

    def phase(name: str) -> str:
        return control_plane.request("GET", f"{pods}/{name}")["status"].get("phase", "")

    wait_for(lambda: phase("one-gpu") == "Succeeded", timeout=60, message="one-gpu to succeed")
    ran = control_plane.request("GET", f"{pods}/one-gpu")
    assert ran["spec"]["nodeName"] == gpu_kubelet.node_name
    assert ran["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    log = gpu_kubelet.logs_dir / namespace / "one-gpu.log"
    assert log.read_text() == f"on {gpu_kubelet.node_name}\n"

    too_big = control_plane.request("GET", f"{pods}/two-gpus")
    (scheduled,) = (c for c in too_big["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    assert gpu_kubelet.starts == {"one-gpu": 1}


def test_deleting_a_running_pod_stops_its_process(
    control_plane: ControlPlane, namespace: str, gpu_kubelet: LocalKubelet
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    control_plane.request("POST", pods, gpu_pod("sleeper", 0, "import time; time.sleep(600)"))
    wait_for(lambda: gpu_kubelet.running == [f"{namespace}/sleeper"], timeout=60,
             message="the sleeper to run")  # fmt: skip
    control_plane.request("DELETE", f"{pods}/sleeper")
    # Graceful deletion on a real API server: the Pod stays until its kubelet confirms.
    wait_for(lambda: not items(control_plane, pods), timeout=30, message="the Pod to go")
    assert gpu_kubelet.running == []


# Reads its volumes where the Pod mounts them, then asks the API server who its token is.
VOLUME_READER = r"""
import json, os, ssl, urllib.error, urllib.request
account = "/var/run/secrets/kubernetes.io/serviceaccount"
print(open("/etc/app/greeting.txt").read(), open("/etc/secret/password").read())
open("/var/scratch/written", "w").write("ok")
print(open("/var/scratch/written").read(), open(account + "/namespace").read())
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
request = urllib.request.Request(
    f"https://{host}:{port}/api/v1/nodes",
    headers={"Authorization": "Bearer " + open(account + "/token").read()},
)
context = ssl.create_default_context(cafile=account + "/ca.crt")
try:
    urllib.request.urlopen(request, context=context)
except urllib.error.HTTPError as error:
    print(error.code, json.loads(error.read())["message"])
"""


def test_the_local_kubelet_mounts_configmaps_secrets_and_the_service_account_token(
    control_plane: ControlPlane, namespace: str, gpu_kubelet: LocalKubelet
) -> None:
    api = f"/api/v1/namespaces/{namespace}"
    control_plane.request(
        "POST", f"{api}/configmaps", {"metadata": {"name": "app"}, "data": {"greeting": "hi"}}
    )
    secret = {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    control_plane.request("POST", f"{api}/secrets", secret)
    pod = gpu_pod("reader", 0, VOLUME_READER)
    greeting = {"key": "greeting", "path": "greeting.txt"}
    pod["spec"]["volumes"] = [
        {"name": "app", "configMap": {"name": "app", "items": [greeting]}},
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
    ]  # fmt: skip
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "app", "mountPath": "/etc/app", "readOnly": True},
        {"name": "creds", "mountPath": "/etc/secret", "readOnly": True},
        {"name": "scratch", "mountPath": "/var/scratch"},
    ]
    created = control_plane.request("POST", f"{api}/pods", pod)
    # ServiceAccount admission added the projected token volume, as on any cluster.
    assert any("projected" in v for v in created["spec"]["volumes"])

    def phase() -> str:
        return control_plane.request("GET", f"{api}/pods/reader")["status"].get("phase", "")

    wait_for(lambda: phase() in ("Succeeded", "Failed"), timeout=60, message="the reader to end")
    log = (gpu_kubelet.logs_dir / namespace / "reader.log").read_text()
    assert phase() == "Succeeded", log
    lines = log.splitlines()
    assert lines[:2] == ["hi s3cret", f"ok {namespace}"]
    account = f"system:serviceaccount:{namespace}:default"
    assert lines[2].startswith(f'403 nodes is forbidden: User "{account}"'), log
    # The mounts were the Pod's own: nothing appeared on the host.
    assert not Path("/etc/app").exists() and not Path("/var/scratch").exists()
