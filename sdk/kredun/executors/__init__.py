"""Executors run jobs. Each implements `Executor`; the scheduler picks one by name."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Executor, JobOutcome, ReportOutcome

__all__ = [
    "Executor", "JobOutcome", "ReportOutcome", "create_executor", "register_executor_type"
]  # fmt: skip


# Executor types by name: "module:Class", imported only when a run uses them.
EXECUTOR_TYPES: dict[str, str] = {
    "local": "kredun.executors.local:LocalExecutor",
    "process": "kredun.executors.process:ProcessExecutor",
    "k8s": "kredun_operator.pods:PodExecutor",
    "batch": "kredun.executors.batch:BatchExecutor",
}


def register_executor_type(kind: str, target: str) -> None:
    """Make `type = kind` in an executor's configuration create `target` ("module:Class")."""
    EXECUTOR_TYPES[kind] = target


def create_executor(name: str, options: dict[str, Any]) -> Executor:
    kind = options.get("type")
    target = EXECUTOR_TYPES.get(kind)
    if target is None:
        known = ", ".join(sorted(EXECUTOR_TYPES))
        raise ConfigError(f"executor {name!r} has unknown type {kind!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"executor type {kind!r} is not available: {error}") from None
    return getattr(module, class_name)(name, options)
