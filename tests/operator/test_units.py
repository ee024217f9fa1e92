"""The operator's parts on their own: Pod naming and manifests, spec checks, result
previews, status coalescing, settings, metrics and the command line."""

from __future__ import annotations

import base64
import json
import pickle
import re
import subprocess
import sys
import tomllib
from collections import namedtuple
from fractions import Fraction
from pathlib import Path

import pytest
from kredun.builtins import call_by_name
from kredun.hashing import encode, hash_bytes, hash_value
from kredun.plan import decode_plan, dumps_plan
from kredun.provenance.records import ValueRecord
from kredun.refs import CompositeRef, DeferredRef, ValueRef
from kredun.resources import GIB, Resources
from kredun_operator.errors import KubeApiError, SettingsError, SpecError
from kredun_operator.main import peering_priority
from kredun_operator.metrics import Metrics
from kredun_operator.podspec import (
    PodTemplate,
    job_pod,
    label_value,
    pod_name,
    pod_template,
)
from kredun_operator.preview import literal_repr, result_preview
from kredun_operator.settings import JobDefaults, settings_from_dict
from kredun_operator.spec import parse_spec, task_call_plan
from kredun_operator.status import StatusWriter, job_counts

from tests.cluster.test_helm_chart import (
    OPERATOR_FLAGS,
    VALUE_SET_FILES,
    VALUE_SET_IDS,
    env_of,
    kredun_toml,
    operator_container,
    render,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EVAL_HASH = "0123456789abcdef" * 2 + "01234567"
STORES = {"database": {"uri": "sqlite:////data/kredun.db"}, "value_store": {"uri": "s3://b/p"}}


@pytest.fixture(autouse=True)
def _no_store_environment(monkeypatch) -> None:
    monkeypatch.delenv("KREDUN_DATABASE_URI", raising=False)
    monkeypatch.delenv("KREDUN_VALUE_STORE", raising=False)


# -- Pods -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "execution",
    ["hello", "a" * 40, "a" * 200, "with.dots.in.it", "UPPER-case", "x", "-weird-", "...."],
)
def test_pod_names_are_dns_labels(execution: str) -> None:
    for attempt in (0, 1, 12):
        name = pod_name(execution, EVAL_HASH, attempt)
        assert len(name) <= 63 and DNS_LABEL.match(name), name
        assert EVAL_HASH[:12] in name
        assert name == pod_name(execution, EVAL_HASH, attempt), "deterministic"
    assert pod_name(execution, EVAL_HASH, 1) == pod_name(execution, EVAL_HASH) + "-r1"


def test_pod_names_keep_executions_apart() -> None:
    assert pod_name("hello", EVAL_HASH) == f"hello-{EVAL_HASH[:12]}"
    # Names that sanitise or truncate alike still differ.
    assert pod_name("a.b", EVAL_HASH) != pod_name("a-b", EVAL_HASH)
    assert pod_name("x" * 50 + "1", EVAL_HASH) != pod_name("x" * 50 + "2", EVAL_HASH)


def test_label_values() -> None:
    assert label_value("examples.hello.main") == "examples.hello.main"
    assert label_value("ns/odd name!") == "ns_odd_name"
    assert len(label_value("t" * 100)) == 63


def _template(**overrides) -> PodTemplate:
    return PodTemplate(namespace="ns", execution="run", execution_uid="uid-1", image="img:1",
                       **overrides)  # fmt: skip


def test_job_pods_request_the_task_resources_over_the_defaults() -> None:
    template = _template(resources=Resources(Fraction(1), GIB))

    def requested(options: dict) -> dict:
        resources = Resources.parse(options).over(template.resources)
        pod = job_pod(template, name="p", task_name="t.f", eval_hash=EVAL_HASH, job_id="j",
                      options=options, resources=resources, command=["true"])  # fmt: skip
        return pod["spec"]["containers"][0]["resources"]

    assert requested({}) == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert requested({"vcpus": 2, "memory": 8, "gpus": 1}) == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    assert requested({"cpus": 0.25, "memory": "1.5Gi"})["requests"] == {
        "cpu": "250m", "memory": "1536Mi"
    }  # fmt: skip


def test_job_pod_manifest() -> None:
    template = _template(
        service_account="jobs",
        allowed_service_accounts=frozenset({"jobs"}),
        node_selector={"pool": "a"},
        tolerations=[{"key": "k", "operator": "Exists"}],
        image_pull_secrets=["regcred"],
        env=[{"name": "KREDUN_VALUE_STORE", "value": "s3://b"}],
        volumes=[{"name": "v", "emptyDir": {}}],
        volume_mounts=[{"name": "v", "mountPath": "/v"}],
        image_pull_policy="IfNotPresent",
    )
    options = {"image": "custom:2", "timeout": 90, "node_selector": {"gpu": "yes"}}
    pod = job_pod(template, name="run-x", task_name="wf.My Task", eval_hash=EVAL_HASH,
                  job_id="j1", options=options, resources=Resources(),
                  command=["kredun", "worker"])  # fmt: skip
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"] == {
        "app.kubernetes.io/name": "kredun",
        "app.kubernetes.io/managed-by": "kredun",
        "app.kubernetes.io/component": "job",
        "kredun.dev/execution": "run",
        "kredun.dev/task": "wf.My_Task",
        "kredun.dev/eval-hash": EVAL_HASH,
    }
    assert meta["annotations"]["kredun.dev/task"] == "wf.My Task"
    assert meta["ownerReferences"] == [{
        "apiVersion": "kredun.dev/v1", "kind": "Execution", "name": "run", "uid": "uid-1",
        "controller": True,
    }]  # fmt: skip
    assert spec["restartPolicy"] == "Never"
    # Pod Security "restricted".
    assert spec["securityContext"] == {
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}
    }  # fmt: skip
    assert spec["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "jobs"
    assert spec["nodeSelector"] == {"pool": "a", "gpu": "yes"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["activeDeadlineSeconds"] == 90
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}}]
    (container,) = spec["containers"]
    assert container["image"] == "custom:2"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["kredun", "worker"]
    assert container["volumeMounts"] == [{"name": "v", "mountPath": "/v"}]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"


def test_pod_template_merges_spec_over_defaults() -> None:
    defaults = JobDefaults(
        image="default:1",
        resources=Resources(Fraction(1), GIB),
        node_selector={"a": "1"},
        env=({"name": "X", "value": "1"},),
        value_store_uri="s3://bucket/values",
    )
    spec = {"image": "mine:2", "resources": {"memory": "2Gi"}, "nodeSelector": {"b": "2"},
            "env": [{"name": "Y", "value": "2"}]}  # fmt: skip
    template = pod_template("ns", "run", "uid", spec, defaults, "ns/ns")
    assert template.image == "mine:2"
    assert template.resources == Resources(Fraction(1), 2 * GIB)
    assert template.node_selector == {"a": "1", "b": "2"}
    # A job sees its scope's part of the value store only, and writes its outcome where the
    # Pod's termination message is read from.
    assert [(v["name"], v["value"]) for v in template.env] == [
        ("X", "1"), ("KREDUN_VALUE_STORE", "s3://bucket/values/ns/ns"),
        ("KREDUN_OUTCOME_PATH", "/dev/termination-log"), ("Y", "2"),
    ]  # fmt: skip
    assert template.volume_mounts == []


# -- specs and plans --------------------------------------------------------------------------


def _plan(data: bytes) -> dict:
    return {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "spec must be an object"),
        ({"image": "i"}, "exactly one of spec.task"),
        ({"task": "a.b"}, "spec.image is missing"),
        ({"task": "main", "image": "i"}, "not a task's full name"),
        ({"task": "a.b", "image": "i", "args": "x"}, "spec.args must be a list"),
        ({"task": "a.b", "image": "i", "kwargs": [1]}, "spec.kwargs must be an object"),
        ({"task": "a.b", "image": "i", "cache": "yes"}, "spec.cache must be true or false"),
        ({"task": "a.b", "image": "i", "executor": "local"}, "spec.executor must be one of"),
        ({"task": "a.b", "image": "i", "maxParallelJobs": 0}, "at least 1"),
        ({"task": "a.b", "image": "i", "maxParallelJobs": True}, "must be int"),
        ({"task": "a.b", "image": "i", "resources": {"memory": "4GB"}}, "spec.resources"),
        ({"task": "a.b", "image": "i", "resources": {"gpus": -1}}, "gpus"),
        ({"task": "a.b", "image": "i", "env": [{"value": "x"}]}, "spec.env"),
        ({"task": "a.b", "image": "i", "imagePullPolicy": "Sometimes"}, "imagePullPolicy"),
        ({"plan": {"hash": "x"}, "image": "i"}, "40 lowercase hex"),
        ({"plan": {"hash": "a" * 40, "inline": "!!"}, "image": "i"}, "not valid base64"),
        ({"plan": {"hash": "a" * 40, "inline": "A" * 262_148}, "image": "i"}, "over the limit"),
        ({"plan": {**_plan(b"{}"), "hash": "b" * 40}, "image": "i"}, "does not match"),
    ],
)
def test_bad_specs_say_what_to_fix(spec, message) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(spec)


def test_spec_defaults() -> None:
    spec = parse_spec({"task": "examples.hello.main"}, default_image="kredun:1")
    assert (spec.image, spec.executor, spec.cache, spec.cancel) == ("kredun:1", "k8s", True, False)
    assert spec.args == [] and spec.kwargs == {}
    inline = parse_spec({"plan": _plan(b'{"version": 1}'), "image": "i"})
    assert inline.plan_inline == b'{"version": 1}'


def test_hand_written_plan_calls_call_by_name_with_json_literals() -> None:
    plan = task_call_plan("examples.hello.main", [1], {"name": "k8s"})
    root, ready = decode_plan(json.loads(dumps_plan(plan)))
    assert root.payload.task.fullname == call_by_name.fullname
    assert root.payload.task.get_option("cache") is False
    values = [child.payload for child in root.children]
    assert [ref.hash for ref in values] == [
        hash_value("examples.hello.main"), hash_value([1]), hash_value({"name": "k8s"})
    ]  # fmt: skip
    assert pickle.loads(values[2].inline) == {"name": "k8s"}
    assert all(node.kind == "value" for node in ready) or ready


# -- previews (never unpickling) --------------------------------------------------------------


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize(
    "value", ["text", "", 7, -(2**70), 2.5, None, True, False, b"raw", "ü" * 300]
)
def test_literal_previews_without_unpickling(value, no_unpickling) -> None:
    assert literal_repr(encode(value)[1]) == repr(value)


@pytest.mark.parametrize("value", [[1], {"a": 1}, (1, 2), _Payload(), {1}, 1 + 2j])
def test_non_literals_have_no_literal_preview(value, no_unpickling) -> None:
    assert literal_repr(encode(value)[1]) is None


def test_garbage_has_no_literal_preview() -> None:
    assert literal_repr(b"\x80\x04garbage") is None
    assert literal_repr(b"") is None


def _ref(value, record: bool = False) -> tuple[ValueRef, dict]:
    value_hash, data = encode(value)
    if record:
        return ValueRef(value_hash), {
            value_hash: ValueRecord(value_hash, "t", repr(value), 1, None)
        }
    return ValueRef(value_hash, data), {}


def test_composite_previews(no_unpickling) -> None:
    key, _ = _ref("greeting")
    value, known = _ref("Hello!", record=True)
    other, _ = _ref(_Payload())
    Point = namedtuple("Point", "x y")
    one, _ = _ref(1)
    dict_ref = CompositeRef("dict", (key, value))
    nested = CompositeRef("list", (dict_ref, CompositeRef("tuple", (one,)), other))
    point = CompositeRef("namedtuple", (one, one), ValueRef("f" * 40), "mod.Point")
    records = lambda hashes: {h: known[h] for h in hashes if h in known}  # noqa: E731
    assert result_preview(dict_ref, records) == "{'greeting': 'Hello!'}"
    assert result_preview(nested, records) == (
        f"[{{'greeting': 'Hello!'}}, (1,), <value {other.hash[:8]}>]"
    )
    assert result_preview(point, records) == repr(Point(1, 1)).replace("x=", "").replace("y=", "")
    assert result_preview(CompositeRef("set", ()), records) == "set()"
    # The operator never evaluates a deferred operation: it shows as one, not as a value.
    deferred = DeferredRef("getitem", (dict_ref, key))
    preview = result_preview(CompositeRef("list", (deferred, one)), records)
    assert preview == f"[<getitem {deferred.hash[:8]}>, 1]"
    assert deferred.hash != DeferredRef("getattr", (dict_ref, key)).hash != value.hash
    long = CompositeRef("list", tuple(_ref(i)[0] for i in range(1000)))
    text = result_preview(long, records, limit=50)
    assert len(text) == 50 and text.endswith("...")


# -- status -----------------------------------------------------------------------------------


class _FakeKube:
    def __init__(self, fail: int | None = None) -> None:
        self.patches: list[dict] = []
        self.fail = fail

    def request(self, method, path, *, body=None, content_type=None, **_):
        assert (method, content_type) == ("PATCH", "application/merge-patch+json")
        assert path.endswith("/executions/run/status")
        if self.fail:
            raise KubeApiError(self.fail, "Err", "no")
        self.patches.append(body["status"])
        return {}


def test_status_patches_are_coalesced_and_minimal() -> None:
    kube = _FakeKube()
    writer = StatusWriter(kube, "ns", "run", {"phase": "Running", "progress": "0/1"}, 60.0)
    writer.update(phase="Running")
    writer.flush(force=True)
    assert kube.patches == [], "nothing changed"
    for done in range(5):
        writer.update(progress=f"{done}/5")
        writer.flush()
    assert kube.patches == [{"progress": "0/5"}], "one patch per interval"
    writer.update(phase="Succeeded")
    writer.flush(force=True)
    assert kube.patches[1] == {"progress": "4/5", "phase": "Succeeded"}


def test_conditions_move_their_transition_time_only_on_change() -> None:
    kube = _FakeKube()
    writer = StatusWriter(kube, "ns", "run", {}, 0.0)
    writer.condition("StoreAvailable", False, "Unreachable", "down")
    writer.flush(force=True)
    (first,) = kube.patches[0]["conditions"]
    writer.condition("StoreAvailable", False, "Unreachable", "still down")
    writer.flush(force=True)
    (second,) = kube.patches[1]["conditions"]
    assert second["lastTransitionTime"] == first["lastTransitionTime"]
    assert second["message"] == "still down"


def test_status_writes_survive_api_errors_and_stop_when_gone() -> None:
    kube = _FakeKube(fail=503)
    writer = StatusWriter(kube, "ns", "run", {}, 0.0)
    writer.update(phase="Running")
    assert writer.flush(force=True) is False
    kube.fail = None
    assert writer.flush(force=True) is True
    assert kube.patches == [{"phase": "Running"}]
    kube.fail = 404
    writer.update(phase="Failed")
    assert writer.flush(force=True) and writer.gone


def test_job_counts() -> None:
    counts = {"a": [0, 2, 0, 1, 3], "b": [0, 0, 1, 0, 4]}
    assert job_counts(counts) == {
        "pending": 0, "running": 2, "failed": 1, "cached": 1, "done": 7, "total": 10
    }  # fmt: skip


# -- settings ---------------------------------------------------------------------------------


def test_settings_from_the_helm_chart_config() -> None:
    data = {
        **STORES,
        "jobs": {
            "image": "kredun:0.1.0", "service_account": "jobs", "image_pull_policy": "Always",
            "image_pull_secrets": ["regcred"], "tolerations": [{"key": "a", "operator": "Exists"}],
            "resources": {"cpus": 1, "memory": "1Gi", "gpus": 0},
            "node_selector": {"pool": "jobs"},
        },
        "value_store": {"uri": "s3://b/p", "s3": {"endpoint": "http://minio", "region": "eu"}},
        "aws": {"credentials_secret": "aws", "access_key_id_key": "id"},
        "operator": {"store_outage_deadline": 90},
    }  # fmt: skip
    settings = settings_from_dict(data)
    jobs = settings.jobs
    assert (jobs.image, jobs.service_account, jobs.resources) == (
        "kredun:0.1.0", "jobs", Resources(Fraction(1), GIB, 0)
    )  # fmt: skip
    env = {variable["name"]: variable for variable in jobs.env}
    # Job Pods hold no database credentials; their value store is added per scope.
    assert not any("DATABASE" in name for name in env)
    assert "KREDUN_VALUE_STORE" not in env and jobs.value_store_uri == "s3://b/p"
    # Job Pods wait out a store outage as long as the operator does.
    assert settings.store_outage_deadline == 90
    assert env["KREDUN_STORE_RETRY_SECONDS"]["value"] == "90"
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio"
    assert env["AWS_REGION"]["value"] == "eu"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "aws", "key": "id"}


@pytest.mark.parametrize(
    ("limits", "message"),
    [("db = 2", None), ("db = -1", "limits.db = -1 must be a whole number"),
     ("db = \"x\"", "limits.db = 'x' must be a whole number")],
)  # fmt: skip
def test_settings_read_named_limits(limits: str, message: str | None) -> None:
    data = tomllib.loads(f"[database]\nuri = 'sqlite:////tmp/k.db'\n"
                         f"[value_store]\nuri = 'file:///tmp/v'\n[limits]\n{limits}\n")  # fmt: skip
    if message is None:
        assert settings_from_dict(data).limits == {"db": 2}
    else:
        with pytest.raises(SettingsError, match=message):
            settings_from_dict(data)


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"operatorr": {}}, r"unknown key\(s\) operatorr in the top level \(known: database, "),
     ({"operator": {"status_intervall": 1}}, r"status_intervall in \[operator\] \(known: st"),
     ({"jobs": {"imagee": "x"}}, r"imagee in \[jobs\] \(known: image, "),
     ({"jobs": {"resources": {"cpuss": 1}}}, r"cpuss in \[jobs.resources\] \(known: cpus, "),
     ({"jobs": {"tolerations": [{"keyy": "a"}]}}, r"tolerations: unknown key\(s\) keyy"),
     ({"value_store": {"uri": "s3://b/p", "s3": {"endpont": "x"}}}, r"endpont in \[value_s"),
     ({"database": {"uri": "postgresql://u:p@db/k", "pool": 3}}, r"pool in \[database\]"),
     ({"aws": {"secret": "x"}}, r"secret in \[aws\] \(known: credentials_secret, ")],
)  # fmt: skip
def test_settings_refuse_unknown_keys_naming_the_known_ones(extra, message) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_dict({**STORES, **extra})


def test_settings_keep_user_named_keys_of_free_tables() -> None:
    data = {**STORES, "jobs": {"env": {"ANY_NAME": "1"}, "node_selector": {"pool": "x"}},
            "limits": {"my_db": 2}}  # fmt: skip
    settings = settings_from_dict(data)
    assert settings.limits == {"my_db": 2} and settings.jobs.node_selector == {"pool": "x"}


def test_settings_mount_a_pvc_value_store(monkeypatch) -> None:
    monkeypatch.setenv("KREDUN_VALUE_STORE", "file:///var/lib/kredun/values")
    data = {
        "database": {"uri": "postgresql://u:p@db/k"},
        "value_store": {"pvc": {"claim_name": "values", "mount_path": "/var/lib/kredun/values"}},
    }
    jobs = settings_from_dict(data).jobs
    assert jobs.volumes == ({"name": "kredun-values",
                             "persistentVolumeClaim": {"claimName": "values"}},)  # fmt: skip
    # Each job mounts only its scope's subdirectory of the claim, where its URI points.
    template = pod_template("team-a", "run", "uid", {}, jobs, "ns/team-a")
    assert template.volume_mounts == [
        {"name": "kredun-values", "subPath": "ns/team-a",
         "mountPath": "/var/lib/kredun/values/ns/team-a"}
    ]  # fmt: skip
    env = {variable["name"]: variable.get("value") for variable in template.env}
    assert env["KREDUN_VALUE_STORE"] == "file:///var/lib/kredun/values/ns/team-a"


def test_job_pods_take_s3_keys_from_their_namespace_secret() -> None:
    data = {**STORES, "jobs": {"value_store_secret": "kredun-values-keys"},
            "aws": {"credentials_secret": "operator-aws"}}  # fmt: skip
    jobs = settings_from_dict(data).jobs
    secrets = {variable["name"]: variable["valueFrom"]["secretKeyRef"]
               for variable in jobs.env if "valueFrom" in variable}  # fmt: skip
    assert secrets == {
        "AWS_ACCESS_KEY_ID": {"name": "kredun-values-keys", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "kredun-values-keys", "key": "AWS_SECRET_ACCESS_KEY"},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "needs a database that outlives it"),
        ({"database": {"uri": "sqlite:////x.db"}}, "needs a value store"),
        ({**STORES, "jobs": {"image": 3}}, "jobs.image must be a string"),
        ({**STORES, "jobs": {"resources": {"gpus": 0.5}}}, r"\[jobs.resources\] gpus must be a"),
        ({**STORES, "jobs": {"resources": {"memory": "4GB"}}}, "memory must be a number of GiB"),
        ({**STORES, "operator": {"status_interval": 0}}, "positive number"),
        ({**STORES, "jobs": {"max_retries": -1}}, "max_retries must be a whole number >= 0"),
        ({**STORES, "jobs": {"max_retries": 2.5}}, "max_retries must be a whole number >= 0"),
        ({**STORES, "jobs": {"unschedulable_after": "1m"}}, "unschedulable_after must be a"),
        ({**STORES, "executors": {"x": {"type": "local"}}}, "inside the operator"),
        ({**STORES, "executors": {"x": {"job_queue": "q"}}}, "needs a 'type'"),
        ({**STORES, "jobs": {"database_secret": "db"}}, "database_secret was removed"),
    ],
)
def test_bad_settings(data, message) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_dict(data)


def test_settings_take_the_stores_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("KREDUN_DATABASE_URI", "sqlite:////env.db")
    monkeypatch.setenv("KREDUN_VALUE_STORE", "file:///env")
    settings = settings_from_dict({})
    assert (settings.database_uri, settings.value_store_uri) == ("sqlite:////env.db", "file:///env")


# -- metrics, peering, command line -----------------------------------------------------------


def test_execution_phase_gauge() -> None:
    metrics = Metrics()

    def gauge(phase: str) -> float:
        return metrics.registry.get_sample_value("kredun_executions", {"phase": phase})

    metrics.execution_phase("a", "Pending")
    metrics.execution_phase("a", "Running")
    metrics.execution_phase("b", "Running")
    assert (gauge("Pending"), gauge("Running")) == (0, 2)
    metrics.execution_phase("a", None)
    assert gauge("Running") == 1


def test_peering_priorities_differ_per_replica(monkeypatch) -> None:
    monkeypatch.setenv("POD_NAME", "kredun-7d9f-abcde")
    first = peering_priority()
    assert first == peering_priority()
    monkeypatch.setenv("POD_NAME", "kredun-7d9f-fghij")
    assert peering_priority() != first


def test_command_line_matches_the_helm_chart() -> None:
    from kredun.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {
        flag
        for action in commands.choices["operator"]._actions
        for flag in action.option_strings
        if flag not in ("-h", "--help")
    }
    assert flags == set(OPERATOR_FLAGS)
    kredun = Path(sys.executable).parent / "kredun"
    shown = subprocess.run([kredun, "operator", "--help"], capture_output=True, text=True).stdout
    assert all(flag in shown for flag in OPERATOR_FLAGS)


def test_the_operator_refuses_to_start_without_shared_stores(tmp_path: Path) -> None:
    kredun = Path(sys.executable).parent / "kredun"
    done = subprocess.run(
        [kredun, "operator", "--standalone", "--namespace", "x"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")},
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs a database that outlives it" in done.stderr


def test_the_operator_needs_kubernetes_credentials(tmp_path: Path) -> None:
    kredun = Path(sys.executable).parent / "kredun"
    done = subprocess.run(
        [kredun, "operator"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no"),
             "KREDUN_DATABASE_URI": f"sqlite:///{tmp_path}/db", "KREDUN_VALUE_STORE": "file:///v"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "kredun: error: no Kubernetes credentials" in done.stderr


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_the_operator_reads_what_the_helm_chart_renders(files, monkeypatch) -> None:
    """Every value set's operator command line parses, and its kredun.toml loads."""
    from kredun.cli import build_parser

    manifests = render(files)
    container = operator_container(manifests)
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    assert args.command == "operator" and args.config == "/etc/kredun/kredun.toml"
    env = env_of(container)
    monkeypatch.setenv("KREDUN_VALUE_STORE", env["KREDUN_VALUE_STORE"]["value"])
    monkeypatch.setenv("KREDUN_DATABASE_URI", "postgresql://kredun@db/kredun")
    config = kredun_toml(manifests)
    settings = settings_from_dict(config)
    assert settings.jobs.image == config["jobs"]["image"]
    assert settings.jobs.service_account == config["jobs"]["service_account"]
    if "pvc" in config["value_store"]:
        assert settings.jobs.value_store_mount == config["value_store"]["pvc"]["mount_path"]
