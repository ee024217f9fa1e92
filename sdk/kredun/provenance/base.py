"""What the engine relies on in a provenance store, whichever one holds the records.

`memory.MemoryProvenanceStore` (no database) and `store.ProvenanceStore` (SQLite,
PostgreSQL) both satisfy `ProvenanceBackend`, and raise the same errors: `NotFoundError`
and `AmbiguousIdError` from `kredun.errors` for ids, `StoreError` for everything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from .records import (
    ArgumentRecord,
    CallRecord,
    EdgeRecord,
    ExecutionRecord,
    FileRecord,
    FinalRecord,
    JobRecord,
    ProvenanceBatch,
    TaskRecord,
    ValueRecord,
)


def normalize_id(text: str) -> str:
    """A job or execution id as stored: 32 lowercase hex digits, so the dashed UUID form
    (and a prefix of it) finds the same record."""
    return text.replace("-", "").strip().lower()


class ProvenanceBackend(Protocol):
    display_uri: str  # for messages: the URI without its password

    def ensure_schema(self) -> None:
        """Create or migrate what the store needs before its first write."""

    def write(self, batch: ProvenanceBatch) -> None:
        """Record a batch at once (the scheduler writes one per tick); records already
        there are replaced (jobs, executions, calls) or kept (tasks, values)."""

    def lookup_calls(self, eval_hashes: Iterable[str]) -> dict[str, CallRecord]:
        """The cached calls among these eval hashes."""

    def lookup_finals(self, call_keys: Iterable[str]) -> dict[str, FinalRecord]:
        """The final results of check_valid="shallow" calls among these call keys."""

    def value_records(self, hashes: Iterable[str]) -> dict[str, ValueRecord]: ...

    def value_data(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The bytes of values kept in the store itself (small ones), by hash."""

    def get_task(self, task_hash: str) -> TaskRecord | None: ...

    def recent_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        """Newest first."""

    def find_execution(self, id_prefix: str) -> ExecutionRecord:
        """The execution whose id is, or uniquely starts with, `id_prefix`; an exact id
        wins. Raises NotFoundError or AmbiguousIdError."""

    def jobs_of(self, execution_id: str) -> list[JobRecord]:
        """One execution's jobs in the order they started."""

    def descendants(self, job_id: str) -> list[JobRecord]:
        """Every job under a job (created by the expressions it and they returned), in the
        order they started."""

    def find_job(self, id_prefix: str) -> JobRecord:
        """Like find_execution, for jobs; dashes in the id are ignored."""

    def find_jobs(
        self,
        task: str | None = None,
        status: str | None = None,
        tag: tuple[str, str | None] | None = None,
        eval_hash: str | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs matching every filter given, newest first."""

    def subruns_of(self, job_id: str) -> list[ExecutionRecord]:
        """The executions run inside a job (a subrun's nested execution), newest first."""

    def arguments_of(self, job_id: str) -> list[ArgumentRecord]: ...

    def edges_of(self, job_id: str) -> list[EdgeRecord]:
        """The call-graph edges into and out of a job."""

    def files_of(self, job_id: str) -> list[FileRecord]: ...

    def close(self) -> None: ...
