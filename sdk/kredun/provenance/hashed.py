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

from ..hashing import hash_parts, hash_text, hash_value
from ..serialize import preview

PREVIEW_LIMIT = 80


def task_hash_inputs(task: Any) -> dict[str, dict[str, str]]:
    """The `version` and `hash_includes` of a task that has them, each as {preview, hash}."""
    found: dict[str, dict[str, str]] = {}
    if task.version is not None:
        version = str(task.version)
        found["version"] = {"preview": preview(version, PREVIEW_LIMIT), "hash": hash_text(version)}
    includes = task.get_option("hash_includes")
    if includes:
        hashes = sorted(hash_value(value) for value in includes)
        found["hash_includes"] = {
            "preview": preview(list(includes), PREVIEW_LIMIT),
            "hash": hash_parts("includes", hashes),
        }
    return found


def encode(
    options: dict[str, dict[str, str]], context: dict[str, tuple[str, str, Any]]
) -> str | None:
    """The column's text: `context` is context key -> (argument, value hash, value)."""
    if not options and not context:
        return None
    data: dict[str, Any] = {}
    if options:
        data["options"] = options
    if context:
        data["context"] = {
            key: {"argument": name, "preview": preview(value, PREVIEW_LIMIT), "hash": value_hash}
            for key, (name, value_hash, value) in context.items()
        }
    return json.dumps(data, separators=(",", ":"))


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
