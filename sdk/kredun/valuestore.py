"""Value stores: serialized values keyed by content hash, for values too large to keep
inline in the provenance database (and, on clusters, for everything jobs exchange)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from .bounds import CHUNK, INLINE_VALUE_LIMIT, check_hash, check_size, digest_chunks
from .errors import ConfigError, ValueNotFoundError
from .provenance.records import ValueRecord
from .tenancy import scoped_store_uri


class ValueStore(Protocol):
    uri: str

    def put(self, value_hash: str, data: bytes, replace: bool = False) -> None:
        """Store `data` under `value_hash`. Content-addressed blobs are written once;
        `replace` overwrites (an outcome kept under a key that is not its content's hash)."""
        ...

    def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        """The bytes; LimitExceededError rather than reading more than `max_bytes`."""
        ...

    def exists(self, value_hash: str) -> bool: ...

    def digest(self, value_hash: str, max_bytes: int | None = None) -> tuple[str, int]:
        """The sha1 and size of the bytes under `value_hash`, read in chunks: a blob can be
        checked without being held in memory. LimitExceededError past `max_bytes`."""
        ...


class MemoryValueStore:
    def __init__(self) -> None:
        self.uri = "memory://"
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, value_hash: str, data: bytes, replace: bool = False) -> None:
        with self._lock:
            self._blobs[check_hash(value_hash)] = data

    def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        try:
            data = self._blobs[check_hash(value_hash)]
        except KeyError:
            raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None
        check_size(value_hash, len(data), max_bytes, self.uri)
        return data

    def exists(self, value_hash: str) -> bool:
        return value_hash in self._blobs

    def digest(self, value_hash: str, max_bytes: int | None = None) -> tuple[str, int]:
        data = self.get(value_hash, max_bytes)
        return hashlib.sha1(data).hexdigest(), len(data)


class DirectoryValueStore:
    """Blobs as files `ab/cdef...` under a directory (local disk or a shared volume)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"

    def _path(self, value_hash: str) -> Path:
        check_hash(value_hash)
        return self.root / value_hash[:2] / value_hash[2:]

    def put(self, value_hash: str, data: bytes, replace: bool = False) -> None:
        path = self._path(value_hash)
        if not replace and path.exists():
            return  # content-addressed: same hash, same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees a half-written blob.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)

    def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        try:
            with self._path(value_hash).open("rb") as file:
                if max_bytes is None:
                    return file.read()
                check_size(value_hash, os.fstat(file.fileno()).st_size, max_bytes, self.uri)
                data = file.read(max_bytes + 1)  # the file may grow after fstat
        except FileNotFoundError:
            raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None
        check_size(value_hash, len(data), max_bytes, self.uri)
        return data

    def exists(self, value_hash: str) -> bool:
        return self._path(value_hash).exists()

    def digest(self, value_hash: str, max_bytes: int | None = None) -> tuple[str, int]:
        try:
            with self._path(value_hash).open("rb") as file:
                return digest_chunks(value_hash, iter(lambda: file.read(CHUNK), b""),
                                     max_bytes, self.uri)  # fmt: skip
        except FileNotFoundError:
            raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None


def open_value_store(uri: str, scope: str = "") -> ValueStore:
    """`memory://`, `file:///abs/path` or `file://relative/path`, or `s3://bucket/prefix`;
    with a cache `scope`, the part of that store holding the scope's values."""
    uri = scoped_store_uri(uri, scope)
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
