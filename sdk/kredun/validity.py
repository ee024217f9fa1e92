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


def checking() -> bool:
    """Whether a cached result is being restored (rather than, say, a job's arguments)."""
    return _problems.get() is not None


def report_stale(reason: str) -> None:
    """Called while an object is restored: the cached result holding it is stale."""
    problems = _problems.get()
    if problems is not None:
        problems.append(reason)
