"""The `Execution` custom resource as a contract: one owner for both of its sides.

The SDK client (`kredun.submit`, `kredun get/logs/cancel`) writes and reads Executions; the
operator (`kredun_operator`) serves them and labels the job Pods it creates. Both take the
resource's identity, its phases and the labels and annotations they exchange from here, so
neither can drift from the other (nor from `crds/execution.yaml`, which a test compares).
"""

from __future__ import annotations

import re

GROUP = "kredun.dev"
VERSION = "v1"
PLURAL = "executions"
KIND = "Execution"
API_VERSION = f"{GROUP}/{VERSION}"

# status.phase: Pending -> Running -> one of the terminal phases.
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "Cancelled"
PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED, CANCELLED})

# Labels: on Executions the SDK creates and on every job Pod the operator creates.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_EXECUTION = "kredun.dev/execution"  # a job Pod's Execution (as a label value)
LABEL_TASK = "kredun.dev/task"  # the task's full name (as a label value)
LABEL_EVAL_HASH = "kredun.dev/eval-hash"  # a job Pod's eval hash
MANAGED_BY = "kredun"
JOB_COMPONENT = "job"
JOB_POD_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={JOB_COMPONENT}"

# Annotations: values that need not fit a label.
ANNOTATION_EXPRESSION = "kredun.dev/expression"  # an Execution's expression, previewed
ANNOTATION_TASK = "kredun.dev/task"  # a job Pod's task, in full
ANNOTATION_JOB = "kredun.dev/job-id"  # a job Pod's job id (provenance)

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# An Execution's tags: each one Kubernetes allows as a label is one, under this prefix; all
# of them, as a JSON object of lists, are in the annotation.
TAG_LABEL_PREFIX = "tags.kredun.dev/"
ANNOTATION_TAGS = "kredun.dev/tags"
# The operator reads the annotation (user input) only within these bounds; submit() refuses
# tags beyond them rather than create an Execution the operator would fail.
MAX_EXECUTION_TAGS = 256
TAGS_ANNOTATION_LIMIT = 64 * 1024  # bytes of JSON
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def tag_labels(tags: list[tuple[str, str]]) -> dict[str, str]:
    """The tags that fit Kubernetes' label rules as they are (name and value: at most 63 of
    [A-Za-z0-9_.-], alphanumeric at both ends; the value may be empty), as labels. A key
    with several values cannot be one label: those stay in the annotation only."""
    counts: dict[str, int] = {}
    for key, _ in tags:
        counts[key] = counts.get(key, 0) + 1
    return {
        TAG_LABEL_PREFIX + key: value
        for key, value in tags
        if counts[key] == 1 and _LABEL_NAME.match(key) and (not value or _LABEL_NAME.match(value))
    }


def label_value(text: str) -> str:
    """`text` as a label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_UNSAFE.sub("_", text)[:63].strip("_.-")


def execution_selector(execution: str) -> str:
    """The label selector of one Execution's job Pods."""
    return f"{JOB_POD_SELECTOR},{LABEL_EXECUTION}={label_value(execution)}"
