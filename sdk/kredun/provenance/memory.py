"""An in-memory provenance store: what `Scheduler()` uses when given no database.

Same interface as the SQL store, without SQLAlchemy: a notebook's or a test's scheduler
starts instantly and keeps its cache and provenance for as long as it lives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from ..errors import AmbiguousIdError, NotFoundError
from .base import ProvenanceBackend, normalize_id
from .records import (
    VALUE_FILLED_FIELDS,
    ArgumentRecord,
    CallRecord,
    EdgeRecord,
    ExecutionRecord,
    FileRecord,
    FinalRecord,
    JobRecord,
    ProvenanceBatch,
    TagRecord,
    TaskRecord,
    ValueRecord,
)

MEMORY_URI = "memory://"

R = TypeVar("R")


class MemoryProvenanceStore:
    def __init__(self) -> None:
        self.display_uri = MEMORY_URI
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskRecord] = {}
        self._values: dict[str, ValueRecord] = {}
        self._calls: dict[str, CallRecord] = {}
        self._finals: dict[str, FinalRecord] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._executions: dict[str, ExecutionRecord] = {}
        self._arguments: dict[str, list[ArgumentRecord]] = {}
        self._edges: dict[str, list[EdgeRecord]] = {}  # by both ends
        self._files: dict[str, list[FileRecord]] = {}
        self._tags: dict[str, set[tuple[str, str]]] = {}
        self._tag_kinds: dict[str, str] = {}  # entity id -> "execution", "job" or "value"

    def ensure_schema(self) -> None:
        pass  # nothing to create

    def write(self, batch: ProvenanceBatch) -> None:
        with self._lock:
            for task in batch.tasks:
                self._tasks.setdefault(task.hash, task)
            for value in batch.values:
                known = self._values.setdefault(value.hash, value)
                missing = {name: getattr(value, name) for name in VALUE_FILLED_FIELDS
                           if getattr(known, name) is None}  # fmt: skip
                if known is not value and missing:  # filled in, as the SQL store does
                    self._values[value.hash] = replace(known, **missing)
            self._calls.update((r.eval_hash, r) for r in batch.calls)
            self._finals.update((r.call_key, r) for r in batch.finals)
            # The scheduler's own record objects: it writes each again after changing it.
            self._executions.update((r.id, r) for r in batch.executions)
            self._jobs.update((r.id, r) for r in batch.jobs)
            for argument in batch.arguments:
                self._arguments.setdefault(argument.job_id, []).append(argument)
            for edge in batch.edges:
                self._edges.setdefault(edge.dst_job_id, []).append(edge)
                self._edges.setdefault(edge.src_job_id, []).append(edge)
            for file in batch.files:
                self._files.setdefault(file.job_id, []).append(file)
            for tag in batch.tags:
                self._tags.setdefault(tag.entity_id, set()).add((tag.key, tag.value))
                self._tag_kinds[tag.entity_id] = tag.entity_kind

    def provenance(self) -> ProvenanceBatch:
        """Everything this store records about what ran (executions, jobs, their arguments,
        edges, files and tags, the tasks and values), not its cache entries: for a subrun's
        job to hand over (kredun.provenance.fragment)."""
        with self._lock:
            return ProvenanceBatch(
                tasks=list(self._tasks.values()),
                values=list(self._values.values()),
                executions=list(self._executions.values()),
                jobs=list(self._jobs.values()),
                arguments=[a for found in self._arguments.values() for a in found],
                edges=[
                    e for dst, found in self._edges.items() for e in found if e.dst_job_id == dst
                ],
                files=[f for found in self._files.values() for f in found],
                tags=[
                    TagRecord(entity, key, value, self._tag_kinds[entity])
                    for entity, pairs in self._tags.items()
                    for key, value in sorted(pairs)
                ],
            )

    def lookup_calls(self, eval_hashes: Iterable[str]) -> dict[str, CallRecord]:
        return {h: self._calls[h] for h in eval_hashes if h in self._calls}

    def lookup_finals(self, call_keys: Iterable[str]) -> dict[str, FinalRecord]:
        return {k: self._finals[k] for k in call_keys if k in self._finals}

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
        return _unique(self._executions, id_prefix, "execution")

    def subruns_of(self, job_id: str) -> list[ExecutionRecord]:
        inside = [r for r in self._executions.values() if r.parent_job_id == job_id]
        return sorted(inside, key=lambda r: r.start_time, reverse=True)

    def find_job(self, id_prefix: str) -> JobRecord:
        return _unique(self._jobs, normalize_id(id_prefix), "job")

    def find_jobs(
        self,
        task: str | None = None,
        status: str | None = None,
        tag: tuple[str, str | None] | None = None,
        eval_hash: str | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        def matches(job: JobRecord) -> bool:
            tags = self._tags.get(job.id, set())
            return (
                (task is None or job.task_name == task)
                and (status is None or job.status == status)
                and (eval_hash is None or job.eval_hash == eval_hash)
                and (before is None or job.start_time < before)
                and (tag is None or any(k == tag[0] and tag[1] in (None, v) for k, v in tags))
            )

        found = sorted(filter(matches, self._jobs.values()), key=lambda j: (j.start_time, j.id))
        return found[::-1][:limit]

    def arguments_of(self, job_id: str) -> list[ArgumentRecord]:
        return sorted(self._arguments.get(job_id, []), key=lambda a: a.position)

    def edges_of(self, job_id: str) -> list[EdgeRecord]:
        return list(self._edges.get(job_id, []))

    def files_of(self, job_id: str) -> list[FileRecord]:
        return sorted(self._files.get(job_id, []), key=lambda f: (f.role, f.path))

    def jobs_of(self, execution_id: str) -> list[JobRecord]:
        jobs = [job for job in self._jobs.values() if job.execution_id == execution_id]
        return sorted(jobs, key=lambda job: (job.start_time, job.id))

    def descendants(self, job_id: str) -> list[JobRecord]:
        children: dict[str | None, list[JobRecord]] = {}
        for job in self._jobs.values():
            children.setdefault(job.parent_id, []).append(job)
        found: dict[str, JobRecord] = {}
        stack = [job_id]
        while stack:
            for child in children.get(stack.pop(), []):
                if child.id not in found:
                    found[child.id] = child
                    stack.append(child.id)
        return sorted(found.values(), key=lambda job: (job.start_time, job.id))

    def close(self) -> None:
        pass


def _unique(records: dict[str, R], prefix: str, what: str) -> R:
    """The record whose id is, or uniquely starts with, `prefix`: an exact id wins."""
    if prefix in records:
        return records[prefix]
    matches = sorted(i for i in records if i.startswith(prefix))
    if not matches:
        raise NotFoundError(f"no {what} id starts with {prefix!r}")
    if len(matches) > 1:
        raise AmbiguousIdError(
            f"{what} id prefix {prefix!r} is ambiguous "
            f"(matches {matches[0]}, {matches[1]}, ...); give more characters"
        )
    return records[matches[0]]


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
