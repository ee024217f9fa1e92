"""What takes part in a call's eval hash besides its task's source and its argument values,
kept with each job that ran so `kredun log --why` can name it.

A call's eval hash is its task hash and its arguments hash. The task hash covers the task's
name and source, and also its `version` and `hash_includes` (a wrapper's own values among
them): two calls with the same source may differ there. An argument a task leaves to a
`get_context(...)` default takes its value from the job's context, so a changed context key
shows up as a changed argument. Task options such as `memory` or `executor` are not part of
the hash (a changed option replays the cached result), nor is the context itself.

So a job records, as a small JSON object in `kredun_job.hashed` (NULL when there is
nothing to say, which is most jobs): `{"options": {"version" | "hash_includes": {"preview",
"hash"}}, "context": {"db.uri": {"argument", "preview", "hash"}}}`. Previews are short.
"""

from __future__ import annotations

import json
from typing import Any

from ..serialize import preview
from .records import HASHED_LIMIT

PREVIEW_LIMIT = 80


def entry(value: Any, value_hash: str) -> dict[str, str]:
    """How the record shows one value: a short preview, and its hash to compare."""
    return {"preview": preview(value, PREVIEW_LIMIT), "hash": value_hash}


def encode(
    options: dict[str, dict[str, str]], context: dict[str, tuple[str, str, Any]]
) -> str | None:
    """The column's text: `options` is "version" / "hash_includes" -> `entry(...)`, and
    `context` is context key -> (argument, value hash, value)."""
    if not options and not context:
        return None
    data: dict[str, Any] = {}
    if options:
        data["options"] = options
    if context:
        data["context"] = {
            key: {"argument": name, **entry(value, value_hash)}
            for key, (name, value_hash, value) in context.items()
        }
    text = json.dumps(data, separators=(",", ":"))
    # Bounded like every other recorded text (a subrun's fragment refuses more); a call
    # reading that many context keys is explained without them.
    return text if len(text) <= HASHED_LIMIT else None


def decode(text: str | None) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(options, context) from the column's text; both empty for NULL or unreadable text
    (a row is explained with what can be read, never fails the answer)."""
    if not text:
        return {}, {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}, {}
    if not isinstance(data, dict):
        return {}, {}
    options, context = data.get("options"), data.get("context")
    return (
        options if isinstance(options, dict) else {},
        context if isinstance(context, dict) else {},
    )
