"""`Value`: the base of user-defined value types whose identity or validity is their own.

A task's arguments and results are hashed by their content. A class deriving from `Value`
may say more, as redun's `redun.value.Value` subclasses do:

- `get_hash()`: the value's identity, when its pickle is not (a handle on remote state,
  say, identified by a name and a version);
- `is_valid()`: whether a cached result holding this value may still be reused. A value
  that wraps outside state (a table, a model in a registry) returns False once that state
  has changed, and the call that produced it runs again rather than replaying a stale
  result. Only results restored from the cache are asked; a value shared within one run
  is not (redun's rule too).

`__getstate__`/`__setstate__` work as for any pickled object (the default keeps the
instance's `__dict__`).
"""

from __future__ import annotations

from typing import Any

from .hashing import hash_bytes, hash_parts
from .serialize import dumps
from .validity import note_external, note_restored


class Value:
    """Subclass and override `get_hash` and/or `is_valid` (see the module's text)."""

    def get_hash(self, data: bytes | None = None) -> str:
        """The value's identity; by default, of its pickled state (`data` when given)."""
        return hash_parts("Value", [hash_bytes(data if data is not None else dumps(self))])

    def is_valid(self) -> bool:
        """Whether a cached result holding this value may be reused."""
        return True

    def stale_reason(self) -> str | None:
        if self.is_valid():
            return None
        return f"{_class_name(type(self))} value is no longer valid (its is_valid() is False)"

    def __kredun_hash__(self) -> str:
        return self.get_hash()

    def __getstate__(self) -> Any:
        return dict(self.__dict__)

    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state)

    def __reduce__(self) -> tuple[Any, ...]:
        if _checks_validity(type(self)):
            # Whoever replays a result holding this value asks it first (kredun.validity).
            note_external(self)
        return (_restore, (type(self), self.__getstate__()))


def _checks_validity(cls: type[Value]) -> bool:
    return cls.is_valid is not Value.is_valid


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _restore(cls: type[Value], state: Any) -> Value:
    """Unpickle a Value; restored as part of a cached result, an invalid one makes that
    result stale."""
    restored = cls.__new__(cls)
    restored.__setstate__(state)
    if _checks_validity(cls):
        note_restored(restored)
    return restored
