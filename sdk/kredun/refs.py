"""References to values: what the operator holds instead of values it may not unpickle.

A `ValueRef` names a serialized value by content hash (with the bytes inline when small).
A `CompositeRef` is a container of references, hashed structurally exactly as `hash_value`
hashes the container it stands for, so the operator and an in-process scheduler compute the
same eval hashes. A `DeferredRef` is a simple operation (item or attribute access,
arithmetic) on references that the operator may not evaluate: the job consuming it, or the
user fetching a result, evaluates it. Only trusted code (SDK, workers) turns references back
into values (`kredun.deserialize.resolve`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import PlanError
from .expression import SIMPLE_OPERATIONS
from .hashing import combine_container_hash, hash_parts

CONTAINER_KINDS = ("list", "tuple", "set", "dict", "namedtuple")
# Value stores build file paths and keys from hashes: only hex may get that far.
_HASH = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class ValueRef:
    hash: str
    inline: bytes | None = None

    def __kredun_hash__(self) -> str:
        return self.hash

    def __repr__(self) -> str:
        return f"<value {self.hash[:8]}>"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hash": self.hash}
        if self.inline is not None:
            data["inline"] = base64.b64encode(self.inline).decode("ascii")
        return data


@dataclass(frozen=True, slots=True)
class CompositeRef:
    kind: str  # one of CONTAINER_KINDS; dict items alternate key, value
    items: tuple[Ref, ...]
    type_ref: ValueRef | None = None  # the namedtuple class, pickled
    type_name: str = ""  # "module.QualName" of the namedtuple class
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        tag = f"namedtuple:{self.type_name}" if self.kind == "namedtuple" else self.kind
        object.__setattr__(
            self, "hash", combine_container_hash(tag, [item.hash for item in self.items])
        )

    def __kredun_hash__(self) -> str:
        return self.hash

    def __repr__(self) -> str:
        return f"<{self.kind} of {len(self.items)} {self.hash[:8]}>"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "composite": self.kind,
            "items": [item.to_json() for item in self.items],
        }
        if self.type_ref is not None:
            data["type"] = self.type_ref.to_json()
            data["type_name"] = self.type_name
        return data


# Operations the operator defers into the consuming job. "call" is not among them: calling a
# task value makes an expression, which only a scheduler can evaluate; nor is "truth": the
# job testing a value reports its truth to the scheduler.
DEFERRED_OPERATIONS = frozenset(SIMPLE_OPERATIONS) - {"call", "truth"}


@dataclass(frozen=True, slots=True)
class DeferredRef:
    """`op` applied to references, evaluated where the values are (a job, the submitter).

    Its hash is structural, over the operation and its arguments' hashes: a name for the
    value, not its content hash. Operations are deterministic, so one hash still denotes one
    value; but a call taking `res["key"]` is cached under a different eval hash on a cluster
    than in-process (where the value is hashed by content), and the two do not share it."""

    op: str
    args: tuple[Ref, ...]
    kwargs: tuple[tuple[str, Ref], ...] = ()
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        parts = [item.hash for item in self.args]
        parts += [f"{name}={item.hash}" for name, item in sorted(self.kwargs)]
        object.__setattr__(self, "hash", hash_parts(f"deferred-op:{self.op}", parts))

    def __kredun_hash__(self) -> str:
        return self.hash

    def __repr__(self) -> str:
        return f"<{self.op} {self.hash[:8]}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "args": [item.to_json() for item in self.args],
            "kwargs": {name: item.to_json() for name, item in self.kwargs},
        }


Ref = ValueRef | CompositeRef | DeferredRef


def ref_from_json(data: Any, where: str = "value") -> Ref:
    """Parse a reference; malformed input raises PlanError naming where it was."""
    if not isinstance(data, dict):
        raise PlanError(f"{where}: expected an object, got {type(data).__name__}")
    if "op" in data:
        return _deferred_from_json(data, where)
    if "composite" in data:
        kind = data["composite"]
        if kind not in CONTAINER_KINDS:
            raise PlanError(f"{where}: unknown container kind {kind!r}")
        items = data.get("items")
        if not isinstance(items, list):
            raise PlanError(f"{where}: 'items' must be a list")
        type_ref = ref_from_json(data["type"], f"{where}.type") if "type" in data else None
        if kind == "namedtuple" and not isinstance(type_ref, ValueRef):
            raise PlanError(f"{where}: a namedtuple needs its 'type'")
        return CompositeRef(
            kind,
            tuple(ref_from_json(item, f"{where}.items[{i}]") for i, item in enumerate(items)),
            type_ref,  # type: ignore[arg-type]
            str(data.get("type_name", "")),
        )
    value_hash = data.get("hash")
    if not isinstance(value_hash, str) or not _HASH.match(value_hash):
        raise PlanError(f"{where}: 'hash' must be 40 hex characters, lowercase")
    inline = data.get("inline")
    try:
        raw = base64.b64decode(inline, validate=True) if inline is not None else None
    except (ValueError, TypeError):
        raise PlanError(f"{where}: 'inline' is not valid base64") from None
    return ValueRef(value_hash, raw)


def _deferred_from_json(data: dict, where: str) -> DeferredRef:
    op, args, kwargs = data["op"], data.get("args", []), data.get("kwargs", {})
    if op not in DEFERRED_OPERATIONS:
        raise PlanError(
            f"{where}: unknown deferred operation {op!r} (one of "
            f"{', '.join(sorted(DEFERRED_OPERATIONS))})"
        )
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PlanError(f"{where}: 'args' must be a list and 'kwargs' an object")
    return DeferredRef(
        op,
        tuple(ref_from_json(item, f"{where}.args[{i}]") for i, item in enumerate(args)),
        tuple((str(k), ref_from_json(v, f"{where}.kwargs[{k}]")) for k, v in kwargs.items()),
    )
