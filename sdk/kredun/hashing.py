"""Content hashes: of values, task sources, call arguments and evaluations.

Containers are hashed structurally (from their elements' hashes) rather than by pickling
them whole. That keeps a list built by the scheduler from task results hashing the same as
an equal list written literally, and lets the operator hash a container of value
references it is not allowed to unpickle.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .serialize import dumps


def hash_bytes(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def hash_text(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def hash_parts(tag: str, parts: list[str]) -> str:
    """Hash an ordered list of hashes (or short strings) under a type tag."""
    return hashlib.sha1("\0".join([tag, *parts]).encode("utf-8")).hexdigest()


def is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


# Hashes of small atomic values (ids, counters, flags) recur in almost every call. Not
# floats: 0.0 == -0.0 would share a cache entry but not a pickle.
_ATOMIC_TYPES = (int, str, bytes, bool, type(None))
_atomic_hashes: dict[tuple[type, Any], str] = {}
_ATOMIC_CACHE_LIMIT = 100_000


def _leaf_hash(value: Any) -> str:
    kind = type(value)
    if kind in _ATOMIC_TYPES and (kind not in (str, bytes) or len(value) <= 64):
        key = (kind, value)
        cached = _atomic_hashes.get(key)
        if cached is None:
            if len(_atomic_hashes) >= _ATOMIC_CACHE_LIMIT:
                _atomic_hashes.clear()
            cached = _atomic_hashes[key] = hash_bytes(dumps(value))
        return cached
    custom = getattr(value, "__kredun_hash__", None)
    if custom is not None and not isinstance(value, type):
        return custom()
    return hash_bytes(dumps(value))


def _children(value: Any) -> tuple[str, list[Any]] | None:
    """The tag and element list of a container hashed structurally, or None for a leaf."""
    kind = type(value)
    if kind is list:
        return "list", value
    if kind is tuple:
        return "tuple", value
    if kind is dict:
        return "dict", [pair for item in value.items() for pair in item]
    if kind is set or kind is frozenset:
        return kind.__name__, list(value)
    if is_namedtuple(value):
        return f"namedtuple:{kind.__module__}.{kind.__qualname__}", list(value)
    return None


def is_leaf(value: Any) -> bool:
    """Whether `hash_value` hashes this value's pickle bytes directly."""
    return _children(value) is None and getattr(value, "__kredun_hash__", None) is None


def hash_value(value: Any) -> str:
    """The content hash of a value, iteratively (deep nesting never hits the recursion limit)."""
    if _children(value) is None:
        return _leaf_hash(value)
    # Post-order walk with an explicit stack: (value, child hashes so far or None).
    results: list[str] = []
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, expanded = stack.pop()
        shape = _children(item)
        if shape is None:
            results.append(_leaf_hash(item))
            continue
        tag, elements = shape
        if not expanded:
            stack.append((item, True))
            stack.extend((element, False) for element in reversed(elements))
            continue
        count = len(elements)
        child_hashes = results[len(results) - count :] if count else []
        del results[len(results) - count :]
        results.append(combine_container_hash(tag, child_hashes))
    return results[0]


def combine_container_hash(tag: str, child_hashes: list[str]) -> str:
    """The hash of a container from its elements' hashes (dict: alternating key, value)."""
    if tag == "dict":
        pairs = sorted(zip(child_hashes[0::2], child_hashes[1::2], strict=True))
        child_hashes = [h for pair in pairs for h in pair]
    elif tag in ("set", "frozenset"):
        child_hashes = sorted(child_hashes)
    return hash_parts(tag, child_hashes)


def hash_arguments(positional: list[str], named: dict[str, str]) -> str:
    """Hash a call's bound arguments, given each argument's value hash."""
    parts = [*positional, *(f"{name}={h}" for name, h in sorted(named.items()))]
    return hash_parts("args", parts)


def hash_eval(task_hash: str, args_hash: str) -> str:
    """A job's identity: which task, on which arguments."""
    return hash_parts("eval", [task_hash, args_hash])


def encode(value: Any) -> tuple[str, bytes]:
    """A value's content hash (equal to `hash_value`) and its serialized bytes, pickling once."""
    data = dumps(value)
    if is_leaf(value):
        return hash_bytes(data), data
    return hash_value(value), data
