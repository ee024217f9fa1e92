"""An Execution's spec: checked field by field, and turned into the plan the scheduler reduces.

The API server validates specs against the CRD's schema, but the operator cannot rely on
it (schemas change, API servers differ): every field it uses is checked here again, and a
bad one fails the Execution with a message naming the field and what to put there.

Two kinds of Execution exist:

* `spec.plan` (from `kredun.submit()`): a JSON plan, inline (base64) or in the value store
  by hash. It is only ever parsed as JSON.
* `spec.task` + JSON `args`/`kwargs` (written by hand): a one-call plan of the built-in
  `kredun.call_by_name` task. That call runs in a job Pod, imports the named task from the
  job image and returns its expression as a plan fragment, so the operator never imports it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kredun.errors import ResourceError, ValueNotFoundError
from kredun.hashing import encode, hash_bytes
from kredun.plan import PLAN_VERSION, call_by_name_ref, loads_plan
from kredun.refs import ValueRef
from kredun.resources import Resources

from .errors import SpecError

INLINE_PLAN_LIMIT = 262_144  # characters of base64, as the CRD allows
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
HASH = re.compile(r"^[0-9a-f]{40}$")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
EXECUTORS = ("k8s", "batch")
RESERVED_ENV_PREFIX = "KREDUN_"


@dataclass(frozen=True)
class ExecutionSpec:
    """A checked spec. `fields` keeps the Pod-related fields for the Pod template."""

    image: str
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    plan_hash: str | None = None
    plan_inline: bytes | None = None
    executor: str = "k8s"
    cache: bool = True
    cancel: bool = False
    max_parallel_jobs: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


def parse_spec(spec: Any, default_image: str | None = None) -> ExecutionSpec:
    """Check an Execution's spec. Raises SpecError saying what to fix."""
    if not isinstance(spec, dict):
        raise SpecError("spec must be an object")
    if ("task" in spec) == ("plan" in spec):
        raise SpecError("set exactly one of spec.task (an importable task) or spec.plan")
    image = _optional(spec, "image", str) or default_image
    if not image:
        raise SpecError(
            "spec.image is missing: name the container image that holds the workflow's code "
            "(or set [jobs] image in the operator's configuration)"
        )
    task, plan_hash, inline = None, None, None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if "task" in spec:
        task = _optional(spec, "task", str) or ""
        if not TASK_NAME.match(task):
            raise SpecError(
                f"spec.task {task!r} is not a task's full name: give module path and task "
                "name, e.g. examples.hello.main"
            )
        args = _optional(spec, "args", list) or []
        kwargs = _optional(spec, "kwargs", dict) or {}
    else:
        plan_hash, inline = _plan_reference(spec["plan"])
    executor = _optional(spec, "executor", str) or "k8s"
    if executor not in EXECUTORS:
        raise SpecError(f"spec.executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    max_parallel = _optional(spec, "maxParallelJobs", int)
    if max_parallel is not None and max_parallel < 1:
        raise SpecError("spec.maxParallelJobs must be at least 1")
    _check_pod_fields(spec)
    cache = _optional(spec, "cache", bool)
    return ExecutionSpec(
        image=image,
        task=task,
        args=args,
        kwargs=kwargs,
        plan_hash=plan_hash,
        plan_inline=inline,
        executor=executor,
        cache=True if cache is None else cache,
        cancel=bool(_optional(spec, "cancel", bool)),
        max_parallel_jobs=max_parallel,
        fields={**spec, "image": image},
    )


def _optional(spec: dict[str, Any], key: str, kind: type) -> Any:
    """spec[key] if present (None if absent); SpecError if it has the wrong type."""
    value = spec.get(key)
    if value is None:
        return None
    # bool is an int in Python, but not in JSON.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = {str: "a string", list: "a list", dict: "an object", bool: "true or false"}
        raise SpecError(f"spec.{key} must be {names.get(kind, kind.__name__)}")
    return value


def _plan_reference(plan: Any) -> tuple[str, bytes | None]:
    if not isinstance(plan, dict):
        raise SpecError("spec.plan must be an object with a 'hash'")
    plan_hash = plan.get("hash")
    if not isinstance(plan_hash, str) or not HASH.match(plan_hash):
        raise SpecError("spec.plan.hash must be 40 lowercase hex digits")
    inline = plan.get("inline")
    if inline is None:
        return plan_hash, None
    if not isinstance(inline, str):
        raise SpecError("spec.plan.inline must be a base64 string")
    if len(inline) > INLINE_PLAN_LIMIT:
        raise SpecError(
            f"spec.plan.inline is {len(inline)} characters, over the limit of "
            f"{INLINE_PLAN_LIMIT}: put the plan in the value store and give only its hash "
            "(kredun.submit() does this for large plans)"
        )
    try:
        data = base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError):
        raise SpecError("spec.plan.inline is not valid base64") from None
    if hash_bytes(data) != plan_hash:
        raise SpecError(
            f"spec.plan.hash {plan_hash[:8]} does not match spec.plan.inline (whose hash is "
            f"{hash_bytes(data)[:8]}): resubmit the Execution"
        )
    return plan_hash, data


def _check_pod_fields(spec: dict[str, Any]) -> None:
    """The fields that end up in job Pods."""
    _optional(spec, "serviceAccountName", str)
    policy = _optional(spec, "imagePullPolicy", str)
    if policy is not None and policy not in PULL_POLICIES:
        raise SpecError(f"spec.imagePullPolicy must be one of {', '.join(PULL_POLICIES)}")
    selector = _optional(spec, "nodeSelector", dict) or {}
    if not all(isinstance(value, str) for value in selector.values()):
        raise SpecError("spec.nodeSelector values must be strings")
    tolerations = _optional(spec, "tolerations", list) or []
    if not all(isinstance(toleration, dict) for toleration in tolerations):
        raise SpecError("spec.tolerations must be a list of objects")
    for variable in _optional(spec, "env", list) or []:
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
            raise SpecError("spec.env entries need a 'name' (and a string 'value')")
        if not isinstance(variable.get("value", ""), str):
            raise SpecError(f"spec.env {variable['name']}: 'value' must be a string")
        if variable["name"].startswith(RESERVED_ENV_PREFIX):
            raise SpecError(
                f"spec.env {variable['name']}: variables named {RESERVED_ENV_PREFIX}* are set "
                "by the operator (the stores and cache scope of the namespace)"
            )
    try:
        Resources.parse(_optional(spec, "resources", dict) or {}, "spec.resources.")
    except ResourceError as error:
        raise SpecError(str(error)) from None


def build_plan(spec: ExecutionSpec, fetch_blob: Callable[[str], bytes]) -> dict[str, Any]:
    """The JSON plan to reduce. Raises SpecError or PlanError for bad input; a store that
    cannot be reached raises its own error (the caller waits and retries)."""
    if spec.task is not None:
        return task_call_plan(spec.task, spec.args, spec.kwargs)
    assert spec.plan_hash is not None
    data = spec.plan_inline
    if data is None:
        try:
            data = fetch_blob(spec.plan_hash)
        except ValueNotFoundError:
            raise SpecError(
                f"plan {spec.plan_hash[:8]} is not in the value store: store it there before "
                "creating the Execution (kredun.submit() does), or inline it"
            ) from None
    try:
        return loads_plan(data)
    except RecursionError:
        raise SpecError(f"plan {spec.plan_hash[:8]} is nested too deeply to read") from None


def task_call_plan(task: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The plan of `kredun.call_by_name(task, args, kwargs)`. The arguments are JSON data:
    pickling them here to make value references is safe (loading is what runs code)."""
    call = call_by_name_ref()
    nodes: list[dict[str, Any]] = [{"value": _literal(value)} for value in (task, args, kwargs)]
    nodes.append({"call": call.hash, "args": [0, 1, 2], "kwargs": {}})
    return {
        "version": PLAN_VERSION,
        "tasks": {call.hash: call.to_json()},
        "nodes": nodes,
        "root": len(nodes) - 1,
    }


def _literal(value: Any) -> dict[str, Any]:
    value_hash, data = encode(value)
    return ValueRef(value_hash, data).to_json()
