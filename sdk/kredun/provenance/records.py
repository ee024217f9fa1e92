"""Plain records the scheduler hands to the provenance store.

The scheduler buffers these and writes them in one `ProvenanceBatch` per flush, so the
store sees a few large transactions instead of many small ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class TaskRecord:
    hash: str  # 40 hex
    name: str  # full name, "namespace.name" or "name"
    namespace: str
    source: str


@dataclass(slots=True)
class ValueRecord:
    hash: str  # 40 hex: the value's content hash
    type_name: str  # e.g. "builtins.int"
    preview: str  # short repr, at most 200 characters
    size: int  # size of the serialized bytes
    data: bytes | None  # the serialized bytes when small enough to keep inline; else None
    scope: str = ""  # the cache scope (kredun.tenancy); the store sets it when writing
    truth: bool | None = None  # bool(value) as the job that made it reported it, if it did
    holds_files: bool | None = None  # whether it holds a File or Dir, as its job reported


# What a value row lacking them (NULL) takes from a later record of the same value: a row
# is otherwise written once, and may first come from a record that could not say.
VALUE_FILLED_FIELDS = ("data", "truth", "holds_files")


@dataclass(slots=True)
class CallRecord:
    """A cacheable result: eval_hash -> result. Never written for a failed job."""

    eval_hash: str
    task_hash: str
    args_hash: str
    result_hash: str
    result_kind: str  # "value": result_hash names a value; "plan": it names a plan fragment
    scope: str = ""  # the cache scope (kredun.tenancy); the store sets it when writing


@dataclass(slots=True)
class FinalRecord:
    """The final value of a call that returned an expression (its ultimate reduction), for
    `check_valid="shallow"`: reusable while every task that ran under it is unchanged."""

    call_key: str  # the eval hash, and "@" and the context hash when the call had a context
    result_hash: str  # the final value
    task_hashes: str  # the hashes of every task in the call's subtree, sorted, space-separated
    scope: str = ""  # the cache scope (kredun.tenancy); the store sets it when writing


# Why a job did not consult the cache: the run's cache was off, its task has cache=False,
# or its task's cache_scope keeps it from the recorded cache.
CACHE_OFF_REASONS = ("run", "task", "scope:CSE", "scope:NONE")
# The most bytes of a job's `hashed` record.
HASHED_LIMIT = 64 * 1024


@dataclass(slots=True)
class JobRecord:
    id: str  # 32 hex
    execution_id: str
    parent_id: str | None  # the job whose returned expression created this one
    task_name: str
    task_hash: str
    eval_hash: str | None
    status: str  # PENDING RUNNING FAILED CACHED DONE CANCELLED
    executor: str
    start_time: datetime
    end_time: datetime | None = None
    result_hash: str | None = None
    error: str | None = None  # one line: "ValueError: boom"
    traceback: str | None = None
    attempt: int = 0
    # Why the cache was not consulted (one of CACHE_OFF_REASONS); None when it was.
    cache_off: str | None = None
    # What else took part in the call's hash (provenance.hashed), as JSON; None for most.
    hashed: str | None = None


@dataclass(slots=True)
class ExecutionRecord:
    id: str  # 32 hex
    args: str  # what was run, e.g. "kredun run wf.py main --x 1" or the root expression repr
    status: str  # RUNNING DONE FAILED CANCELLED
    start_time: datetime
    end_time: datetime | None = None
    result_hash: str | None = None
    result_preview: str | None = None
    error: str | None = None
    parent_job_id: str | None = None  # set for a subrun's nested execution


@dataclass(slots=True)
class ArgumentRecord:
    """One argument of a job's call, by parameter."""

    job_id: str
    position: int  # order in the call: positional arguments first, then keywords
    name: str  # the parameter it binds to ("0", "1", ... when the task cannot say)
    value_hash: str
    preview: str


@dataclass(slots=True)
class EdgeRecord:
    """The call graph: `src_job_id`'s result is (part of) `dst_job_id`'s argument `name`."""

    src_job_id: str
    dst_job_id: str
    name: str


@dataclass(slots=True)
class FileRecord:
    """File lineage: a job read (role "input") or wrote (role "output") a File or Dir, or
    took a staging of one (role "staged": a script's input or output, by remote path)."""

    job_id: str
    role: str
    path: str
    hash: str
    kind: str  # "File" or "Dir"


@dataclass(slots=True)
class TagRecord:
    """A tag on an execution, job or value (`entity_id` is its id or hash)."""

    entity_id: str
    key: str
    value: str
    entity_kind: str  # "execution", "job" or "value"


@dataclass(slots=True)
class ProvenanceBatch:
    """Everything one flush writes, in one transaction.

    tasks and values are content-addressed: inserting an existing key is a no-op. calls,
    jobs and executions are upserted by key: a later record replaces the row. A job's
    execution must be written in the same batch or an earlier one.
    """

    tasks: list[TaskRecord] = field(default_factory=list)
    values: list[ValueRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    executions: list[ExecutionRecord] = field(default_factory=list)
    finals: list[FinalRecord] = field(default_factory=list)
    arguments: list[ArgumentRecord] = field(default_factory=list)
    edges: list[EdgeRecord] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    tags: list[TagRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.tasks or self.values or self.calls or self.finals or self.jobs
            or self.executions or self.arguments or self.edges or self.files or self.tags
        )  # fmt: skip
