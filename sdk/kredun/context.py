"""Context: settings a workflow reads deep in its call tree without passing them down by hand.

An execution starts with a context (the `[context]` config section merged with
`Scheduler.run(..., context=...)` or `kredun run --context key=value`); every job inherits its
parent's, and `task.update_context(...)` changes it for one task's calls and everything they
call. A task reads it through a default argument, `def align(reads, threads=get_context(
"align.threads", 4))`: the default is evaluated with the context of the job about to run,
so the value read becomes an ordinary argument and takes part in the call's eval hash. Calls
under different contexts are never merged into one job, and a final result cached under one
context is not replayed under another (see `Context.hash`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .control import ControlRun, scheduler_task
from .errors import ParameterError
from .expression import SchedulerExpression
from .hashing import hash_value


def merge_dicts(dicts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge nested dicts left to right: a later key wins, and dicts under one key merge."""
    merged: dict[str, Any] = {}
    for update in dicts:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_dicts([merged[key], value])
            else:
                merged[key] = value
    return merged


def get_context_value(context: dict[str, Any], var_path: str, default: Any = None) -> Any:
    """The value at a dotted path (`"align.threads"`) in a context dict, or `default`."""
    value: Any = context
    for part in var_path.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


class Context:
    """A job's context values and their content hash (None when empty), computed once."""

    __slots__ = ("_hash", "values")

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = values or {}
        self._hash: str | None = None

    @property
    def hash(self) -> str | None:
        if self._hash is None and self.values:
            self._hash = hash_value(self.values)
        return self._hash

    def updated(self, override: dict[str, Any] | None) -> Context:
        """This context with a task's `update_context` values merged in."""
        return Context(merge_dicts([self.values, override])) if override else self

    def key(self, eval_hash: str) -> str:
        """What identifies a call under this context: its eval hash, plus the context's hash
        when there is one (calls under different contexts may evaluate differently)."""
        context_hash = self.hash
        return eval_hash if context_hash is None else f"{eval_hash}@{context_hash}"


EMPTY_CONTEXT = Context()


@scheduler_task("get_context")
def _get_context(run: ControlRun, node: Any, var_path: str, default: Any = None) -> None:
    """The value at `var_path` in the context of the job this expression is evaluated for."""
    run.resolve(node, get_context_value(run.context_of(node).values, var_path, default))


def get_context(var_path: str, default: Any = None) -> SchedulerExpression:
    """Lazily read the context at a dotted path, e.g. as a task's default argument:
    `def align(reads, threads=get_context("align.threads", 4))`."""
    if not isinstance(var_path, str) or not var_path:
        raise TypeError(f"get_context() needs a dotted path string, not {var_path!r}")
    return _get_context(var_path, default)


def parse_context_updates(pairs: Iterable[str], origin: str = "--context") -> dict[str, Any]:
    """`["align.threads=8", "name=x"]` as a nested dict; values are JSON, else strings."""
    updates: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParameterError(f"{origin} {pair!r}: expected KEY=VALUE (KEY may be dotted: a.b)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, last = key.split(".")
        table = updates
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ParameterError(f"{origin} {pair!r}: {part!r} is already set to a value")
        table[last] = value
    return updates


def load_context_file(path: str) -> dict[str, Any]:
    """A JSON object from a file, for `kredun run --context-file`."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as error:
        raise ParameterError(f"--context-file {path}: {error.strerror}") from None
    except ValueError as error:
        raise ParameterError(f"--context-file {path}: invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"--context-file {path}: must hold a JSON object")
    return data
