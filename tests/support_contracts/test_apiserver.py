"""Contract tests of the emulated Kubernetes API server against the real clients.

The operator's tests trust this emulator to behave like a kube-apiserver, so each behaviour the
operator, kopf, kubectl or the ``kubernetes`` client relies on is checked here with those very
clients over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kube.apiserver import KubeApiServer, RequestRecord
from tests.support.kube.testing import Kubectl, subprocess_env, wait_for

pytest_plugins = ["tests.support.kube.fixtures"]
pytestmark = pytest.mark.timeout(60)

GROUP, VERSION, PLURAL = "test.kredun.dev", "v1", "widgets"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wdg"],
            "categories": ["kredun-test"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }
        ],
    },
}


def widget(name: str, size: int = 1, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, **metadata},
        "spec": {"size": size},
    }


def install_crd(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "crd.yaml"
    manifest.write_text(yaml.safe_dump(WIDGET_CRD))
    kubectl("apply", "--validate=false", "-f", str(manifest))


@pytest.fixture
def core(kube_client: Any) -> Any:
    import kubernetes.client

    return kubernetes.client.CoreV1Api(kube_client)


@pytest.fixture
def custom(kube_client: Any, kubectl: Kubectl, tmp_path: Path) -> Any:
    """The custom-objects API, with the Widget CRD installed through ``kubectl apply``."""
    import kubernetes.client

    install_crd(kubectl, tmp_path)
    return kubernetes.client.CustomObjectsApi(kube_client)


def api_error(call: Any) -> Any:
    """Run a client call expected to fail; return the ApiException."""
    import kubernetes.client

    with pytest.raises(kubernetes.client.ApiException) as caught:
        call()
    return caught.value


def http(
    api: KubeApiServer,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """A raw request, for what the clients hide (status bodies, exact content types)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        api.url + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


# ------------------------------------------------------------------------------ discovery


def test_discovery_lists_builtins_and_serves_no_openapi(
    kube_api: KubeApiServer, kubectl: Kubectl
) -> None:
    assert http(kube_api, "GET", "/version")[1]["minor"] == "37"
    _, core_list = http(kube_api, "GET", "/api/v1")
    names = {entry["name"] for entry in core_list["resources"]}
    assert {
        "pods",
        "pods/log",
        "pods/status",
        "pods/binding",
        "events",
        "namespaces",
        "services",
        "configmaps",
        "secrets",
        "serviceaccounts",
    } <= names
    _, groups = http(kube_api, "GET", "/apis")
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= {
        g["name"] for g in groups["groups"]
    }
    assert http(kube_api, "GET", "/openapi/v2")[0] == 404
    assert http(kube_api, "GET", "/openapi/v3")[0] == 404

    resources = kubectl("api-resources", "-o", "name").stdout.split()
    assert {
        "pods",
        "leases.coordination.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
    } <= set(resources)


def test_installed_crd_appears_in_discovery_and_is_served(
    kube_api: KubeApiServer, kubectl: Kubectl, custom: Any
) -> None:
    _, group_list = http(kube_api, "GET", "/apis")
    assert GROUP in {g["name"] for g in group_list["groups"]}
    _, resource_list = http(kube_api, "GET", f"/apis/{GROUP}/{VERSION}")
    entries = {entry["name"]: entry for entry in resource_list["resources"]}
    assert entries[PLURAL]["shortNames"] == ["wdg"]
    assert entries[PLURAL]["categories"] == ["kredun-test"]
    assert entries[PLURAL]["namespaced"] is True
    assert f"{PLURAL}/status" in entries

    crd = json.loads(kubectl("get", "crd", f"{PLURAL}.{GROUP}", "-o", "json").stdout)
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established["Established"] == "True"

    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w1", size=3))
    assert kubectl("get", "wdg", "w1", "-o", "jsonpath={.spec.size}").stdout == "3"
    assert "w1" in kubectl("get", "kredun-test").stdout

    kubectl("delete", "crd", f"{PLURAL}.{GROUP}")
    assert http(kube_api, "GET", f"/apis/{GROUP}/{VERSION}")[0] == 404
    assert kube_api.objects(PLURAL, group=GROUP) == []


# ------------------------------------------------------------------------------ CRUD


def test_create_get_list_conflicts_and_generate_name(core: Any) -> None:
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and int(meta.resource_version) > 0

    error = api_error(
        lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    )
    assert error.status == 409
    assert json.loads(error.body)["reason"] == "AlreadyExists"

    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert (
        generated.metadata.name.startswith("gen-")
        and len(generated.metadata.name) == len("gen-") + 5
    )

    listing = core.list_namespaced_config_map("default")
    assert sorted(item.metadata.name for item in listing.items) == sorted(
        ["cm", generated.metadata.name]
    )
    assert int(listing.metadata.resource_version) >= int(generated.metadata.resource_version)
    assert core.read_namespaced_config_map("cm", "default").data == {"a": "1"}

    missing = api_error(lambda: core.read_namespaced_config_map("nope", "default"))
    assert missing.status == 404
    assert json.loads(missing.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "", "kind": "configmaps"},
        "code": 404,
    }
    no_namespace = api_error(
        lambda: core.create_namespaced_config_map("ghost", {"metadata": {"name": "x"}})
    )
    assert no_namespace.status == 404


def test_list_kinds_and_chunking(kube_api: KubeApiServer, core: Any) -> None:
    for index in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{index}"}})
    status, first = http(kube_api, "GET", "/api/v1/namespaces/default/configmaps?limit=2")
    assert status == 200 and first["kind"] == "ConfigMapList" and first["apiVersion"] == "v1"
    assert [item["kind"] for item in first["items"]] == ["ConfigMap", "ConfigMap"]
    names = [item["metadata"]["name"] for item in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        _, page = http(
            kube_api, "GET", f"/api/v1/namespaces/default/configmaps?limit=2&continue={token}"
        )
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"cm-{index}" for index in range(5)]
    _, everywhere = http(kube_api, "GET", "/api/v1/configmaps")
    assert len(everywhere["items"]) == 5


def test_put_with_stale_resource_version_conflicts(core: Any) -> None:
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"v": "1"}}
    )
    body = created.to_dict()
    body["data"] = {"v": "2"}
    updated = core.replace_namespaced_config_map("cm", "default", body)
    assert updated.data == {"v": "2"}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)

    body["data"] = {"v": "3"}  # still carries the first resourceVersion
    error = api_error(lambda: core.replace_namespaced_config_map("cm", "default", body))
    assert error.status == 409
    assert json.loads(error.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", "default").data == {"v": "2"}


def test_merge_strategic_and_json_patches(kube_api: KubeApiServer, core: Any, custom: Any) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("w", labels={"a": "1"})
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w",
        {"metadata": {"labels": {"a": None, "b": "2"}}, "spec": {"color": "red"}},
    )
    assert patched["metadata"]["labels"] == {"b": "2"}
    assert patched["spec"] == {"size": 1, "color": "red"}

    version = patched["metadata"]["resourceVersion"]
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/w"
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        {"op": "replace", "path": "/spec/size", "value": 5},
    ]
    status, body = http(kube_api, "PATCH", path, ops, "application/json-patch+json")
    assert status == 200 and body["metadata"]["finalizers"] == ["x/y"] and body["spec"]["size"] == 5

    status, body = http(kube_api, "PATCH", path, ops, "application/json-patch+json")  # stale test
    assert status == 422
    assert body["kind"] == "Status" and body["reason"] == "Invalid" and body["code"] == 422

    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["true"],
                    "env": [{"name": "A", "value": "1"}],
                }
            ]
        },
    }
    core.create_namespaced_pod("default", pod)
    # The Python client sends dict patches of built-in kinds as strategic merge patches.
    core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "main", "image": "alpine"}]}}
    )
    container = core.read_namespaced_pod("p", "default").spec.containers[0]
    assert (container.image, container.command, container.env[0].value) == ("alpine", ["true"], "1")


def test_status_subresource_is_split_from_the_main_resource(custom: Any) -> None:
    body = widget("w") | {"status": {"phase": "Ignored"}}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "status" not in created and created["metadata"]["generation"] == 1

    main = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w",
        {"status": {"phase": "Nope"}, "metadata": {"labels": {"x": "y"}}},
    )
    assert "status" not in main and main["metadata"]["generation"] == 1

    status = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w",
        {"status": {"phase": "Running"}, "spec": {"size": 99}},
    )
    assert status["status"] == {"phase": "Running"}
    assert status["spec"] == {"size": 1} and status["metadata"]["generation"] == 1

    respec = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 2}}
    )
    assert respec["metadata"]["generation"] == 2 and respec["status"] == {"phase": "Running"}

    unchanged = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"spec": {"size": 2}}
    )
    assert unchanged["metadata"]["resourceVersion"] == respec["metadata"]["resourceVersion"]


def test_finalizers_hold_deletion_with_a_deletion_timestamp(custom: Any) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("w", finalizers=["test/hold"])
    )
    deleting = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    timestamp = deleting["metadata"]["deletionTimestamp"]
    again = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
    assert again["metadata"]["deletionTimestamp"] == timestamp
    error = api_error(
        lambda: custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "w",
            {"metadata": {"finalizers": ["test/hold", "test/more"]}},
        )
    )
    assert error.status == 422

    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w", {"metadata": {"finalizers": None}}
    )
    assert (
        api_error(
            lambda: custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
        ).status
        == 404
    )


def test_owner_references_are_garbage_collected(core: Any, custom: Any) -> None:
    owner = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("owner")
    )
    other = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("other")
    )

    def ref(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
        }

    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "child", "ownerReferences": [ref(owner)]}}
    )
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "child-pod", "ownerReferences": [ref(owner)]},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "shared", "ownerReferences": [ref(owner), ref(other)]}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "owner")

    assert api_error(lambda: core.read_namespaced_config_map("child", "default")).status == 404
    assert api_error(lambda: core.read_namespaced_pod("child-pod", "default")).status == 404
    shared = core.read_namespaced_config_map("shared", "default")
    assert [r.name for r in shared.metadata.owner_references] == ["other"]


def test_namespace_deletion_removes_its_contents(core: Any) -> None:
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "cm"}})
    core.delete_namespace("scratch")
    assert api_error(lambda: core.read_namespace("scratch")).status == 404
    assert core.list_config_map_for_all_namespaces().items == []


# ------------------------------------------------------------------------------ watches


def test_watch_from_resource_version_with_selectors(core: Any) -> None:
    import kubernetes.watch

    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "labels": {"app": "x", "tier": "1"}}}
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "b", "labels": {"app": "y"}}}
    )
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"labels": {"app": "z"}}}
    )  # leaves "app in (x)"
    core.delete_namespaced_config_map("b", "default")

    def events(selectors: dict[str, str]) -> list[tuple[str, str]]:
        stream = kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=start,
            timeout_seconds=1,
            **selectors,
        )
        return [(event["type"], event["object"].metadata.name) for event in stream]

    expected = {
        "": [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("MODIFIED", "a"),
            ("MODIFIED", "a"),
            ("DELETED", "b"),
        ],
        # "a" stops matching when its label changes: a watcher with this selector sees it deleted.
        "label_selector=app in (x)": [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")],
        "label_selector=app,app notin (x,z)": [("ADDED", "b"), ("DELETED", "b")],
        "label_selector=!tier": [("ADDED", "b"), ("DELETED", "b")],
        "label_selector=app!=y,tier==1": [("ADDED", "a"), ("MODIFIED", "a"), ("MODIFIED", "a")],
        "field_selector=metadata.name=b": [("ADDED", "b"), ("DELETED", "b")],
        "field_selector=metadata.name!=b,metadata.namespace=default": [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("MODIFIED", "a"),
        ],
        "field_selector=metadata.namespace=other": [],
    }
    cases = [dict([case.split("=", 1)]) if case else {} for case in expected]
    with ThreadPoolExecutor(len(cases)) as pool:  # each stream lasts its 1 s timeout
        actual = dict(zip(expected, pool.map(events, cases), strict=True))
    assert actual == expected


def test_watch_streams_live_events_and_honours_timeout(kube_api: KubeApiServer, core: Any) -> None:
    import kubernetes.watch

    seen: list[tuple[str, str]] = []

    def consume() -> None:
        stream = kubernetes.watch.Watch().stream(
            core.list_namespaced_pod, "default", timeout_seconds=2
        )
        seen.extend((event["type"], event["object"].metadata.name) for event in stream)

    started = time.monotonic()
    thread = threading.Thread(target=consume)
    thread.start()
    wait_for(lambda: kube_api.watcher_count() == 1)
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    core.delete_namespaced_pod("p", "default")
    thread.join(timeout=10)
    assert 1.5 < time.monotonic() - started < 5
    assert seen == [("ADDED", "p"), ("DELETED", "p")]
    assert kube_api.watcher_count() == 0


def test_watch_from_a_compacted_resource_version_is_gone(tmp_path: Path) -> None:
    import kubernetes.client
    import kubernetes.config
    import kubernetes.watch

    with KubeApiServer(history_limit=3) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))
        core = kubernetes.client.CoreV1Api(client)
        old = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "cm"}}
        ).metadata.resource_version
        for value in range(5):
            core.patch_namespaced_config_map("cm", "default", {"data": {"v": str(value)}})

        with urllib.request.urlopen(
            f"{api.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}",
            timeout=5,
        ) as response:
            assert response.headers["Content-Type"] == "application/json"
            error = json.loads(response.readline())
        assert error["type"] == "ERROR"
        assert error["object"]["code"] == 410 and error["object"]["reason"] == "Gone"

        stream = kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=1
        )
        with pytest.raises(kubernetes.client.ApiException) as gone:
            list(stream)
        assert gone.value.status == 410
        client.close()


def test_watch_cost_does_not_grow_with_requests_served(kube_api: KubeApiServer, core: Any) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    url = f"{kube_api.url}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=0.001"

    def watch_batch() -> float:
        started = time.perf_counter()
        for _ in range(50):
            with urllib.request.urlopen(url, timeout=5) as response:
                assert b'"ADDED"' in response.read()
        return time.perf_counter() - started

    # Best-of batches, so that load from other tests on the machine does not decide the outcome.
    early = min(watch_batch() for _ in range(3))
    for _ in range(10):
        watch_batch()
    late = min(watch_batch() for _ in range(3))
    assert kube_api.watcher_count() == 0
    assert late < early * 3 + 0.1

    round_trips = []
    for _ in range(100):
        started = time.perf_counter()
        core.read_namespaced_config_map("cm", "default")
        round_trips.append(time.perf_counter() - started)
    assert sorted(round_trips)[len(round_trips) // 2] < 0.01


# ------------------------------------------------------------------------------ pod logs


def test_pod_log_endpoint_serves_the_kubelet_log_file(kube_api: KubeApiServer, core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    pending = api_error(lambda: core.read_namespaced_pod_log("p", "default"))
    assert pending.status == 400 and "waiting to start" in json.loads(pending.body)["message"]

    log_file = kube_api.logs_dir / "default" / "p.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text("one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", "default") == "one\ntwo\nthree\n"
    assert (
        core.read_namespaced_pod_log("p", "default", tail_lines=2, container="c") == "two\nthree\n"
    )
    assert (
        api_error(lambda: core.read_namespaced_pod_log("p", "default", container="zz")).status
        == 400
    )

    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Succeeded"}})
    with urllib.request.urlopen(
        f"{kube_api.url}/api/v1/namespaces/default/pods/p/log?follow=true", timeout=5
    ) as response:
        assert response.read() == b"one\ntwo\nthree\n"


# ------------------------------------------------------------------------------ kubectl


def test_kubectl_get_prints_the_crd_printer_columns(kubectl: Kubectl, custom: Any) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w1", size=4))
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "w1", {"status": {"phase": "Running"}}
    )
    lines = kubectl("get", PLURAL).stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "SIZE", "AGE"]
    name, phase, size, age = lines[1].split()
    assert (name, phase, size) == ("w1", "Running", "4") and age.endswith("s")

    as_yaml = yaml.safe_load(kubectl("get", PLURAL, "-o", "yaml").stdout)
    assert as_yaml["items"][0]["status"] == {"phase": "Running"}

    kubectl("run", "p", "--image=busybox", "--restart=Never", "--", "true")
    pods = kubectl("get", "pods").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:3] == ["p", "0/1", "Pending"]


def test_kubectl_apply_creates_then_updates_and_delete_waits(
    kubectl: Kubectl, custom: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "objects.yaml"

    def apply(size: int, value: str) -> str:
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm"},
            "data": {"k": value},
        }
        manifest.write_text(yaml.safe_dump_all([widget("w", size=size), configmap]))
        return kubectl("apply", "--validate=false", "-f", str(manifest)).stdout

    assert "created" in apply(1, "a")
    output = apply(2, "b")
    assert "widget.test.kredun.dev/w configured" in output and "configmap/cm configured" in output
    assert (
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")["spec"]["size"]
        == 2
    )
    assert "unchanged" in apply(2, "b")

    kubectl("delete", "-f", str(manifest))
    assert "No resources found" in kubectl("get", PLURAL).stderr


def test_kubectl_get_watch_streams_changes(kubectl: Kubectl, custom: Any) -> None:
    watcher = kubectl.popen("get", PLURAL, "-w", "--output-watch-events")
    try:
        time.sleep(0.5)
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w"))
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "w", {"status": {"phase": "Done"}}
        )
        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
        lines: list[str] = []
        assert watcher.stdout is not None
        while len(lines) < 4:
            line = watcher.stdout.readline()
            assert line, watcher.stderr.read() if watcher.stderr else "kubectl exited"
            lines.append(line)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    events = [line.split()[:3] for line in lines[1:]]
    assert lines[0].split()[:2] == ["EVENT", "NAME"]
    assert [event[0] for event in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1][2] == "Done"


# ------------------------------------------------------------------------------ test hooks


def test_request_log_records_rbac_verbs(kube_api: KubeApiServer, core: Any, tmp_path: Path) -> None:
    kube_api.request_log.clear()
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    core.read_namespaced_config_map("cm", "default")
    core.list_config_map_for_all_namespaces()
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "b"}})
    core.replace_namespaced_config_map("cm", "default", {"metadata": {"name": "cm"}})
    core.delete_namespaced_config_map("cm", "default")
    core.delete_collection_namespaced_config_map("default")
    watch_url = f"{kube_api.url}/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=0.01"
    urllib.request.urlopen(watch_url, timeout=5).read()

    def cm(verb: str, name: str | None = "cm", namespace: str | None = "default") -> RequestRecord:
        return RequestRecord(verb, "", "v1", "configmaps", None, namespace, name, "emulated")

    assert kube_api.request_log == [
        cm("create", None),
        cm("get"),
        cm("list", None, None),
        cm("patch"),
        cm("update"),
        cm("delete"),
        cm("deletecollection", None),
        RequestRecord("watch", "", "v1", "pods", None, "default", None, None),
    ]
    lines = (tmp_path / "api-requests.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == kube_api.request_log[-1]._asdict()


def test_injected_faults_and_restart_keep_state(kube_api: KubeApiServer, core: Any) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    kube_api.fail_next(2, status=500, verb="get")
    for _ in range(2):
        assert api_error(lambda: core.read_namespaced_config_map("cm", "default")).status == 500
    assert core.read_namespaced_config_map("cm", "default").metadata.name == "cm"

    with kube_api.failing(503, resource="configmaps"):
        assert api_error(lambda: core.list_namespaced_config_map("default")).status == 503
        assert core.list_namespaced_pod("default").items == []
    assert core.list_namespaced_config_map("default").items

    port = kube_api.port
    kube_api.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{kube_api.url}/version", timeout=2)
    kube_api.start()
    assert kube_api.port == port
    assert core.read_namespaced_config_map("cm", "default").metadata.name == "cm"


def test_runs_as_a_standalone_process(tmp_path: Path) -> None:
    kubeconfig_path = tmp_path / "kubeconfig"
    env = subprocess_env(kubeconfig_path)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.kube.apiserver",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        assert "serving on http://127.0.0.1:" in server.stdout.readline()
        kubectl = Kubectl(kubeconfig_path, tmp_path / "cache")
        assert "default" in kubectl("get", "namespaces").stdout
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


# ------------------------------------------------------------------------------ kopf end to end

OPERATOR = """
import kopf
import kubernetes

kubernetes.config.load_kube_config()


@kopf.on.create("test.kredun.dev", "v1", "widgets")
def create_child(body, name, namespace, patch, **_):
    pod = {
        "metadata": {"name": f"{name}-child", "labels": {"widget": name}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "python", "command": ["python", "-c", "print('hi')"]}]},
    }
    kopf.adopt(pod, owner=body)
    kubernetes.client.CoreV1Api().create_namespaced_pod(namespace, pod)
    patch.status["child"] = pod["metadata"]["name"]
    kopf.info(body, reason="ChildCreated", message=f"created pod {pod['metadata']['name']}")


@kopf.on.delete("test.kredun.dev", "v1", "widgets")
def deleted(name, logger, **_):  # a deletion handler makes kopf add its finalizer
    logger.info(f"widget {name} deleted")
"""


def test_real_kopf_operator_runs_end_to_end(
    kube_api: KubeApiServer, kubeconfig: Path, kubelet: Any, custom: Any, core: Any, tmp_path: Path
) -> None:
    operator_file = tmp_path / "operator.py"
    operator_file.write_text(textwrap.dedent(OPERATOR))
    operator_log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kopf",
            "run",
            "--standalone",
            "--all-namespaces",
            "--verbose",
            str(operator_file),
        ],
        stdout=operator_log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(kubeconfig),
    )
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("w"))

        def child_done() -> Any:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
            if obj.get("status", {}).get("child") != "w-child":
                return None
            pod = core.read_namespaced_pod("w-child", "default")
            return pod if pod.status.phase == "Succeeded" else None

        pod = wait_for(child_done, timeout=30, message="the operator's child pod to succeed")
        assert pod.metadata.owner_references[0].name == "w"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 0
        assert core.read_namespaced_pod_log("w-child", "default") == "hi\n"
        widget_obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")
        assert widget_obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]

        def posted_events() -> list[str]:
            events = core.list_namespaced_event("default", field_selector="involvedObject.name=w")
            return [event.reason for event in events.items]

        assert "ChildCreated" in wait_for(posted_events, message="kopf to post its event")

        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w")

        def gone() -> bool:
            return not kube_api.objects(PLURAL, group=GROUP) and not kube_api.objects("pods")

        wait_for(gone, timeout=30, message="the widget and its pod to be deleted")
        assert kubelet.starts["w-child"] == 1
        assert operator.poll() is None, (tmp_path / "operator.log").read_text()
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        operator_log.close()
