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
