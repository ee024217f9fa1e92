"""Short previews of results the operator holds only as references.

A job's result comes with the preview its worker recorded in the provenance store. A
container of results (a `CompositeRef`) is previewed by composing its items' previews. Small
literals inside plans (a dict's keys, say) have no recorded preview; for those the pickle
opcodes of a str, bytes, int, float, bool or None are read with `pickletools`, which parses
and never executes: any opcode that could import, build or call something makes the value
show as `<value abcd1234>` instead. An operation deferred to the job consuming it (a
`DeferredRef`) has no value the operator knows: it shows as `<getitem abcd1234>`. Nothing is
unpickled.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kredun.provenance.records import ValueRecord
from kredun.refs import CompositeRef, DeferredRef, Ref, ValueRef

PREVIEW_LIMIT = 200

_LITERAL_OPS = {
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
}
_ARGUMENT_OPS = {
    "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES",
}  # fmt: skip
_FRAMING_OPS = {"PROTO", "FRAME", "MEMOIZE", "BINPUT", "LONG_BINPUT", "STOP"}
_NOTHING = object()

Records = Callable[[Iterable[str]], Mapping[str, ValueRecord]]


def literal_repr(data: bytes) -> str | None:
    """`repr()` of a pickled scalar, read from its opcodes; None for anything else."""
    value: Any = _NOTHING
    try:
        for opcode, argument, _ in pickletools.genops(data):
            name = opcode.name
            if name in _FRAMING_OPS:
                continue
            if value is not _NOTHING or (name not in _LITERAL_OPS and name not in _ARGUMENT_OPS):
                return None
            value = _LITERAL_OPS.get(name, argument)
    except Exception:  # truncated or malformed data: no preview, never an error
        return None
    return None if value is _NOTHING else repr(value)


def value_hashes(ref: Ref) -> list[str]:
    """The hashes of the value references inside `ref`, which have recorded previews."""
    found, stack = [], [ref]
    while stack:
        item = stack.pop()
        if isinstance(item, ValueRef):
            found.append(item.hash)
        elif isinstance(item, CompositeRef):
            stack.extend(item.items)
    return found


def result_preview(ref: Ref, records: Records, limit: int = PREVIEW_LIMIT) -> str:
    """A preview of `ref`, at most `limit` characters; `records(hashes)` reads value rows."""
    known = records(value_hashes(ref))
    writer = _Writer(known, limit)
    writer.render(ref)
    text = "".join(writer.parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Writer:
    """Renders a reference like `repr()` renders the value, stopping once past the limit
    (which also bounds the recursion depth: every level writes at least a bracket)."""

    def __init__(self, known: Mapping[str, ValueRecord], limit: int) -> None:
        self.known = known
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def render(self, ref: Ref) -> None:
        if self.size > self.limit:
            return
        if isinstance(ref, ValueRef):
            self.write(self._value(ref))
        elif isinstance(ref, DeferredRef):
            self.write(repr(ref))
        else:
            self._composite(ref)

    def _value(self, ref: ValueRef) -> str:
        record = self.known.get(ref.hash)
        if record is not None and record.preview:
            return record.preview
        literal = literal_repr(ref.inline) if ref.inline is not None else None
        return literal if literal is not None else f"<value {ref.hash[:8]}>"

    def _composite(self, ref: CompositeRef) -> None:
        items = ref.items
        if ref.kind == "set" and not items:
            self.write("set()")
            return
        if ref.kind == "dict":
            self.write("{")
            for index in range(0, len(items), 2):
                if self.size > self.limit:
                    break
                if index:
                    self.write(", ")
                self.render(items[index])
                self.write(": ")
                self.render(items[index + 1])
            self.write("}")
            return
        opening, closing = {
            "list": ("[", "]"),
            "tuple": ("(", ",)" if len(items) == 1 else ")"),
            "set": ("{", "}"),
            "namedtuple": (f"{ref.type_name.rpartition('.')[2]}(", ")"),
        }[ref.kind]
        self.write(opening)
        for index, item in enumerate(items):
            if self.size > self.limit:
                break
            if index:
                self.write(", ")
            self.render(item)
        self.write(closing)
