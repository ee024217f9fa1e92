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

from .errors import PlanError, WorkflowLoadError
from .expression import SIMPLE_OPERATIONS, Expression, SimpleExpression
from .plan import TaskRef, _task_ref
from .refs import DeferredRef, Ref, ValueRef, ref_from_json
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


def load_task(ref: TaskRef, fetch: Callable[[str], bytes]) -> Any:
    """The live task a reference names: its shipped code, else imported by module name."""
    from .task import get_task

    if ref.code is not None:
        return loads(ref.code.inline or fetch(ref.code.hash))
    import importlib

    try:
        importlib.import_module(ref.module)
    except ImportError as error:
        raise WorkflowLoadError(f"cannot import module {ref.module!r}: {error}") from None
    found = get_task(ref.fullname)
    if found is None:
        raise WorkflowLoadError(f"module {ref.module!r} defines no task {ref.fullname!r}")
    if found.hash != ref.hash:
        raise WorkflowLoadError(
            f"task {ref.fullname} in this image has hash {found.hash[:8]}, "
            f"but the job was planned for {ref.hash[:8]}: rebuild the image or resubmit"
        )
    return found


def materialize_plan(plan: dict[str, Any], fetch: Callable[[str], bytes]) -> Any:
    """The Python expression a plan describes: values unpickled, tasks loaded. Trusted code
    only (a laptop scheduler reading a remote job's returned expression)."""
    tasks = {key: load_task(_task_ref(key, data), fetch) for key, data in plan["tasks"].items()}
    built: list[Any] = []
    for spec in plan["nodes"]:
        if "value" in spec:
            built.append(resolve(ref_from_json(spec["value"]), fetch))
            continue
        if "call" in spec or "op" in spec:
            args = tuple(built[i] for i in spec.get("args", []))
            kwargs = {name: built[i] for name, i in spec.get("kwargs", {}).items()}
            if "call" in spec:
                task = tasks[spec["call"]]
                options = spec.get("options") or {}
                built.append((task.options(**options) if options else task)(*args, **kwargs))
            else:
                built.append(SimpleExpression(spec["op"], args, kwargs))
            continue
        kind = next(k for k in ("list", "tuple", "set", "dict", "namedtuple") if k in spec)
        items = [built[i] for i in spec[kind]]
        if kind == "dict":
            built.append(dict(zip(items[0::2], items[1::2], strict=True)))
        elif kind == "namedtuple":
            built.append(resolve(ref_from_json(spec["type"]), fetch)(*items))
        else:
            built.append({"list": list, "tuple": tuple, "set": set}[kind](items))
    return built[plan["root"]]
