"""Serialization of values for the value store and for process boundaries."""

from __future__ import annotations

import pickle
from typing import Any

from .errors import SerializationError

PICKLE_PROTOCOL = 4


def dumps(value: Any) -> bytes:
    """Pickle a value; fall back to cloudpickle for lambdas and locally defined functions."""
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except RecursionError as error:
        raise SerializationError(f"value is nested too deeply to serialize: {error}") from None
    except Exception:
        import cloudpickle

        try:
            return cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as error:
            raise SerializationError(
                f"cannot serialize {type(value).__qualname__} value {preview(value)}: {error}"
            ) from None


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def preview(value: Any, limit: int = 200) -> str:
    """A short, never-failing repr for logs, provenance rows and status fields."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def ship_task(task: Any) -> bytes:
    """A task's code for another machine: pickled by value when its module is a workflow
    file or `__main__` (absent from the job's image), by reference when it is installed."""
    import sys

    import cloudpickle

    module = sys.modules.get(getattr(task.func, "__module__", ""))
    if module is not None and not _is_installed(module):
        cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(task, protocol=PICKLE_PROTOCOL)


def _is_installed(module: Any) -> bool:
    """Whether a module comes from an installed distribution (site-packages) or the stdlib."""
    import sysconfig

    path = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or path is None:
        return module.__name__ != "__main__"
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib")}
    return any(path.startswith(root) for root in roots)
