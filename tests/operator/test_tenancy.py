"""A namespace is a tenant: a real `kredun operator` serving two namespaces that share the
database and the value store. What one namespace's Executions record is never served to the
other's, unless the operator's configuration groups them (`[tenancy.shared_cache]`)."""

from __future__ import annotations

import base64
import json
import os
import types
from pathlib import Path

import cloudpickle
import pytest
from kredun.deserialize import resolve
from kredun.hashing import encode, hash_bytes
from kredun.plan import dumps_plan, encode_plan, loads_plan
from kredun.refs import ref_from_json
from kredun.valuestore import open_value_store

from tests.support import workflows as flow
from tests.support.operator import OperatorCluster

ATTACKER, VICTIM = "jobs", "victim"


def _inline(data: bytes) -> dict[str, str]:
    return {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}


def _plan(cluster: OperatorCluster, expr, namespace: str) -> dict:
    store = open_value_store(cluster.value_store, cluster.scope(namespace))
    return loads_plan(dumps_plan(encode_plan(expr, store.put, cloudpickle.dumps)))


def forged_plan(cluster: OperatorCluster, markers: Path) -> dict:
    """`add(inc(41), 1)` whose `inc` entry keeps the honest task's name and hash but ships
    other code: it leaves a marker naming the scope it ran in, and returns 666."""

    def evil(x: int) -> int:
        # The job's value store is its scope's: <root>/<ns|shared>/<name>.
        scope = "_".join(os.environ["KREDUN_VALUE_STORE"].split("/")[-2:])
        (markers / f"evil-{scope}-{os.getpid()}").touch()
        return 666

    plan = _plan(cluster, flow.add(flow.inc(41), 1), ATTACKER)
    entry = plan["tasks"][flow.inc.hash]
    impostor = types.SimpleNamespace(
        func=evil, fullname=flow.inc.fullname, hash=flow.inc.hash, namespace="opflow", source=""
    )
    code = cloudpickle.dumps(impostor)
    open_value_store(cluster.value_store, cluster.scope(ATTACKER)).put(hash_bytes(code), code)
    entry["code"] = {"hash": hash_bytes(code)}
    return plan


def test_a_forged_task_hash_poisons_no_other_namespace(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with OperatorCluster(tmp_path) as cluster:
        cluster.add_namespace(VICTIM)
        cluster.stop_operator()
        cluster.start_operator("--namespace", ATTACKER, "--namespace", VICTIM)

        # The attacker runs first: its forged `inc` is recorded under the honest eval hash.
        forged = dumps_plan(forged_plan(cluster, markers))
        cluster.create("forge", {"plan": _inline(forged), "image": "kredun:test"}, ATTACKER)
        status = cluster.wait_for_phase("forge", namespace=ATTACKER)
        assert status["phase"] == "Succeeded" and status["result"]["preview"] == "667", status

        # The victim's honest run computes the honest result; no attacker code runs for it.
        honest = cluster.plan_spec(flow.add(flow.inc(41), 1), namespace=VICTIM)
        cluster.create("honest", honest, VICTIM)
        status = cluster.wait_for_phase("honest", namespace=VICTIM)
        assert status["phase"] == "Succeeded", status
        assert status["result"]["preview"] == "43"
        assert status["jobs"]["cached"] == 0 and status["jobs"]["done"] == 2
        assert {path.name.split("-")[1] for path in markers.iterdir()} == {"ns_jobs"}

        # A plan naming the victim's result by hash gets neither its value nor its preview.
        secret_hash = status["result"]["hash"]
        assert secret_hash == encode(43)[0]
        peek = json.dumps(
            {"version": 1, "tasks": {}, "nodes": [{"value": {"hash": secret_hash}}], "root": 0}
        ).encode()
        cluster.create("peek", {"plan": _inline(peek), "image": "kredun:test"}, ATTACKER)
        status = cluster.wait_for_phase("peek", namespace=ATTACKER)
        assert status["result"]["preview"] == f"<value {secret_hash[:8]}>", status
        plan = _plan(cluster, flow.inc(0), ATTACKER)
        plan["nodes"][0] = {"value": {"hash": secret_hash}}  # inc(<the victim's 43>)
        cluster.create("steal", {"plan": _inline(dumps_plan(plan)), "image": "kredun:test"})
        status = cluster.wait_for_phase("steal", namespace=ATTACKER)
        assert status["phase"] == "Failed", status
        assert f"value {secret_hash[:8]} is not in" in status["message"]
        assert "/ns/jobs" in status["message"]


def test_namespaces_of_a_shared_group_share_one_cache(tmp_path: Path) -> None:
    config = '[tenancy.shared_cache]\nteam = ["jobs", "victim"]\n'
    with OperatorCluster(tmp_path, operator_config=config) as cluster:
        cluster.add_namespace(VICTIM)
        cluster.stop_operator()
        cluster.start_operator("--namespace", ATTACKER, "--namespace", VICTIM)
        group = "shared/team"
        expr = flow.add(flow.inc(1), 1)
        store = open_value_store(cluster.value_store, group)
        data = dumps_plan(encode_plan(expr, store.put, cloudpickle.dumps))
        spec = {"plan": _inline(data), "image": "kredun:test"}
        cluster.create("first", spec, ATTACKER)
        assert cluster.wait_for_phase("first", namespace=ATTACKER)["result"]["preview"] == "3"
        cluster.create("second", spec, VICTIM)
        status = cluster.wait_for_phase("second", namespace=VICTIM)
        assert status["result"]["preview"] == "3"
        assert status["jobs"]["cached"] == status["jobs"]["total"] == 2
        (pod, _) = cluster.pods("first", namespace=ATTACKER)
        env = {v["name"]: v.get("value") for v in pod["spec"]["containers"][0]["env"]}
        assert env["KREDUN_VALUE_STORE"] == f"{cluster.value_store}/{group}"


def test_a_result_that_is_not_what_its_outcome_says_fails_only_its_job(tmp_path: Path) -> None:
    with OperatorCluster(tmp_path) as cluster:
        cluster.create("forged", cluster.plan_spec(flow.poison_own_result("x")))
        escape = json.dumps({"version": 1, "kind": "value", "hash": "../../../etc/passwd",
                             "size": 1, "type": "int", "preview": "1", "truth": True})  # fmt: skip
        cluster.create("escape", cluster.plan_spec(flow.forge_outcome(escape)))
        cluster.create("fine", cluster.plan_spec(flow.add(flow.inc(1), 1)))
        status = cluster.wait_for_phase("forged")
        assert status["phase"] == "Failed", status
        claimed = hash_bytes(cloudpickle.dumps("honest x", protocol=4))
        assert f"reported result {claimed}" in status["message"], status
        assert "hash mismatch" in status["message"]
        status = cluster.wait_for_phase("escape")
        assert status["phase"] == "Failed", status
        assert "job outcome field 'hash' must be 40 lowercase hex digits" in status["message"]
        assert cluster.wait_for_phase("fine")["result"]["preview"] == "3"


PVC_CONFIG = """
[value_store.pvc]
claim_name = "values"
mount_path = "/var/lib/kredun/values"
"""


def _claim(cluster: OperatorCluster, namespace: str) -> None:
    """A claim `values` in `namespace` bound to a hostPath volume on the operator's store."""
    root = cluster.value_store.removeprefix("file://")
    volume = f"values-{namespace}"
    cluster.api_request("POST", "/api/v1/persistentvolumes", {
        "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "hostPath": {"path": root}},
    })  # fmt: skip
    cluster.api_request("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "metadata": {"name": "values", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "volumeName": volume,
                 "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the local kubelet mounts volumes as root")
def test_a_job_sees_only_its_namespace_part_of_a_claim(tmp_path: Path) -> None:
    with OperatorCluster(tmp_path, operator_config=PVC_CONFIG) as cluster:
        cluster.add_namespace(VICTIM)
        for namespace in (ATTACKER, VICTIM):
            _claim(cluster, namespace)
        cluster.stop_operator()
        cluster.start_operator("--namespace", ATTACKER, "--namespace", VICTIM)
        cluster.create("victim", cluster.plan_spec(flow.inc(1), namespace=VICTIM), VICTIM)
        assert cluster.wait_for_phase("victim", namespace=VICTIM)["phase"] == "Succeeded"
        root = cluster.value_store.removeprefix("file://")
        assert os.path.isdir(f"{root}/ns/{VICTIM}")  # the victim's values are on the claim

        spec = cluster.plan_spec(flow.value_store_view("/var/lib/kredun/values"))
        cluster.create("look", spec)
        status = cluster.wait_for_phase("look")
        assert status["phase"] == "Succeeded", status
        (pod,) = cluster.pods("look")
        (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
        assert mount["subPath"] == f"ns/{ATTACKER}"
        view = resolve(ref_from_json(status["result"]["ref"]),
                       cluster.scheduler().fetch_blob)  # fmt: skip
        assert view == {
            "store": f"file:///var/lib/kredun/values/ns/{ATTACKER}",
            "scopes": {"ns": [ATTACKER]},  # the victim's directory is not there at all
        }
