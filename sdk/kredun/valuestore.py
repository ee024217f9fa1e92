"""Value stores: serialized values keyed by content hash, for values too large to keep
inline in the provenance database (and, on clusters, for everything jobs exchange)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from .errors import ConfigError, ValueNotFoundError
from .provenance.records import ValueRecord

INLINE_VALUE_LIMIT = 64 * 1024  # larger serialized values go to the value store


class ValueStore(Protocol):
    uri: str

    def put(self, value_hash: str, data: bytes) -> None: ...
    def get(self, value_hash: str) -> bytes: ...
    def exists(self, value_hash: str) -> bool: ...


class MemoryValueStore:
    def __init__(self) -> None:
        self.uri = "memory://"
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, value_hash: str, data: bytes) -> None:
        with self._lock:
            self._blobs[value_hash] = data

    def get(self, value_hash: str) -> bytes:
        try:
            return self._blobs[value_hash]
        except KeyError:
            raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None

    def exists(self, value_hash: str) -> bool:
        return value_hash in self._blobs


class DirectoryValueStore:
    """Blobs as files `ab/cdef...` under a directory (local disk or a shared volume)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"

    def _path(self, value_hash: str) -> Path:
        return self.root / value_hash[:2] / value_hash[2:]

    def put(self, value_hash: str, data: bytes) -> None:
        path = self._path(value_hash)
        if path.exists():
            return  # content-addressed: same hash, same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees a half-written blob.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)

    def get(self, value_hash: str) -> bytes:
        try:
            return self._path(value_hash).read_bytes()
        except FileNotFoundError:
            raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None

    def exists(self, value_hash: str) -> bool:
        return self._path(value_hash).exists()


def open_value_store(uri: str) -> ValueStore:
    """`memory://`, `file:///abs/path` or `file://relative/path`, or `s3://bucket/prefix`."""
    parsed = urlparse(uri)
    if parsed.scheme == "memory":
        return MemoryValueStore()
    if parsed.scheme == "file":
        return DirectoryValueStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        from .s3store import S3ValueStore

        return S3ValueStore(parsed.netloc, parsed.path.lstrip("/"))
    raise ConfigError(f"unsupported value store URI {uri!r} (use memory://, file://PATH or s3://)")


def store_value(
    value_store: ValueStore, value_hash: str, data: bytes, type_name: str, preview: str
) -> ValueRecord:
    """The provenance row for serialized bytes: kept inline when small, else written to
    the value store and only described by the row."""
    inline = len(data) <= INLINE_VALUE_LIMIT
    if not inline:
        value_store.put(value_hash, data)
    return ValueRecord(value_hash, type_name, preview, len(data), data if inline else None)
