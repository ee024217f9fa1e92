"""Provenance fragments: what a subrun's nested scheduler recorded, carried out of its job.

A subrun job on a Pod or a Batch job runs its nested scheduler on an in-memory provenance
store (jobs hold no database credentials). When the job ends, the worker exports what that
store holds as a fragment — JSON, stored in the job's value store under the sha1 of its
bytes and named by the job's outcome — and the receiver (the operator, or a laptop
scheduler using a remote executor) parses it strictly here and records it under the
subrun job with every id replaced by one of its own.

    {"version": 1, "execution": {...}, "jobs": [...], "arguments": [...], "edges": [...],
     "files": [...], "tags": [...], "tasks": [...], "values": [...]}

Each record is an object holding the fields of its `kredun.provenance.records` class, times
as ISO 8601 with an offset; a value only its hash, type, preview and size. What the receiver
never takes from a fragment, whoever made it: cache entries (calls, final values), a value's
bytes, `bool()` or word on files (its row says "unknown" until a job the receiver checks
records that value: the store fills them in then), tags on values, and ids.

This module imports no deserialiser: the operator imports it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from ..bounds import is_hash, strict_json_object
from ..errors import FragmentError
from .records import (
    CACHE_OFF_REASONS,
    HASHED_LIMIT,
    ArgumentRecord,
    EdgeRecord,
    ExecutionRecord,
    FileRecord,
    JobRecord,
    ProvenanceBatch,
    TagRecord,
    TaskRecord,
    ValueRecord,
)

FRAGMENT_VERSION = 1
# A fragment past either bound is not exported (the outcome says how many jobs it left
# out): it would make the receiver parse and write that much for one job.
MAX_FRAGMENT_BYTES = 16 * 1024 * 1024
MAX_FRAGMENT_JOBS = 100_000

JOB_STATUSES = ("PENDING", "RUNNING", "FAILED", "CACHED", "DONE", "CANCELLED")
EXECUTION_STATUSES = ("RUNNING", "DONE", "FAILED", "CANCELLED")

_ID = re.compile(r"[0-9a-f]{32}")  # a job's or execution's id: a UUID's hex
_NAME_LIMIT = 1000  # task names, executors, argument names, tag keys and values
_PREVIEW_LIMIT = 1000  # argument previews, an execution's args and result preview
_ERROR_LIMIT = 2000  # as the scheduler keeps a job's error
_TRACEBACK_LIMIT = 100_000
_PATH_LIMIT = 4096
_SOURCE_LIMIT = 1024 * 1024
_ATTEMPT_LIMIT = 1_000_000
_SIZE_LIMIT = 2**62  # a value's size in bytes: anything a BIGINT holds


def _text(limit: int) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise FragmentError(f"{where} must be a string of at most {limit} characters")
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if value not in choices:
            raise FragmentError(f"{where} must be one of {', '.join(choices)}")
        return value

    return check


def _id(value: Any, where: str) -> str:
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    raise FragmentError(f"{where} must be 32 lowercase hex digits")


def _hash(value: Any, where: str) -> str:
    if is_hash(value):
        return value
    raise FragmentError(f"{where} must be 40 lowercase hex digits")


def _time(value: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise FragmentError(f"{where} must be an ISO 8601 time with an offset")
    return parsed.astimezone(UTC)


def _whole(limit: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise FragmentError(f"{where} must be a whole number from 0 to {limit}")
        return value

    return check


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def optional(value: Any, where: str) -> Any:
        return None if value is None else check(value, where)

    return optional


# Each record's fields and how each is checked, in the record class's field order.
_FIELDS: dict[type, dict[str, Callable[[Any, str], Any]]] = {
    ExecutionRecord: {
        "id": _id,
        "args": _text(_PREVIEW_LIMIT),
        "status": _choice(EXECUTION_STATUSES),
        "start_time": _time,
        "end_time": _optional(_time),
        "result_hash": _optional(_hash),
        "result_preview": _optional(_text(_PREVIEW_LIMIT)),
        "error": _optional(_text(_ERROR_LIMIT)),
        "parent_job_id": _optional(_id),
    },
    JobRecord: {
        "id": _id,
        "execution_id": _id,
        "parent_id": _optional(_id),
        "task_name": _text(_NAME_LIMIT),
        "task_hash": _hash,
        "eval_hash": _optional(_hash),
        "status": _choice(JOB_STATUSES),
        "executor": _text(_NAME_LIMIT),
        "start_time": _time,
        "end_time": _optional(_time),
        "result_hash": _optional(_hash),
        "error": _optional(_text(_ERROR_LIMIT)),
        "traceback": _optional(_text(_TRACEBACK_LIMIT)),
        "attempt": _whole(_ATTEMPT_LIMIT),
        "cache_off": _optional(_choice(CACHE_OFF_REASONS)),
        "hashed": _optional(_text(HASHED_LIMIT)),
    },
    ArgumentRecord: {
        "job_id": _id,
        "position": _whole(_ATTEMPT_LIMIT),
        "name": _text(_NAME_LIMIT),
        "value_hash": _hash,
        "preview": _text(_PREVIEW_LIMIT),
    },
    EdgeRecord: {"src_job_id": _id, "dst_job_id": _id, "name": _text(_NAME_LIMIT)},
    FileRecord: {
        "job_id": _id,
        "role": _choice(("input", "output", "staged")),
        "path": _text(_PATH_LIMIT),
        "hash": _hash,
        "kind": _choice(("File", "Dir")),
    },
    TagRecord: {
        # An execution's or job's id, or a value's hash (40 digits).
        "entity_id": _text(40),
        "key": _text(_NAME_LIMIT),
        "value": _text(_NAME_LIMIT),
        "entity_kind": _choice(("execution", "job", "value")),
    },
    TaskRecord: {
        "hash": _hash,
        "name": _text(_NAME_LIMIT),
        "namespace": _text(_NAME_LIMIT),
        "source": _text(_SOURCE_LIMIT),
    },
    # The leading fields only: the rest are what the receiver does not take from a job.
    ValueRecord: {
        "hash": _hash,
        "type_name": _text(_NAME_LIMIT),
        "preview": _text(_PREVIEW_LIMIT),
        "size": _whole(_SIZE_LIMIT),
    },
}
assert all(
    list(checks) == [f.name for f in fields(kind)][: len(checks)]
    for kind, checks in _FIELDS.items()
)
# What a decoded record holds in the fields a fragment does not give.
_UNKNOWN: dict[type, dict[str, Any]] = {ValueRecord: {"data": None}}

# Batch attribute -> record class, for the lists a fragment holds.
_LISTS: dict[str, type] = {
    "jobs": JobRecord,
    "arguments": ArgumentRecord,
    "edges": EdgeRecord,
    "files": FileRecord,
    "tags": TagRecord,
    "tasks": TaskRecord,
    "values": ValueRecord,
}
_KEYS = frozenset({"version", "execution", *_LISTS})


def export_fragment(batch: ProvenanceBatch) -> tuple[bytes | None, int]:
    """The fragment of what a nested scheduler recorded (`batch`: its store's records, one
    execution), and how many jobs it holds. None instead of the bytes when it would exceed
    MAX_FRAGMENT_JOBS or MAX_FRAGMENT_BYTES, and (None, 0) when no run was recorded."""
    if len(batch.executions) != 1:
        return None, 0
    if len(batch.jobs) > MAX_FRAGMENT_JOBS:
        return None, len(batch.jobs)
    document: dict[str, Any] = {
        "version": FRAGMENT_VERSION,
        "execution": _encode(batch.executions[0]),
    }
    for attribute in _LISTS:
        document[attribute] = [_encode(record) for record in getattr(batch, attribute)]
    data = json.dumps(document, separators=(",", ":")).encode()
    return (data if len(data) <= MAX_FRAGMENT_BYTES else None), len(batch.jobs)


def _encode(record: Any) -> dict[str, Any]:
    encoded = {}
    for name in _FIELDS[type(record)]:
        value = getattr(record, name)
        encoded[name] = value.isoformat() if isinstance(value, datetime) else value
    return encoded


def parse_fragment(data: bytes) -> ProvenanceBatch:
    """The records a fragment holds, with the ids it gave them (see `rebase`), its single
    execution in `executions`. FragmentError naming the field at fault otherwise."""
    if len(data) > MAX_FRAGMENT_BYTES:
        raise FragmentError(
            f"fragment is {len(data)} bytes, over the limit of {MAX_FRAGMENT_BYTES}"
        )
    document = strict_json_object(data, "fragment", FragmentError)
    if set(document) != _KEYS:
        unknown, missing = sorted(set(document) - _KEYS), sorted(_KEYS - set(document))
        raise FragmentError(
            f"fragment has unknown field(s) {', '.join(unknown)[:200] or '-'} and lacks "
            f"{', '.join(missing) or '-'} (fields: {', '.join(sorted(_KEYS))})"
        )
    version = document["version"]
    if version != FRAGMENT_VERSION or isinstance(version, bool):
        raise FragmentError(f"fragment field 'version' must be {FRAGMENT_VERSION}")
    batch = ProvenanceBatch(
        executions=[_decode(ExecutionRecord, document["execution"], "execution")]
    )
    for attribute, kind in _LISTS.items():
        items = document[attribute]
        if not isinstance(items, list):
            raise FragmentError(f"fragment field {attribute!r} must be a list")
        if attribute == "jobs" and len(items) > MAX_FRAGMENT_JOBS:
            raise FragmentError(
                f"fragment holds {len(items)} jobs, over the limit of {MAX_FRAGMENT_JOBS}"
            )
        records = getattr(batch, attribute)
        for index, item in enumerate(items):
            records.append(_decode(kind, item, f"{attribute}[{index}]"))
    return batch


def _decode(kind: type, item: Any, where: str) -> Any:
    checks = _FIELDS[kind]
    if not isinstance(item, dict) or set(item) != set(checks):
        raise FragmentError(
            f"fragment field {where!r} must be an object with the fields {', '.join(checks)}"
        )
    return kind(
        *(check(item[name], f"fragment field '{where}.{name}'") for name, check in checks.items()),
        **_UNKNOWN.get(kind, {}),
    )


def rebase(
    fragment: ProvenanceBatch, parent_job_id: str, task_hash: Callable[[str, str], str | None]
) -> ProvenanceBatch:
    """The records of a parsed fragment as the receiver writes them: under fresh ids it
    generates (a fragment naming ids that exist cannot overwrite or join their records),
    its execution under `parent_job_id`; records referring to ids the fragment does not
    define are left out, as are tags on values (a value's hash is shared by every scope).
    A task row is kept only if `task_hash(name, source)` — the hash the task would have
    from that source, None when that cannot be said — is its hash: task rows are shared
    by every scope, so a row a job made up must not show as another's task. Values keep
    their description only (the store writes them in the receiver's scope)."""
    (execution,) = fragment.executions
    new_execution = uuid.uuid4().hex
    jobs = [job for job in fragment.jobs if job.execution_id == execution.id]
    known = {job.id: uuid.uuid4().hex for job in jobs}
    batch = ProvenanceBatch(
        executions=[replace(execution, id=new_execution, parent_job_id=parent_job_id)]
    )
    batch.jobs = [
        replace(
            job,
            id=known[job.id],
            execution_id=new_execution,
            parent_id=known.get(job.parent_id or ""),
        )
        for job in jobs
    ]
    batch.arguments = [
        replace(a, job_id=known[a.job_id]) for a in fragment.arguments if a.job_id in known
    ]
    batch.edges = [
        replace(e, src_job_id=known[e.src_job_id], dst_job_id=known[e.dst_job_id])
        for e in fragment.edges
        if e.src_job_id in known and e.dst_job_id in known
    ]
    batch.files = [replace(f, job_id=known[f.job_id]) for f in fragment.files if f.job_id in known]
    entities = {"execution": {execution.id: new_execution}, "job": known}
    batch.tags = [
        replace(t, entity_id=entities[t.entity_kind][t.entity_id])
        for t in fragment.tags
        if t.entity_id in entities.get(t.entity_kind, {})
    ]
    batch.tasks = [
        t
        for t in fragment.tasks
        if t.namespace == t.name.rpartition(".")[0] and task_hash(t.name, t.source) == t.hash
    ]
    batch.values = [ValueRecord(v.hash, v.type_name, v.preview, v.size, None)
                    for v in fragment.values]  # fmt: skip
    return batch
