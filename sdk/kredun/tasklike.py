"""What the engine relies on in a task, whichever object stands for it.

A Python run schedules `kredun.task.Task`s; the operator schedules `kredun.plan.TaskRef`s,
which name a task's code without holding it; the scheduler reduces `kredun.control`'s
`SchedulerTask`s itself. The scheduler, the executors and the provenance records are
written against these Protocols, so each kind is used only for what all of them offer
(mypy checks `Task` and `TaskRef` where they reach the engine; tests/engine/test_tasklike.py
checks all three at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .binding import Parameter


@runtime_checkable
class NamedTask(Protocol):
    """A task as provenance records it: every task, scheduler tasks included."""

    @property
    def fullname(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def hash(self) -> str: ...

    @property
    def source(self) -> str:
        """Its source text ("" where the code is not at hand)."""


@runtime_checkable
class TaskLike(NamedTask, Protocol):
    """A task whose calls become jobs: `Task`, or a plan's `TaskRef`."""

    @property
    def parameters(self) -> list[Parameter]:
        """For binding calls and hashing their arguments."""

    @property
    def option_values(self) -> dict[str, Any]:
        """Every option set on the task (executor, resources, cache, ...)."""

    @property
    def default_values(self) -> dict[str, Any]:
        """Default argument values, by parameter name (empty where known only by hash)."""

    def get_option(self, key: str, default: Any = None) -> Any: ...

    def options(self, **options: Any) -> TaskLike:
        """The same task with these options set over its own."""

    def hash_arguments(self, positional: list[str], named: dict[str, str]) -> str:
        """The hash of a call's arguments, given their value hashes."""

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """A call's arguments by parameter name; TypeError if they do not fit."""
