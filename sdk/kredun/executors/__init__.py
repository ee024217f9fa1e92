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


# The configuration keys of each executor type, besides `type`. Batch's live with its parser.
_CONFIG_KEYS: dict[str, tuple[str, ...] | None] = {
    "local": ("max_workers",),
    "process": ("max_workers", "start_method"),
    "k8s": ("fallback", "fallback_after", "max_cpus", "max_memory", "max_gpus"),
}


def register_executor_type(
    kind: str,
    target: str,
    *,
    config_keys: tuple[str, ...] | None = None,
    task_options: tuple[str, ...] = (),
) -> None:
    """Make `type = kind` in an executor's configuration create `target` ("module:Class").

    `config_keys` lists the keys its configuration may have (None: not checked);
    `task_options` the task options it reads, so `@task(...)` accepts them."""
    from ..options import register_task_options

    EXECUTOR_TYPES[kind] = target
    _CONFIG_KEYS[kind] = config_keys
    register_task_options(kind, task_options)


def executor_config_keys(kind: str) -> tuple[str, ...] | None:
    """The keys an executor type's configuration may have besides `type` (None: any)."""
    if kind == "batch":
        from .batch_options import EXECUTOR_KEYS, JOB_KEYS

        return tuple(key for key in (*JOB_KEYS, *EXECUTOR_KEYS) if key != "type")
    return _CONFIG_KEYS.get(kind)


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
