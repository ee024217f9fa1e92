"""Executors run jobs. Each implements `Executor`; the scheduler picks one by name."""

from __future__ import annotations

import importlib
from typing import Any

from .. import executor_types
from ..errors import ConfigError
from ..executor_types import register_executor_type
from .base import Executor, ExecutorHost, Host, JobOutcome, ReportOutcome
from .batch_options import EXECUTOR_KEYS, JOB_KEYS

__all__ = [
    "Executor", "ExecutorHost", "Host", "JobOutcome", "ReportOutcome", "create_executor",
    "register_executor_type",
]  # fmt: skip


# AWS Batch ships with the SDK; its keys and task options live with its option parser.
register_executor_type(
    "batch",
    "kredun.executors.batch:BatchExecutor",
    config_keys=tuple(key for key in (*JOB_KEYS, *EXECUTOR_KEYS) if key != "type"),
    task_options=JOB_KEYS,
)


def create_executor(name: str, options: dict[str, Any]) -> Executor:
    kind = options.get("type")
    target = executor_types.EXECUTOR_TYPES.get(kind) if isinstance(kind, str) else None
    if target is None:
        if kind in executor_types.ELSEWHERE:
            raise ConfigError(f"executor {name!r}: {executor_types.ELSEWHERE[kind]}")
        known = ", ".join(sorted(executor_types.EXECUTOR_TYPES))
        raise ConfigError(f"executor {name!r} has unknown type {kind!r} (known: {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"executor type {kind!r} is not available: {error}") from None
    executor: Executor = getattr(module, class_name)(name, options)
    return executor
