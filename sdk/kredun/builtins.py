"""Tasks that ship with kredun, known to the operator without importing user code."""

from __future__ import annotations

from typing import Any

from .expression import SIMPLE_OPERATIONS
from .serialize import dumps
from .task import task
from .validity import collecting_external, stale_reasons


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


@task(namespace="kredun", name="map_items", version="1")
def map_items(a_task: Any, values: Any) -> list:
    """`map_(a_task, values)` over a list a task computed, in a plan sent to a cluster: the
    operator cannot look inside the list, so a job makes the calls, which the operator
    then reduces like any expression a task returned."""
    return [a_task(value) for value in values]


@task(namespace="kredun", name="files_valid", version="1", cache=False)
def files_valid(value: Any) -> bool:
    """Whether every File and Dir in a cached value is still what it was when the value was
    made: the operator, which may not unpickle the value, has a job check it. Never cached:
    the answer depends on the files now."""
    # Files note themselves while pickled, with the hash they were stored with.
    with collecting_external() as found:
        dumps(value)
    return not stale_reasons(found)
