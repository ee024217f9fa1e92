"""Loading serialized values: the one place the engine unpickles.

Unpickling runs code, so only trusted processes (the user's own, job Pods, Batch jobs) may
reach this module. The operator must not: an import contract in pyproject.toml forbids it
to import this module, even indirectly, and it disables every pickle loader at start-up
(`kredun.trust`). Dumping lives apart, in `kredun.serialize`, which the operator uses to
hash the literals of hand-written Executions.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from .errors import PlanError
from .expression import SIMPLE_OPERATIONS, Expression
from .refs import DeferredRef, Ref, ValueRef
from .task import install_code_loader


def loads(data: bytes) -> Any:
    return pickle.loads(data)


install_code_loader(loads)  # task values unpickle their code with it (see kredun.task)


def resolve(ref: Ref, fetch: Callable[[str], bytes]) -> Any:
    """The value a reference stands for. Trusted code only: this unpickles, and evaluates
    deferred operations (which come from the user's own plan)."""
    if isinstance(ref, ValueRef):
        return loads(ref.inline if ref.inline is not None else fetch(ref.hash))
    if isinstance(ref, DeferredRef):
        args = [resolve(item, fetch) for item in ref.args]
        kwargs = {name: resolve(item, fetch) for name, item in ref.kwargs}
        value = SIMPLE_OPERATIONS[ref.op](*args, **kwargs)
        if isinstance(value, Expression):
            raise PlanError(
                f"operation {ref.op} made an expression from a task's result; on a cluster "
                "an expression there must come from a task (return it from one)"
            )
        return value
    items = [resolve(item, fetch) for item in ref.items]
    if ref.kind == "list":
        return items
    if ref.kind == "tuple":
        return tuple(items)
    if ref.kind == "set":
        return set(items)
    if ref.kind == "dict":
        return dict(zip(items[0::2], items[1::2], strict=True))
    if ref.type_ref is None:
        raise PlanError(f"a {ref.kind} reference carries no type to rebuild it with")
    return resolve(ref.type_ref, fetch)(*items)  # namedtuple
