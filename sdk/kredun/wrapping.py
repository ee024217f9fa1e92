"""`wraps_task`: decorators that wrap a task in another task, as redun's do.

The wrapped task moves to an inner namespace (`<namespace>.<wrapper name>`), and a new task
takes its name, running what the wrapper returns for it. The inner task's hash is part of
the new task's hash, so editing either re-runs calls of the wrapped task.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .task import Task, _registry, task


def _hide(inner: Task, suffix: str) -> Task:
    """`inner` renamed into the namespace `<its namespace>.<suffix>`, replacing it in the
    registry. A task wrapped before is hidden innermost first, so each layer moves one level
    deeper and none takes another's name."""
    deeper = _WRAPPED.get(inner.fullname)
    if deeper is not None:
        del _WRAPPED[inner.fullname]
        deeper = _hide(deeper, suffix)
    namespace = f"{inner.namespace}.{suffix}" if inner.namespace else suffix
    hidden = Task(inner.func, inner.name, namespace, inner.version, inner.option_values)
    hidden._signature = inner.signature
    if _registry.get(inner.fullname) is inner:
        del _registry[inner.fullname]
    _registry[hidden.fullname] = hidden
    if deeper is not None:
        _WRAPPED[hidden.fullname] = deeper
    return hidden


# The task each wrapping task wraps, by the wrapping task's full name.
_WRAPPED: dict[str, Task] = {}


def wraps_task(
    wrapper_name: str | None = None,
    wrapper_hash_includes: list[Any] | None = None,
    use_wrapper_signature: bool = False,
    **wrapper_options: Any,
) -> Callable[[Callable[[Task], Callable]], Callable[[Callable | Task], Task]]:
    """Make a decorator like `@task` from `wrapper(inner_task) -> function`: the function
    runs in place of the task, with the call's arguments, and may call `inner_task.func`.

    `wrapper_hash_includes` are values the wrapper depends on (its own arguments, say), so
    they take part in the hash; `use_wrapper_signature` gives the task the signature of the
    function the wrapper returns instead of the inner task's; other keyword arguments are
    task options of the new task."""

    def transform(wrapper: Callable[[Task], Callable]) -> Callable[[Callable | Task], Task]:
        def create(inner: Callable | Task) -> Task:
            inner_task = inner if isinstance(inner, Task) else task(inner)
            hidden = _hide(inner_task, wrapper_name or wrapper.__name__)
            includes = [*(wrapper_hash_includes or []), hidden]
            created = task(
                name=inner_task.name,
                namespace=inner_task.namespace,
                hash_includes=includes,
                **wrapper_options,
            )(wrapper(hidden))
            if not use_wrapper_signature:
                created._signature = inspect.signature(hidden.func)
            _WRAPPED[created.fullname] = hidden
            return created

        return create

    return transform
