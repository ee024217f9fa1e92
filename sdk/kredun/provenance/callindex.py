"""A call index in a value store: the cache of a scheduler that has no database.

A subrun's nested scheduler in a job Pod or a Batch job keeps its provenance in memory
(jobs hold no database credentials), so by itself it would forget every inner call when the
job ends. The job's value store is the tenant's own storage and outlives the job: this store
is the in-memory one plus a copy of each cache entry there, one small JSON object per call
under a key both writer and reader compute from the call (like `kredun.outcome.outcome_key`):

    sha1("call:" + eval_hash)  {"version": 1, "eval_hash": ..., "task_hash": ...,
                                "args_hash": ..., "result_hash": ..., "result_kind": ...}
    sha1("final:" + call_key)  {"version": 1, "call_key": ..., "result_hash": ...,
                                "task_hashes": "<hash> <hash> ..."}

The second form is the final value of a check_valid="shallow" call. An entry names a result
whose bytes are in the same value store (this store writes them there too when the nested
run kept them inline); the scheduler loads it under its usual validity checks, as any cached
result. Reading an entry is one value-store read per call not found in memory; an entry that
is missing, unreadable, over its size, malformed or about another call is a miss, never an
error. Writing one happens when the scheduler flushes its provenance; a failure is logged and
the run goes on. Nothing but a job's nested scheduler reads the index: the operator never
does (it is data a job wrote).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..bounds import is_hash, strict_json_object
from ..errors import KredunError, ValueNotFoundError
from .memory import MemoryProvenanceStore
from .records import CallRecord, FinalRecord, ProvenanceBatch

if TYPE_CHECKING:
    from ..valuestore import ValueStore

INDEX_VERSION = 1
# An entry is a few hashes; a final's lists every task that ran under its call, so it may
# be longer (1,000 task hashes fit).
MAX_CALL_ENTRY_BYTES = 4 * 1024
MAX_FINAL_ENTRY_BYTES = 48 * 1024
# What the scheduler records as a call's result: a value, a returned expression (SDK) or a
# plan fragment (a remote job's expression).
RESULT_KINDS = ("value", "expression", "plan")
# Value-store requests in flight at once: most stores answer each in milliseconds (a disk)
# to tens of milliseconds (S3), so a batch of misses is read concurrently.
IO_THREADS = 8

_CALL_NAMES = ("eval_hash", "task_hash", "args_hash", "result_hash", "result_kind")
_FINAL_NAMES = ("call_key", "result_hash", "task_hashes")

logger = logging.getLogger("kredun")
T = TypeVar("T")


def call_index_key(eval_hash: str) -> str:
    """The value-store key of the index entry of the call whose eval hash is `eval_hash`."""
    return hashlib.sha1(f"call:{eval_hash}".encode()).hexdigest()


def final_index_key(call_key: str) -> str:
    """The value-store key of the index entry of a shallow call's final value."""
    return hashlib.sha1(f"final:{call_key}".encode()).hexdigest()


def encode_call(call: CallRecord) -> bytes:
    return _encode(call, _CALL_NAMES)


def encode_final(final: FinalRecord) -> bytes:
    return _encode(final, _FINAL_NAMES)


def _encode(record: CallRecord | FinalRecord, names: tuple[str, ...]) -> bytes:
    document = {"version": INDEX_VERSION, **{name: getattr(record, name) for name in names}}
    return json.dumps(document, separators=(",", ":")).encode()


class _Malformed(KredunError):
    """An index entry that is not one: read as a miss, never seen outside this module."""


def parse_call(data: bytes, eval_hash: str) -> CallRecord | None:
    """The call an entry read for `eval_hash` records, or None when it is not a well-formed
    entry about that very call."""
    document = _document(data, MAX_CALL_ENTRY_BYTES, _CALL_NAMES)
    if document is None or document["eval_hash"] != eval_hash:
        return None
    task_hash, args_hash, result_hash = (document[name] for name in _CALL_NAMES[1:4])
    if not all(map(is_hash, (task_hash, args_hash, result_hash))):
        return None
    if document["result_kind"] not in RESULT_KINDS:
        return None
    return CallRecord(eval_hash, task_hash, args_hash, result_hash, document["result_kind"])


def parse_final(data: bytes, call_key: str) -> FinalRecord | None:
    """As parse_call, for the final value of the shallow call `call_key`."""
    document = _document(data, MAX_FINAL_ENTRY_BYTES, _FINAL_NAMES)
    if document is None or document["call_key"] != call_key:
        return None
    task_hashes = document["task_hashes"]
    if not is_hash(document["result_hash"]) or not isinstance(task_hashes, str):
        return None
    # The form the scheduler writes: hashes one space apart.
    if task_hashes and not all(map(is_hash, task_hashes.split(" "))):
        return None
    return FinalRecord(call_key, document["result_hash"], task_hashes)


def _document(data: bytes, limit: int, names: tuple[str, ...]) -> dict[str, Any] | None:
    if len(data) > limit:
        return None
    try:
        document = strict_json_object(data, "call index entry", _Malformed)
    except _Malformed:
        return None
    version = document.get("version")
    if isinstance(version, bool) or version != INDEX_VERSION:
        return None
    return document if set(document) == {"version", *names} else None


class CallIndexStore(MemoryProvenanceStore):
    """A MemoryProvenanceStore whose cache entries are also kept in `values` (the value
    store of a job's cache scope), so that a later scheduler on that value store replays
    them. Everything else stays in memory."""

    def __init__(self, values: ValueStore) -> None:
        super().__init__()
        self.values = values
        # Keys read and found wanting: asked again within this run, they cost nothing.
        self._misses: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def write(self, batch: ProvenanceBatch) -> None:
        super().write(batch)
        entries = [(call_index_key(c.eval_hash), encode_call(c), c.result_hash)
                   for c in batch.calls]  # fmt: skip
        entries += [(final_index_key(f.call_key), encode_final(f), f.result_hash)
                    for f in batch.finals]  # fmt: skip
        if not entries:
            return
        # Values small enough to be kept inline live in memory only: the index may name
        # them only once their bytes are in the value store too.
        results = {result for _, _, result in entries}
        inline = {v.hash: v.data for v in batch.values if v.hash in results and v.data is not None}
        inline.update(self.value_data(results - set(inline)))
        stored = self._each(self._put_value, inline.items())
        failed = {value_hash for value_hash, ok in zip(inline, stored, strict=True) if not ok}
        written = [(key, data) for key, data, result in entries if result not in failed]
        kept = self._each(self._put_entry, written).count(True)
        if kept < len(entries):
            logger.warning("Could not keep %d of %d cache entries in %s: later subruns will "
                           "run those calls again", len(entries) - kept, len(entries),
                           self.values.uri)  # fmt: skip

    def lookup_calls(self, eval_hashes: Iterable[str]) -> dict[str, CallRecord]:
        return self._lookup(eval_hashes, super().lookup_calls, call_index_key, parse_call,
                            MAX_CALL_ENTRY_BYTES)  # fmt: skip

    def lookup_finals(self, call_keys: Iterable[str]) -> dict[str, FinalRecord]:
        return self._lookup(call_keys, super().lookup_finals, final_index_key, parse_final,
                            MAX_FINAL_ENTRY_BYTES)  # fmt: skip

    def _lookup(
        self,
        names: Iterable[str],
        in_memory: Callable[[list[str]], dict[str, T]],
        index_key: Callable[[str], str],
        parse: Callable[[bytes, str], T | None],
        limit: int,
    ) -> dict[str, T]:
        wanted = list(dict.fromkeys(names))
        found = in_memory(wanted)
        missing = [(name, index_key(name)) for name in wanted if name not in found]
        missing = [(name, key) for name, key in missing if key not in self._misses]

        def read(item: tuple[str, str]) -> T | None:
            name, key = item
            data = self._read(key, limit)
            return None if data is None else parse(data, name)

        for (name, key), record in zip(missing, self._each(read, missing), strict=True):
            if record is None:
                self._misses.add(key)
            else:
                found[name] = record
        return found

    def _read(self, key: str, limit: int) -> bytes | None:
        try:
            return self.values.get(key, max_bytes=limit)
        except ValueNotFoundError:
            return None
        except Exception as error:  # an entry that cannot be read is a miss, not a failure
            logger.info("Miss   cache entry %s unreadable in %s: %s", key[:8], self.values.uri,
                        error)  # fmt: skip
            return None

    def _put_value(self, item: tuple[str, bytes]) -> bool:
        value_hash, data = item
        return self._put(value_hash, data, False)

    def _put_entry(self, item: tuple[str, bytes]) -> bool:
        key, data = item
        # Replaced: the latest run's record of a call wins, as in the SQL store.
        return self._put(key, data, True)

    def _put(self, key: str, data: bytes, replace: bool) -> bool:
        try:
            self.values.put(key, data, replace=replace)
        except Exception as error:
            logger.info("Cannot write %s to %s: %s", key[:8], self.values.uri, error)
            return False
        return True

    def _each(self, work: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """`work` on each item, concurrently when there is more than one."""
        items = list(items)
        if len(items) <= 1:
            return [work(item) for item in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="kredun-index")
            pool = self._pool
        return list(pool.map(work, items))

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
