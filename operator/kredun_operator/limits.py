"""Bounds on what an Execution's spec may make the operator do, so that a hostile one fails
only itself.

The API server accepts objects nested up to 10,000 levels deep, and kopf parses and
deep-copies every object it watches before any handler sees it: with Python's default
recursion limit (1,000) a spec nested 500 levels deep raised RecursionError in kopf's watch
and the operator exited, again on every restart. So the operator process raises the
recursion limit far enough for anything an API server can hold, and gives every thread a
stack deep enough for that limit (C code such as the JSON decoder recurses on the thread's
stack: too small a stack would crash the process instead of raising). Once a handler has
the object, the runner checks the spec's depth and size before anything else walks it, and
ends an Execution over the limits `Failed`, naming the limit.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .errors import SpecError

# Enough for kopf to parse and deep-copy an object nested 10,000 levels (two frames per
# level), the most any API server stores.
RECURSION_LIMIT = 25_000
# Per thread: about 2.6 KiB per recursion level, where measured C recursion (JSON, pickle,
# deepcopy, generator expressions) needs under 1.3 KiB. Virtual memory: pages a thread
# never touches are never allocated.
THREAD_STACK_BYTES = 64 * 1024 * 1024

MAX_SPEC_DEPTH = 64  # levels of nesting in spec (args, kwargs, plan, tolerations ...)
MAX_SPEC_ITEMS = 100_000  # values (scalars and containers) in the whole spec


def configure_process() -> None:
    """Raise the recursion limit and thread stack size; before any thread starts."""
    threading.stack_size(THREAD_STACK_BYTES)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))


def check_shape(value: Any, where: str, max_depth: int, max_items: int) -> None:
    """SpecError unless `value` (parsed JSON) is at most `max_depth` containers deep and
    holds at most `max_items` values. Iterative: it is what stands before deep recursion."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    items = 0
    while stack:
        item, path, depth = stack.pop()
        items += 1
        if items > max_items:
            raise SpecError(f"{where} holds more than {max_items} values (the limit)")
        if isinstance(item, dict):
            children = [(child, f"{path}.{str(key)[:40]}") for key, child in item.items()]
        elif isinstance(item, list):
            children = [(child, f"{path}[{index}]") for index, child in enumerate(item)]
        else:
            continue
        if depth >= max_depth and children:
            raise SpecError(f"{path[:120]} is nested more than {max_depth} levels deep (the limit)")
        stack.extend((child, child_path, depth + 1) for child, child_path in children)


def check_spec(spec: Any) -> None:
    """The bounds every Execution's spec must keep, checked before it is parsed."""
    check_shape(spec, "spec", MAX_SPEC_DEPTH, MAX_SPEC_ITEMS)
