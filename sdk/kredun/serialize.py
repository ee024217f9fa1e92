"""Serialization of values for the value store and for process boundaries: dumping only.

Loading is `kredun.deserialize`: the operator pickles (to hash literals) but must never
unpickle, and the import contracts hold it to that by module.
"""

from __future__ import annotations

import contextvars
import functools
import os
import pickle
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
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


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    """Where the standard library and installed distributions live (as given and resolved)."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {os.path.realpath(root) for root in roots}
    return tuple(os.path.join(root, "") for root in roots)


@functools.cache
def _distribution_packages() -> frozenset[str]:
    """Top-level names that installed distributions provide (editable installs included)."""
    import importlib.metadata

    return frozenset(importlib.metadata.packages_distributions())


_local_modules_seen: tuple[int, list[ModuleType]] = (-1, [])


def _local_modules() -> list[ModuleType]:
    """Loaded modules that are neither in the standard library nor in an installed
    distribution (workflow files, a checkout on sys.path): a job image cannot import them.
    Recomputed only when modules were imported since the last call (fan-outs ship often)."""
    global _local_modules_seen
    if _local_modules_seen[0] == len(sys.modules):
        # The same count can hide a module removed (or reloaded) and another imported.
        cached = _local_modules_seen[1]
        if all(sys.modules.get(module.__name__) is module for module in cached):
            return cached
    local_packages: dict[str, bool] = {}  # by top-level name: are its modules local?
    found = []
    for name, module in list(sys.modules.items()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if name == "__main__" or not origin or origin in ("built-in", "frozen"):
            continue  # __main__ is always pickled by value; the others are built in
        top = name.partition(".")[0]
        if top not in local_packages:
            installed = origin.startswith(_installed_roots()) or top in _distribution_packages()
            local_packages[top] = not installed
        if local_packages[top]:
            found.append(module)
    _local_modules_seen = (len(sys.modules), found)
    return found


@contextmanager
def local_code_by_value() -> Iterator[None]:
    """Make cloudpickle ship the code of local modules by value while the block runs: a job
    image cannot import them, but it can run what the plan carries."""
    import cloudpickle

    registered = set(cloudpickle.list_registry_pickle_by_value())
    added = [module for module in _local_modules() if module.__name__ not in registered]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def _restore_code(code_args: tuple, filename: str, lines: list[str] | None) -> Any:
    """Rebuild a shipped code object under its original file name, and make that file's
    source known to `linecache`, so tracebacks in the job read like local ones."""
    import linecache
    import types

    if lines and filename not in linecache.cache:
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return types.CodeType(*code_args)


def _code_reducer() -> Any:
    import cloudpickle.cloudpickle as internals  # type: ignore[import-untyped]

    def reduce_code(code: Any) -> tuple:
        # cloudpickle names shipped code "<dynamic-code>" (3.1.3 on); put the real file name
        # back and carry the source, or a failing task's traceback loses both.
        _, code_args = internals._code_reduce(code)
        code_args = tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in code_args)
        return _restore_code, (code_args, code.co_filename, _source_lines(code.co_filename))

    return reduce_code


def _source_lines(filename: str) -> list[str] | None:
    import linecache

    # The same list object for every code object of a file: the pickle memo ships it once.
    lines = linecache.getlines(filename)
    return lines or None


@functools.cache
def _shipping_pickler() -> type:
    import copyreg
    import types
    from collections import ChainMap

    import cloudpickle

    class ShippingPickler(cloudpickle.Pickler):
        dispatch_table = ChainMap(
            {types.CodeType: _code_reducer()}, cloudpickle.Pickler.dispatch_table,
            copyreg.dispatch_table,
        )  # fmt: skip

    return ShippingPickler


# True while pickling for another process or machine: task calls then carry their code.
_shipping: contextvars.ContextVar[bool] = contextvars.ContextVar("kredun_shipping", default=False)


def is_shipping() -> bool:
    return _shipping.get()


@contextmanager
def shipping() -> Iterator[None]:
    """Pickle for another process or machine while the block runs: a call of a task carries
    the task's code, as the receiving process may not define the task. (Pickled for the cache,
    a call names its task only: it calls the current definition when it is replayed.)"""
    token = _shipping.set(True)
    try:
        yield
    finally:
        _shipping.reset(token)


def ship(obj: Any) -> bytes:
    """Serialize a task or a value for another process or machine: code from local modules
    (workflow files, `__main__`, a checkout) by value with its source, installed packages by
    reference."""
    import io

    with local_code_by_value(), shipping():
        buffer = io.BytesIO()
        _shipping_pickler()(buffer, protocol=PICKLE_PROTOCOL).dump(obj)
        return buffer.getvalue()
