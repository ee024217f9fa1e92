"""Helpers for tests of how tasks run and replay.

`note`/`calls` count the runs of task bodies through a file, so the count holds across
process workers and nested schedulers. `restored_registry` undoes a test's redefinitions:
calls resolve tasks by name (as in redun), so a task one test redefines would otherwise
change what other tests' calls run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest


def note(log: str, name: str) -> None:
    with open(log, "a") as handle:
        handle.write(name + "\n")


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def restored_registry() -> Iterator[None]:
    registry = importlib.import_module("kredun.task")._registry  # `kredun.task` is the decorator
    saved = dict(registry)
    yield
    registry.clear()
    registry.update(saved)
