"""An in-memory provenance store: what `Scheduler()` uses when given no database.

Same interface as the SQL store, without SQLAlchemy: a notebook's or a test's scheduler
starts instantly and keeps its cache and provenance for as long as it lives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..errors import AmbiguousIdError, NotFoundError
from .base import ProvenanceBackend
from .records import (
    CallRecord,
    ExecutionRecord,
    JobRecord,
    ProvenanceBatch,
    TaskRecord,
    ValueRecord,
)

MEMORY_URI = "memory://"


class MemoryProvenanceStore:
    def __init__(self) -> None:
        self.display_uri = MEMORY_URI
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRecord] = {}
        self._values: dict[str, ValueRecord] = {}
        self._calls: dict[str, CallRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._executions: dict[str, ExecutionRecord] = {}

    def ensure_schema(self) -> None:
        pass  # nothing to create

    def write(self, batch: ProvenanceBatch) -> None:
        with self._lock:
            for task in batch.tasks:
                self._tasks.setdefault(task.hash, task)
            for value in batch.values:
                self._values.setdefault(value.hash, value)
            self._calls.update((r.eval_hash, r) for r in batch.calls)
            # The scheduler's own record objects: it writes each again after changing it.
            self._executions.update((r.id, r) for r in batch.executions)
            self._jobs.update((r.id, r) for r in batch.jobs)

    def lookup_calls(self, eval_hashes: Iterable[str]) -> dict[str, CallRecord]:
        return {h: self._calls[h] for h in eval_hashes if h in self._calls}

    def value_records(self, hashes: Iterable[str]) -> dict[str, ValueRecord]:
        return {h: self._values[h] for h in hashes if h in self._values}

    def value_data(self, hashes: Iterable[str]) -> dict[str, bytes]:
        records = self.value_records(hashes)
        return {h: record.data for h, record in records.items() if record.data is not None}

    def get_task(self, task_hash: str) -> TaskRecord | None:
        return self._tasks.get(task_hash)

    def recent_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        newest = sorted(self._executions.values(), key=lambda r: r.start_time, reverse=True)
        return newest[:limit]

    def find_execution(self, id_prefix: str) -> ExecutionRecord:
        """As the SQL store's: an exact id wins over longer ids it prefixes."""
        if id_prefix in self._executions:
            return self._executions[id_prefix]
        matches = sorted(i for i in self._executions if i.startswith(id_prefix))
        if not matches:
            raise NotFoundError(f"no execution id starts with {id_prefix!r}")
        if len(matches) > 1:
            raise AmbiguousIdError(
                f"execution id prefix {id_prefix!r} is ambiguous "
                f"(matches {matches[0]}, {matches[1]}, ...); give more characters"
            )
        return self._executions[matches[0]]

    def jobs_of(self, execution_id: str) -> list[JobRecord]:
        jobs = [job for job in self._jobs.values() if job.execution_id == execution_id]
        return sorted(jobs, key=lambda job: (job.start_time, job.id))

    def close(self) -> None:
        pass


def open_provenance_store(
    uri: str, scope: str = "", pool_size: int | None = None
) -> ProvenanceBackend:
    """The store for a database URI: `memory://`, or SQLite/PostgreSQL through SQLAlchemy.
    `scope` is the cache scope of its calls and values; a memory store is private to one
    scheduler, hence needs none. `pool_size`: share the process's bounded pool."""
    if uri == MEMORY_URI:
        return MemoryProvenanceStore()
    from .store import ProvenanceStore  # imports SQLAlchemy: only when a database is used

    return ProvenanceStore(uri, scope, pool_size)
