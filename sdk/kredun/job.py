"""A job: one evaluation of a task on concrete arguments, identified by its eval hash."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .serialize import preview

if TYPE_CHECKING:
    from .provenance.records import JobRecord
    from .tasklike import TaskLike


@dataclass(slots=True, eq=False)
class Job:
    id: str
    task: TaskLike  # a Task in a Python run, a plan's TaskRef in the operator's
    eval_hash: str
    args_hash: str
    args: list[Any]
    kwargs: dict[str, Any]
    parent: Job | None
    executor_name: str
    record: JobRecord
    attempt: int = 0
    # True when arguments and result are value references (the operator's runs).
    references: bool = False
    # Scheduler graph nodes that take this job's result (more than one after CSE).
    nodes: list[Any] = field(default_factory=list)
    # The kredun.context.Context the job runs under; its children inherit it.
    context: Any = None
    # What identifies the job among running ones: eval hash, and context hash if any.
    key: str = ""
    # check_valid="shallow" jobs: the hashes of every task run under them (self included),
    # recorded with their final value; False in subtree_complete when that is not known.
    subtree: set[str] | None = None
    subtree_complete: bool = True
    # The nearest enclosing job (parent, grandparent, ...) that collects a subtree.
    tracker: Job | None = None
    # Options passed down to every job under this one (task.export_options), or None.
    exports: dict[str, Any] | None = None
    # Named resources the job holds while it runs (task option `limits`), or None.
    limits: dict[str, int] | None = None

    def call_text(self, limit: int = 100) -> str:
        """`ns.add(a=1, b=2)`: the call as the status log shows it."""
        try:
            bound = self.task.bind(tuple(self.args), self.kwargs)
            bound |= {k: v for k, v in self.task.default_values.items() if k not in bound}
        except TypeError:
            bound = {str(i): value for i, value in enumerate(self.args)} | self.kwargs
        arguments = ", ".join(f"{name}={preview(value, limit)}" for name, value in bound.items())
        return f"{self.task.fullname}({arguments})"


class JobEnv:
    """Stands in for a job's parent while the job's expression default arguments (e.g.
    `get_context(...)`) are evaluated: jobs they start are the parent's children, but they
    read the context of the job about to run."""

    __slots__ = ("context", "exports", "id", "subtree", "tracker")

    def __init__(self, parent: Job | None, context: Any) -> None:
        self.id = parent.id if parent is not None else None
        self.context = context
        self.exports = parent.exports if parent is not None else None
        self.subtree = None
        self.tracker = (
            parent
            if parent is not None and parent.subtree is not None
            else (parent.tracker if parent is not None else None)
        )
