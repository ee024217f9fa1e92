"""Checks on what users may write: value hashes before any path or key is built from them,
and byte caps before anything large is read."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidHashError, KredunError, LimitExceededError

INLINE_VALUE_LIMIT = 64 * 1024  # larger serialized values go to the value store
CHUNK = 1024 * 1024  # bytes read at a time when a blob is hashed
_HASH = re.compile(r"^[0-9a-f]{40}$")


def is_hash(value: Any) -> bool:
    """Whether `value` is 40 lowercase hex digits."""
    return isinstance(value, str) and _HASH.match(value) is not None


def check_hash(value_hash: Any) -> str:
    """`value_hash` if it is 40 lowercase hex digits. Hashes come from plans, job specs and
    provenance rows, which a user may have written: nothing else may become a path or key."""
    if is_hash(value_hash):
        return value_hash
    raise InvalidHashError(f"{str(value_hash)[:80]!r} is not a value hash (40 hex digits)")


def check_size(value_hash: str, size: int, max_bytes: int | None, uri: str) -> None:
    if max_bytes is not None and size > max_bytes:
        raise LimitExceededError(
            f"value {value_hash[:8]} in {uri} is {size} bytes, over the limit of {max_bytes}"
        )


def digest_chunks(
    value_hash: str, chunks: Iterable[bytes], max_bytes: int | None, uri: str
) -> tuple[str, int]:
    """sha1 and size of the blob under `value_hash` read as `chunks`, stopping once past
    `max_bytes` (LimitExceededError)."""
    digest, size = hashlib.sha1(), 0
    for chunk in chunks:
        size += len(chunk)
        check_size(value_hash, size, max_bytes, uri)
        digest.update(chunk)
    return digest.hexdigest(), size


def strict_json_object(data: bytes, what: str, error: type[KredunError]) -> dict[str, Any]:
    """`data` (already within its size limit) as one JSON object in which no key appears
    twice, at any depth: a document a job wrote is read one way only. `error`, naming
    `what`, otherwise."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in pairs:
            if key in document:
                raise error(f"{what} field {key[:50]!r} appears twice")
            document[key] = value
        return document

    try:
        document = json.loads(data, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as problem:
        raise error(f"{what} is not valid JSON: {str(problem)[:200]}") from None
    if not isinstance(document, dict):
        raise error(f"{what} must be a JSON object")
    return document
