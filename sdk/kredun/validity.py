"""Whether a cached result is still what the current code and data would compute.

A cached result is unpickled inside `checking_staleness()`. Objects whose validity can
change after they were cached — a task value whose definition was edited, a call of a task
no longer defined, a file changed on disk — report why with `report_stale()` while they are
restored, and the scheduler then treats the result as a cache miss. Outside such a block
(a job receiving its arguments, say) reports are ignored.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_problems: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "kredun_staleness", default=None
)


@contextmanager
def checking_staleness() -> Iterator[list[str]]:
    """Collect, while a cached result is restored, every reason it may not be reused."""
    problems: list[str] = []
    token = _problems.set(problems)
    try:
        yield problems
    finally:
        _problems.reset(token)


def report_stale(reason: str) -> None:
    """Called while an object is restored: the cached result holding it is stale."""
    problems = _problems.get()
    if problems is not None:
        problems.append(reason)


def checking() -> bool:
    """Whether a cached result is being restored for reuse: an object that must look
    outside the pickle to know if it is stale (a file's current hash) does so only then."""
    return _problems.get() is not None


# While a result is pickled or restored: the objects in it whose validity depends on state
# outside kredun (files). A result kept in memory across runs is checked against them again.
_external: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "kredun_external", default=None
)


@contextmanager
def collecting_external() -> Iterator[list[Any]]:
    """Collect the objects pickled or restored in the block that have a `stale_reason()`."""
    found: list[Any] = []
    token = _external.set(found)
    try:
        yield found
    finally:
        _external.reset(token)


def note_external(obj: Any) -> None:
    """Called by an object with a `stale_reason()` method while it is pickled or restored."""
    found = _external.get()
    if found is not None:
        found.append(obj)


def note_restored(obj: Any) -> None:
    """Called by an object with a `stale_reason()` method as it is restored: while a cached
    result is checked, a stale one makes that result stale; it is noted either way."""
    if checking():
        reason = obj.stale_reason()
        if reason is not None:
            report_stale(reason)
    note_external(obj)


def stale_reasons(objects: list[Any]) -> list[str]:
    """Why objects collected with `collecting_external()` no longer match the world."""
    return [reason for obj in objects if (reason := obj.stale_reason()) is not None]
