"""The operator's trust boundary, enforced: unpickling anything raises.

The operator holds cluster privileges; whoever may create an Execution must not be able to
run code in it. Pickle loading runs code, so the operator disables it for the whole
process at start-up (and tests run the end-to-end suite the same way).

Every pickle loader comes down to one of a few originals: `_pickle`'s `loads`, `load` and
`Unpickler` (which `pickle` re-exports) and `pickle`'s pure-Python `_loads`, `_load` and
`_Unpickler`. Libraries keep their own references to them (`cloudpickle.loads`,
`multiprocessing.reduction.ForkingPickler.loads`, ...), so replacing `pickle.loads` is not
enough: `forbid_unpickling` looks for every reference to an original in every loaded module
and class and replaces it, and disables the unpickler classes themselves and every subclass
of them, so a module imported later finds only refusing loaders. (`copyreg` only registers
how objects reduce and rebuild; it loads nothing without one of these loaders.)
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from .errors import KredunError


class UnpicklingForbiddenError(KredunError):
    """Something tried to unpickle data inside the operator."""


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise UnpicklingForbiddenError("the kredun operator never unpickles user data (trust boundary)")


class _RefusingUnpickler:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        _refuse()

    load = _refuse


def original_loaders() -> dict[int, Any]:
    """The loaders every other one refers to, by id. Empty once they are forbidden."""
    import _pickle

    loaders = (
        _pickle.loads, _pickle.load, _pickle.Unpickler,
        pickle._loads, pickle._load, pickle._Unpickler,  # type: ignore[attr-defined]
    )  # fmt: skip
    refusers = (_refuse, _RefusingUnpickler)
    return {id(loader): loader for loader in loaders if loader not in refusers}


def unpickler_classes() -> list[type]:
    """The original unpickler classes and all their subclasses."""
    import _pickle

    found: list[type] = []
    stack = [_pickle.Unpickler, pickle._Unpickler]
    while stack:
        cls = stack.pop()
        if cls is _RefusingUnpickler or cls in found:
            continue
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def loader_references(originals: dict[int, Any]) -> Iterator[tuple[Any, str, Any]]:
    """(owner, attribute, loader) for every module or class attribute of a loaded module
    that is one of `originals`."""
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if id(value) in originals:
                yield module, name, value
            elif isinstance(value, type):
                for attribute, member in list(vars(value).items()):
                    if isinstance(member, staticmethod | classmethod):
                        member = member.__func__
                    if id(member) in originals:
                        yield value, attribute, member


def forbid_unpickling() -> None:
    """Make every pickle loader in this process raise. There is no way back."""
    originals = original_loaders()
    classes = unpickler_classes()  # before the references to them are replaced
    for owner, name, loader in list(loader_references(originals)):
        # A built-in type's attribute cannot change: the test of this module finds none.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(owner, name, _RefusingUnpickler if isinstance(loader, type) else _refuse)
    for cls in classes:
        try:
            cls.__init__ = _RefusingUnpickler.__init__  # type: ignore[misc]
            cls.load = _refuse  # type: ignore[attr-defined]
        except TypeError:
            # _pickle.Unpickler is a built-in type: immutable, but unreachable once every
            # reference above points elsewhere (and its subclasses are all disabled).
            pass
