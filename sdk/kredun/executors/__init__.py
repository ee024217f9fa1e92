"""Executors run jobs. Each implements `Executor`; the scheduler picks one by name."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Executor, JobOutcome, ReportOutcome

__all__ = [
    "Executor", "JobOutcome", "ReportOutcome", "create_executor", "register_executor_type"
]  # fmt: skip


# Executor types by name: "module:Class", imported only when a run uses them. The operator
# adds its own ("k8s") when it is imported: the SDK never names operator code.
EXECUTOR_TYPES: dict[str, str] = {
    "local": "kredun.executors.local:LocalExecutor",
    "process": "kredun.executors.process:ProcessExecutor",
    "batch": "kredun.executors.batch:BatchExecutor",
}
# Types that exist only where something registers them, and what to do instead here.
_ELSEWHERE = {
    "k8s": "the k8s executor runs inside the kredun operator; send workflows to the cluster "
    "with kredun.submit() or an Execution resource",
}


def register_executor_type(kind: str, target: str) -> None:
    """Make `type = kind` in an executor's configuration create `target` ("module:Class")."""
    EXECUTOR_TYPES[kind] = target


def create_executor(name: str, options: dict[str, Any]) -> Executor:
    kind = options.get("type")
    target = EXECUTOR_TYPES.get(kind) if isinstance(kind, str) else None
    if target is None:
        if kind in _ELSEWHERE:
            raise ConfigError(f"executor {name!r}: {_ELSEWHERE[kind]}")
        known = ", ".join(sorted(EXECUTOR_TYPES))
        raise ConfigError(f"executor {name!r} has unknown type {kind!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"executor type {kind!r} is not available: {error}") from None
    executor: Executor = getattr(module, class_name)(name, options)
    return executor
