"""What a job's Pod looks like: its name, labels, resources and manifest. Pure functions.

A Pod's name is derived from its Execution's name and the job's eval hash (plus the attempt
for retries), so an operator that restarts finds the Pods it launched instead of launching
them again.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kredun.errors import ExecutorError
from kredun.hashing import hash_text
from kredun.outcome import OUTCOME_PATH_VARIABLE
from kredun.resource import (
    ANNOTATION_JOB,
    ANNOTATION_TASK,
    API_VERSION,
    JOB_COMPONENT,
    KIND,
    LABEL_COMPONENT,
    LABEL_EVAL_HASH,
    LABEL_EXECUTION,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TASK,
    MANAGED_BY,
    label_value,
)
from kredun.resources import Resources
from kredun.tenancy import scoped_store_uri

from .settings import VALUES_VOLUME, JobDefaults

CONTAINER = "job"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
_NAME_BASE_LIMIT = 40  # + "-" + 12 hash digits + "-r<attempt>" stays within 63


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
    resources: Resources = field(default_factory=Resources)
    env: Sequence[Mapping[str, Any]] = ()
    volumes: Sequence[Mapping[str, Any]] = ()
    volume_mounts: Sequence[Mapping[str, Any]] = ()
    # Pod policy ([jobs] service_account + service_accounts, allowed_images; see settings).
    allowed_service_accounts: frozenset[str] = frozenset()
    allowed_images: Sequence[str] = ()


# Pod Security "restricted": what every job container runs with, whatever the spec says.
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def policy_problem(template: PodTemplate, image: str, service_account: str | None) -> str | None:
    """Why the operator's Pod policy refuses a Pod with this image and ServiceAccount."""
    if service_account and service_account not in template.allowed_service_accounts:
        allowed = ", ".join(sorted(template.allowed_service_accounts)) or "none"
        return (
            f"serviceAccountName {service_account!r} is not allowed for job Pods (allowed: "
            f"{allowed}; the operator's [jobs] service_accounts)"
        )
    if template.allowed_images and not image.startswith(tuple(template.allowed_images)):
        return (
            f"image {image!r} is not allowed: job images must start with one of "
            f"{', '.join(template.allowed_images)} (the operator's [jobs] allowed_images)"
        )
    return None


def pod_template(
    namespace: str,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    defaults: JobDefaults,
    scope: str,
) -> PodTemplate:
    """Merge a (validated) Execution spec over the operator's job defaults. Jobs see the
    value store of the Execution's cache `scope` (kredun.tenancy) and nothing else of it:
    its URI, and for a PVC store only the scope's subdirectory of the claim."""
    resources = Resources.parse(spec.get("resources") or {}, "spec.resources.")
    mounts: list[dict[str, Any]] = []
    if defaults.value_store_mount is not None:
        mounts.append({
            "name": VALUES_VOLUME,
            "mountPath": f"{defaults.value_store_mount.rstrip('/')}/{scope}",
            "subPath": scope,
        })  # fmt: skip
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
        resources=resources.over(defaults.resources),
        env=[
            *defaults.env,
            {
                "name": "KREDUN_VALUE_STORE",
                "value": scoped_store_uri(defaults.value_store_uri, scope),
            },
            {"name": OUTCOME_PATH_VARIABLE, "value": TERMINATION_MESSAGE_PATH},
            *(spec.get("env") or []),
        ],
        volumes=defaults.volumes,
        volume_mounts=mounts,
        allowed_service_accounts=defaults.allowed_service_accounts(),
        allowed_images=defaults.allowed_images,
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


def job_pod(
    template: PodTemplate,
    *,
    name: str,
    task_name: str,
    eval_hash: str,
    job_id: str,
    options: Mapping[str, Any],
    resources: Resources,
    command: list[str],
) -> dict[str, Any]:
    """The Pod manifest of one job attempt: `resources` is what the job asks for, `options`
    its other task options. Raises ExecutorError for unusable task options."""
    image = options.get("image") or template.image
    if not isinstance(image, str) or not image:
        raise ExecutorError(f"task {task_name}: no image (set spec.image or the image option)")
    service_account = options.get("service_account") or template.service_account
    problem = policy_problem(template, image, service_account)
    if problem is not None:
        raise ExecutorError(f"task {task_name}: {problem}")
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": command,
        "env": [dict(variable) for variable in template.env],
        "resources": resources.kubernetes(),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        # The worker writes its outcome (kredun.outcome) here; the operator reads it back
        # from the ended Pod's status. Set explicitly: it is the job's only way back.
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
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
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [container],
    }
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
                LABEL_NAME: MANAGED_BY,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_COMPONENT: JOB_COMPONENT,
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
