"""Executors run jobs. Each implements `Executor`; the scheduler picks one by name."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Executor, JobOutcome, ReportOutcome

__all__ = ["Executor", "JobOutcome", "ReportOutcome", "create_executor"]


def create_executor(name: str, options: dict[str, Any]) -> Executor:
    kind = options.get("type")
    if kind == "local":
        from .local import LocalExecutor

        return LocalExecutor(name, options)
    if kind == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(name, options)
    raise ConfigError(f"executor {name!r} has unknown type {kind!r} (known: local, process)")
