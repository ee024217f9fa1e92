"""What a job's Pod looks like: its name, labels, resources and manifest. Pure functions.

A Pod's name is derived from its Execution's name and the job's eval hash (plus the attempt
for retries), so an operator that restarts finds the Pods it launched instead of launching
them again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kredun.errors import ExecutorError
from kredun.hashing import hash_text

from . import API_VERSION, KIND
from .settings import JobDefaults

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_EXECUTION = "kredun.dev/execution"
LABEL_TASK = "kredun.dev/task"
LABEL_EVAL_HASH = "kredun.dev/eval-hash"
ANNOTATION_TASK = "kredun.dev/task"
ANNOTATION_JOB = "kredun.dev/job-id"
CONTAINER = "job"
JOB_POD_SELECTOR = f"{LABEL_MANAGED_BY}=kredun,{LABEL_COMPONENT}=job"

_NAME_BASE_LIMIT = 40  # + "-" + 12 hash digits + "-r<attempt>" stays within 63
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


@dataclass(frozen=True)
class PodTemplate:
    """The Pod settings of one Execution: its spec over the operator's [jobs] defaults.
    Task options override them per job."""

    namespace: str
    execution: str
    execution_uid: str
    image: str
    image_pull_policy: str | None = None
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_secrets: Sequence[str] = ()
    cpus: float | None = None
    memory: str | None = None
    gpus: int = 0
    env: Sequence[Mapping[str, Any]] = ()
    volumes: Sequence[Mapping[str, Any]] = ()
    volume_mounts: Sequence[Mapping[str, Any]] = ()


def pod_template(
    namespace: str,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    defaults: JobDefaults,
    scope: str,
) -> PodTemplate:
    """Merge a (validated) Execution spec over the operator's job defaults. Jobs record
    their results in the Execution's cache `scope` (kredun.tenancy)."""
    resources = spec.get("resources") or {}
    return PodTemplate(
        namespace=namespace,
        execution=name,
        execution_uid=uid,
        image=spec.get("image") or defaults.image or "",
        image_pull_policy=spec.get("imagePullPolicy") or defaults.image_pull_policy,
        service_account=spec.get("serviceAccountName") or defaults.service_account,
        node_selector={**defaults.node_selector, **(spec.get("nodeSelector") or {})},
        tolerations=[*defaults.tolerations, *(spec.get("tolerations") or [])],
        image_pull_secrets=defaults.image_pull_secrets,
        cpus=resources.get("cpus", defaults.cpus),
        memory=resources.get("memory", defaults.memory),
        gpus=resources.get("gpus", defaults.gpus),
        env=[
            *defaults.env,
            {"name": "KREDUN_CACHE_SCOPE", "value": scope},
            *(spec.get("env") or []),
        ],
        volumes=defaults.volumes,
        volume_mounts=defaults.volume_mounts,
    )


def pod_name(execution: str, eval_hash: str, attempt: int = 0) -> str:
    """`<execution>-<eval hash prefix>[-r<attempt>]`: a DNS-1123 label (at most 63).

    An Execution name that had to be shortened or changed gets a hash of the full name, so
    two Executions never share Pod names."""
    base = re.sub(r"[^a-z0-9-]+", "-", execution.lower()).strip("-")
    if base != execution or len(base) > _NAME_BASE_LIMIT:
        short = base[: _NAME_BASE_LIMIT - 7].strip("-")
        base = f"{short}-{hash_text(execution)[:6]}" if short else hash_text(execution)[:6]
    name = f"{base}-{eval_hash[:12]}"
    return name if attempt == 0 else f"{name}-r{attempt}"


def label_value(text: str) -> str:
    """`text` as a label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63].strip("_.-")


def execution_selector(execution: str) -> str:
    """The label selector of one Execution's job Pods."""
    return f"{JOB_POD_SELECTOR},{LABEL_EXECUTION}={label_value(execution)}"


def memory_quantity(value: Any) -> str:
    """A memory option as a Kubernetes quantity: "4Gi" as is, a number as GiB (redun's)."""
    if isinstance(value, bool):
        raise ValueError(f"memory must be a quantity or a number of GiB, not {value!r}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"memory must be positive, not {value!r}")
        mebibytes = round(value * 1024)
        return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"
    if isinstance(value, str) and _QUANTITY.match(value):
        return value
    raise ValueError(f'memory must be a quantity such as "4Gi" or a number of GiB, not {value!r}')


def cpu_quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"cpus must be a positive number, not {value!r}")
    millicores = max(1, round(value * 1000))
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def container_resources(options: Mapping[str, Any], template: PodTemplate) -> dict[str, Any]:
    """Requests and limits from task options (`cpus`/`vcpus`, `memory`, `gpus`), else the
    Execution's defaults. Memory and GPUs are limited; CPU is only requested."""
    cpus = options.get("cpus", options.get("vcpus", template.cpus))
    memory = options.get("memory", template.memory)
    gpus = options.get("gpus", template.gpus) or 0
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpus is not None:
        requests["cpu"] = cpu_quantity(cpus)
    if memory is not None:
        requests["memory"] = limits["memory"] = memory_quantity(memory)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ValueError(f"gpus must be a whole number, not {gpus!r}")
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def job_pod(
    template: PodTemplate,
    *,
    name: str,
    task_name: str,
    eval_hash: str,
    job_id: str,
    options: Mapping[str, Any],
    command: list[str],
) -> dict[str, Any]:
    """The Pod manifest of one job attempt. Raises ExecutorError for unusable task options."""
    try:
        resources = container_resources(options, template)
    except ValueError as error:
        raise ExecutorError(f"task {task_name}: {error}") from None
    image = options.get("image") or template.image
    if not isinstance(image, str) or not image:
        raise ExecutorError(f"task {task_name}: no image (set spec.image or the image option)")
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": command,
        "env": [dict(variable) for variable in template.env],
        "resources": resources,
    }
    pull_policy = options.get("image_pull_policy") or template.image_pull_policy
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    if template.volume_mounts:
        container["volumeMounts"] = [dict(mount) for mount in template.volume_mounts]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Jobs run user code: no API token, no service links into the namespace.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    service_account = options.get("service_account") or template.service_account
    if service_account:
        spec["serviceAccountName"] = service_account
    node_selector = {**template.node_selector, **(options.get("node_selector") or {})}
    if node_selector:
        spec["nodeSelector"] = node_selector
    tolerations = [*template.tolerations, *(options.get("tolerations") or [])]
    if tolerations:
        spec["tolerations"] = [dict(toleration) for toleration in tolerations]
    if template.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in template.image_pull_secrets]
    if template.volumes:
        spec["volumes"] = [dict(volume) for volume in template.volumes]
    timeout = options.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        spec["activeDeadlineSeconds"] = max(1, round(timeout))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": template.namespace,
            "labels": {
                LABEL_NAME: "kredun",
                LABEL_MANAGED_BY: "kredun",
                LABEL_COMPONENT: "job",
                LABEL_EXECUTION: label_value(template.execution),
                LABEL_TASK: label_value(task_name),
                LABEL_EVAL_HASH: eval_hash,
            },
            "annotations": {ANNOTATION_TASK: task_name, ANNOTATION_JOB: job_id},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": template.execution,
                    "uid": template.execution_uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }


_SUFFIXES = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity_value(quantity: str) -> float:
    """A Kubernetes quantity as a number: "500m" -> 0.5, "2Gi" -> 2147483648."""
    if quantity.endswith("m") and quantity[:-1].replace(".", "", 1).isdigit():
        return float(quantity[:-1]) / 1000
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"not a quantity: {quantity!r}")
    return (
        float(quantity[: len(quantity) - len(match.group(2) or "")])
        * _SUFFIXES[match.group(2) or ""]
    )


def requested_resources(resources: Mapping[str, Any]) -> dict[str, float]:
    """What a container's `resources` (as `container_resources` makes them) request:
    `cpus` (cores), `memory` (bytes) and `gpus`, each present only when requested."""
    requests = resources.get("requests") or {}
    keys = {"cpu": "cpus", "memory": "memory", "nvidia.com/gpu": "gpus"}
    return {keys[key]: quantity_value(value) for key, value in requests.items() if key in keys}
