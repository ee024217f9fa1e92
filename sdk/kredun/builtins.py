"""Tasks that ship with kredun, known to the operator without importing user code."""

from __future__ import annotations

from typing import Any

from .expression import SIMPLE_OPERATIONS
from .task import task


@task(namespace="kredun", name="simple_op", version="1")
def simple_op(op: str, *args: Any, **kwargs: Any) -> Any:
    """A SimpleExpression (item/attribute access, call, operator) evaluated in a job process:
    the operator may not evaluate anything a user supplied."""
    return SIMPLE_OPERATIONS[op](*args, **kwargs)


@task(namespace="kredun", name="call_by_name", version="1", cache=False)
def call_by_name(task_name: str, args: list, kwargs: dict) -> Any:
    """Expand a hand-written Execution (`spec.task` + JSON arguments) into the task's call.

    It runs in the job image, where the task's code lives. Never cached: the image may
    change what `task_name` means between Executions.
    """
    from .workflow import import_task

    return import_task(task_name)(*args, **kwargs)
