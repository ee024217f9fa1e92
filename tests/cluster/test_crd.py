"""The Execution CustomResourceDefinition (crds/execution.yaml) and the hand-written example.

There is no kube-apiserver here, so the CRD's OpenAPI v3 schema is checked three ways:
``kubernetes-validate --strict`` validates the CRD object itself; a small checker enforces the
apiextensions "structural schema" rules the API server would enforce on create; and the schema,
translated to JSON Schema, validates example and counter-example specs with ``jsonschema``.
The CEL rule (x-kubernetes-validations) cannot run here; its intent is evaluated in Python and
the same constraint is also expressed as ``oneOf``/``required``, which jsonschema does check.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / "execution.yaml"
EXAMPLE_PATH = REPO_ROOT / "examples" / "execution.yaml"
K8S_VERSION = "1.31.0"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def load_crd() -> dict[str, Any]:
    with open(CRD_PATH) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    assert len(docs) == 1, "crds/execution.yaml must hold exactly one document"
    return docs[0]


def crd_version(crd: dict[str, Any], name: str = "v1") -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == name]
    return version


def openapi_schema() -> dict[str, Any]:
    return crd_version(load_crd())["schema"]["openAPIV3Schema"]


def to_json_schema(node: Any, *, strict_fields: bool = True) -> Any:
    """Translate a Kubernetes OpenAPI v3 (structural) schema into a draft-4 JSON Schema.

    * ``x-kubernetes-*`` extensions are dropped (jsonschema would ignore them anyway).
    * ``nullable: true`` becomes an extra ``"null"`` type.
    * Objects with ``properties`` and no ``x-kubernetes-preserve-unknown-fields`` get
      ``additionalProperties: false``: the API server prunes unknown fields, and kubectl's
      default strict field validation rejects them, so a typo in a spec must be an error.
    * OpenAPI v3.0 uses the boolean ``exclusiveMinimum``, which is draft-4 semantics, so the
      result is meant for :class:`jsonschema.Draft4Validator`.
    """
    if isinstance(node, list):
        return [to_json_schema(item, strict_fields=strict_fields) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {
                name: to_json_schema(sub, strict_fields=strict_fields)
                for name, sub in value.items()
            }
        else:
            out[key] = to_json_schema(value, strict_fields=strict_fields)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        strict_fields
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def spec_validator() -> jsonschema.Draft4Validator:
    schema = to_json_schema(openapi_schema()["properties"]["spec"])
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def object_validator() -> jsonschema.Draft4Validator:
    schema = to_json_schema(openapi_schema())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def spec_errors(spec: dict[str, Any]) -> list[str]:
    return [error.message for error in spec_validator().iter_errors(spec)]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Apply OpenAPI ``default``s the way the API server does (for absent object fields)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


_HAS_NE_HAS = re.compile(r"^has\(self\.(\w+)\)\s*!=\s*has\(self\.(\w+)\)$")


def eval_exactly_one_rule(rule: str, obj: dict[str, Any]) -> bool:
    """Evaluate the one CEL shape this CRD uses, ``has(self.a) != has(self.b)``, in Python."""
    match = _HAS_NE_HAS.match(rule.strip())
    assert match, f"unexpected CEL rule {rule!r}: teach eval_exactly_one_rule about it"
    first, second = match.groups()
    return (first in obj) != (second in obj)


# --- structural schema rules (k8s.io/apiextensions-apiserver/pkg/apiserver/schema) -----------

_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Inside allOf/anyOf/oneOf/not only value validations are allowed.
_FORBIDDEN_IN_JUNCTORS = {
    "type",
    "description",
    "title",
    "default",
    "additionalProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}


def structural_errors(node: dict[str, Any], path: str = "") -> list[str]:
    errors: list[str] = []
    has_type = bool(node.get("type"))
    untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") is True or node.get(
        "x-kubernetes-int-or-string"
    )
    if not has_type and not untyped_ok:
        errors.append(f"{path or '<root>'}: type must be set")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if node.get("type") == "array" and not isinstance(node.get("items"), dict):
        errors.append(f"{path}: arrays need a single items schema")
    if "x-kubernetes-list-map-keys" in node:
        items = node.get("items", {})
        for key in node["x-kubernetes-list-map-keys"]:
            if key not in items.get("required", []) and "default" not in items.get(
                "properties", {}
            ).get(key, {}):
                errors.append(f"{path}: list map key {key!r} must be required or defaulted")
    for name, sub in node.get("properties", {}).items():
        errors += structural_errors(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        errors += structural_errors(node["additionalProperties"], f"{path}[*]")
    if isinstance(node.get("items"), dict):
        errors += structural_errors(node["items"], f"{path}[]")
    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for index, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            errors += _junctor_errors(branch, node, f"{path}.{junctor}[{index}]")
    return errors


def _junctor_errors(branch: dict[str, Any], spine: dict[str, Any], path: str) -> list[str]:
    errors = [
        f"{path}: {key!r} is not allowed here" for key in _FORBIDDEN_IN_JUNCTORS & branch.keys()
    ]
    for name, sub in branch.get("properties", {}).items():
        if name not in spine.get("properties", {}):
            errors.append(f"{path}: property {name!r} is not in the structural spine")
        else:
            errors += _junctor_errors(sub, spine["properties"][name], f"{path}.{name}")
    return errors


# --------------------------------------------------------------------------------------------
# the CRD object
# --------------------------------------------------------------------------------------------


def test_crd_identity() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "executions.kredun.dev"
    spec = crd["spec"]
    assert spec["group"] == "kredun.dev"
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == "Execution"
    assert names["plural"] == "executions"
    assert names["singular"] == "execution"
    assert names["shortNames"] == ["kex"]
    assert names["categories"] == ["kredun"]
    assert [v["name"] for v in spec["versions"]] == ["v1"]
    version = crd_version(crd)
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in crd_version(load_crd())["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Progress", "Cached", "Age", "Result"]
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Progress"]["jsonPath"] == ".status.progress"
    assert columns["Progress"]["description"] == "jobs done/total"
    assert columns["Cached"]["jsonPath"] == ".status.jobs.cached"
    assert columns["Cached"]["type"] == "integer"
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    assert columns["Age"]["type"] == "date"
    assert columns["Result"]["jsonPath"] == ".status.result.preview"
    assert columns["Result"].get("priority", 0) == 0
    # Every printer column points at a field the status schema declares.
    status = openapi_schema()["properties"]["status"]
    for column in columns.values():
        parts = column["jsonPath"].lstrip(".").split(".")
        if parts[0] != "status":
            continue
        node = status
        for part in parts[1:]:
            node = node["properties"][part]
        assert node["type"] == column["type"], column


def test_crd_passes_kubernetes_validate_strict() -> None:
    cli = Path(sys.executable).parent / "kubernetes-validate"
    cmd = [str(cli), "--strict", "-k", K8S_VERSION, str(CRD_PATH)]
    if not cli.exists():
        cmd = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSION]
        cmd.append(str(CRD_PATH))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout, result.stdout
    assert "ERROR" not in result.stdout and "WARN" not in result.stdout, result.stdout


def test_schema_is_structural() -> None:
    assert structural_errors(openapi_schema()) == []


def test_structural_checker_catches_violations() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"description": "no type"},
            "b": {"type": "object", "oneOf": [{"type": "object", "required": ["x"]}]},
        },
    }
    errors = structural_errors(bad)
    assert any(".a: type must be set" in e for e in errors)
    assert any("'type' is not allowed" in e for e in errors)


def test_translated_schemas_are_valid_json_schema() -> None:
    spec_validator()
    object_validator()


def test_cel_rule_and_oneof_express_exactly_one_of_task_plan() -> None:
    spec = openapi_schema()["properties"]["spec"]
    rules = spec["x-kubernetes-validations"]
    assert len(rules) == 1
    assert rules[0]["rule"] == "has(self.task) != has(self.plan)"
    assert "exactly one" in rules[0]["message"]
    assert spec["oneOf"] == [{"required": ["task"]}, {"required": ["plan"]}]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"task": "examples.hello.main", "image": "i"}, True),
        ({"plan": {"hash": "0" * 40}, "image": "i"}, True),
        ({"task": "examples.hello.main", "plan": {"hash": "0" * 40}, "image": "i"}, False),
        ({"image": "i"}, False),
    ],
)
def test_exactly_one_rule_in_python_agrees_with_json_schema(
    obj: dict[str, Any], expected: bool
) -> None:
    rule = openapi_schema()["properties"]["spec"]["x-kubernetes-validations"][0]["rule"]
    assert eval_exactly_one_rule(rule, obj) is expected
    assert (spec_errors(obj) == []) is expected


# --------------------------------------------------------------------------------------------
# the example and counter-examples
# --------------------------------------------------------------------------------------------


def test_example_execution_is_valid() -> None:
    with open(EXAMPLE_PATH) as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    assert len(docs) == 1
    example = docs[0]
    assert example["apiVersion"] == "kredun.dev/v1"
    assert example["kind"] == "Execution"
    assert example["metadata"]["name"] == "hello"
    assert example["spec"] == {
        "task": "examples.hello.main",
        "kwargs": {"name": "kubernetes"},
        "image": "kredun:latest",
        "imagePullPolicy": "IfNotPresent",
    }
    assert spec_errors(example["spec"]) == []
    object_validator().validate(example)
    # The API server fills in the defaults.
    defaulted = apply_defaults(openapi_schema(), example)
    assert defaulted["spec"]["executor"] == "k8s"
    assert defaulted["spec"]["cache"] is True


VALID_SPECS: dict[str, dict[str, Any]] = {
    "task-args": {
        "task": "pkg.mod.sub.task_1",
        "args": [1, "two", [3, {"four": 4}], None, True, 2.5],
        "kwargs": {"nested": {"a": [1, 2]}, "flag": False},
        "image": "registry.example.com/team/wf:1.2.3",
    },
    "plan-hash": {"plan": {"hash": "0123456789abcdef0123456789abcdef01234567"}, "image": "x"},
    "plan-inline": {
        "plan": {"hash": "f" * 40, "inline": "eyJub2RlcyI6IFtdfQ=="},
        "image": "x",
    },
    "everything": {
        "task": "examples.hello.main",
        "image": "kredun:0.1.0",
        "executor": "batch",
        "cache": False,
        "serviceAccountName": "kredun-jobs",
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "a", "operator": "Equal", "value": "b", "tolerationSeconds": 30},
        ],
        "resources": {"cpus": 0.5, "memory": "512Mi", "gpus": 1},
        "env": [{"name": "FOO", "value": "bar"}, {"name": "EMPTY"}],
        "imagePullPolicy": "Always",
        "maxParallelJobs": 8,
    },
    "memory-plain-bytes": {"task": "a.b", "image": "x", "resources": {"memory": "1073741824"}},
    "memory-decimal": {"task": "a.b", "image": "x", "resources": {"memory": "1.5Gi"}},
}


@pytest.mark.parametrize("name", sorted(VALID_SPECS))
def test_valid_specs_are_accepted(name: str) -> None:
    assert spec_errors(VALID_SPECS[name]) == []


_OK = {"task": "examples.hello.main", "image": "kredun:latest"}

INVALID_SPECS: dict[str, dict[str, Any]] = {
    "missing-image": {"task": "examples.hello.main"},
    "empty-image": {**_OK, "image": ""},
    "task-without-module": {**_OK, "task": "main"},
    "task-leading-digit": {**_OK, "task": "1examples.hello"},
    "task-double-dot": {**_OK, "task": "examples..main"},
    "task-trailing-dot": {**_OK, "task": "examples.hello."},
    "task-dash": {**_OK, "task": "my-pkg.main"},
    "task-spaces": {**_OK, "task": "examples.hello main"},
    "memory-unit-GB": {**_OK, "resources": {"memory": "4GB"}},
    "memory-words": {**_OK, "resources": {"memory": "lots"}},
    "memory-number": {**_OK, "resources": {"memory": 4}},
    "cpus-zero": {**_OK, "resources": {"cpus": 0}},
    "gpus-negative": {**_OK, "resources": {"gpus": -1}},
    "gpus-fraction": {**_OK, "resources": {"gpus": 0.5}},
    "executor-enum": {**_OK, "executor": "local"},
    "executor-case": {**_OK, "executor": "K8s"},
    "pull-policy-enum": {**_OK, "imagePullPolicy": "Sometimes"},
    "max-parallel-zero": {**_OK, "maxParallelJobs": 0},
    "cache-string": {**_OK, "cache": "yes"},
    "typo-field": {**_OK, "imagePullpolicy": "Always"},
    "task-and-plan": {**_OK, "plan": {"hash": "a" * 40}},
    "neither-task-nor-plan": {"image": "kredun:latest"},
    "plan-hash-short": {"plan": {"hash": "abc"}, "image": "x"},
    "plan-hash-upper": {"plan": {"hash": "A" * 40}, "image": "x"},
    "plan-without-hash": {"plan": {"inline": "e30="}, "image": "x"},
    "plan-inline-not-base64": {"plan": {"hash": "a" * 40, "inline": "{not base64}"}, "image": "x"},
    "plan-inline-too-big": {"plan": {"hash": "a" * 40, "inline": "A" * 262148}, "image": "x"},
    "args-not-list": {**_OK, "args": {"a": 1}},
    "kwargs-not-object": {**_OK, "kwargs": [1]},
    "node-selector-int": {**_OK, "nodeSelector": {"a": 1}},
    "toleration-operator": {**_OK, "tolerations": [{"key": "a", "operator": "In"}]},
    "toleration-effect": {**_OK, "tolerations": [{"key": "a", "effect": "Evict"}]},
    "env-without-name": {**_OK, "env": [{"value": "x"}]},
    "env-value-int": {**_OK, "env": [{"name": "A", "value": 1}]},
}


@pytest.mark.parametrize("name", sorted(INVALID_SPECS))
def test_invalid_specs_are_rejected(name: str) -> None:
    assert spec_errors(INVALID_SPECS[name]) != [], f"{name} was accepted"


def test_execution_without_spec_is_rejected() -> None:
    assert list(object_validator().iter_errors({"apiVersion": "kredun.dev/v1"}))


def test_status_schema_accepts_operator_status() -> None:
    status = {
        "phase": "Succeeded",
        "progress": "7/7",
        "jobs": {"pending": 0, "running": 0, "failed": 0, "cached": 2, "done": 7, "total": 7},
        "startTime": "2025-01-01T00:00:00Z",
        "completionTime": "2025-01-01T00:01:00Z",
        "executionId": "3f9c2a",
        "result": {"preview": "'Hello, kubernetes!'", "hash": "b" * 40},
        "message": "",
        "failure": {"task": "examples.hello.main", "error": "ValueError('x')", "traceback": ""},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": "done",
                "lastTransitionTime": "2025-01-01T00:01:00Z",
            }
        ],
        # kopf keeps its own bookkeeping in status; unknown fields must be preserved.
        "kopf": {"progress": {}},
    }
    obj = {"apiVersion": "kredun.dev/v1", "kind": "Execution", "spec": _OK, "status": status}
    object_validator().validate(obj)
    for bad in ({"phase": "Done"}, {"jobs": {"cached": "2"}}, {"conditions": [{"type": "X"}]}):
        broken = {**obj, "status": {**status, **bad}}
        assert list(object_validator().iter_errors(broken)), bad


def test_the_crd_matches_the_resource_contract_both_sides_use() -> None:
    """kredun.resource is what the SDK client and the operator both read; the CRD must say
    the same."""
    from kredun import resource

    crd = load_crd()
    assert crd["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"
    assert crd["spec"]["group"] == resource.GROUP
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"]) == (resource.KIND, resource.PLURAL)
    assert [version["name"] for version in crd["spec"]["versions"]] == [resource.VERSION]
    status = openapi_schema()["properties"]["status"]["properties"]
    assert tuple(status["phase"]["enum"]) == resource.PHASES
    assert set(resource.PHASES) > resource.TERMINAL_PHASES
