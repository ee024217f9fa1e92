"""The provenance tables, as SQLAlchemy Core `Table`s on one `MetaData`.

Core rather than ORM on purpose: the store writes whole batches with executemany and reads
plain rows, so there is no identity map, unit of work or per-object bookkeeping to pay for.

The migrations in `migrations/versions/` create these same tables; they are written by hand
and never import this module, so an old migration keeps meaning what it meant when it was
written. A test compares a migrated database against this metadata so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

# The newest revision in migrations/versions/. `ProvenanceStore.ensure_schema` compares the
# database's alembic_version against it with one query, so alembic is only imported when the
# schema actually needs creating or upgrading.
HEAD_REVISION = "0007"

# Hashes are 40 hex characters and ids 32 today; the columns leave room for a longer digest.
HASH_LENGTH = 64
STATUS_LENGTH = 16
SCOPE_LENGTH = 80  # "shared/" or "ns/" and a 63-character Kubernetes name


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC.

    PostgreSQL stores `timestamptz` natively, but SQLite has no timezone support: its
    DateTime drops the offset on write and returns naive values. Normalising to UTC on the
    way in and attaching UTC on the way out makes both backends return the same datetimes.
    Naive datetimes are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _created() -> Column[datetime]:
    """When a row was first inserted, filled in by the database so writers send nothing."""
    return Column(
        "created", UTCDateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )


def _scope() -> Column[str]:
    """The cache scope a cached call or value belongs to (kredun.tenancy): lookups in one
    scope never see another's rows. Part of the key: two scopes may hold the same hash."""
    return Column("scope", String(SCOPE_LENGTH), primary_key=True, server_default="")


metadata = MetaData()

task_table = Table(
    "kredun_task",
    metadata,
    Column("hash", String(HASH_LENGTH), primary_key=True),
    Column("name", Text, nullable=False),
    Column("namespace", Text, nullable=False),
    Column("source", Text, nullable=False),
    _created(),
)

value_table = Table(
    "kredun_value",
    metadata,
    _scope(),
    Column("hash", String(HASH_LENGTH), primary_key=True),
    Column("type_name", Text, nullable=False),
    Column("preview", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=True),
    _created(),
    # bool(value), as the job that made it reported it: a cond on a cached value reads it.
    Column("truth", Boolean, nullable=True),
    # Whether the value holds a File or Dir, as its job reported: the operator checks those
    # files in a job before it replays the value from the cache.
    Column("holds_files", Boolean, nullable=True),
)

call_table = Table(
    "kredun_call",
    metadata,
    _scope(),
    Column("eval_hash", String(HASH_LENGTH), primary_key=True),
    Column("task_hash", String(HASH_LENGTH), nullable=False),
    Column("args_hash", String(HASH_LENGTH), nullable=False),
    Column("result_hash", String(HASH_LENGTH), nullable=False),
    Column("result_kind", String(STATUS_LENGTH), nullable=False),
    _created(),
)

# Final values of calls that returned expressions, keyed by eval hash (and context hash):
# see FinalRecord. A small table of its own, written only for check_valid="shallow" tasks.
final_table = Table(
    "kredun_final",
    metadata,
    _scope(),
    Column("call_key", String(2 * HASH_LENGTH + 1), primary_key=True),
    Column("result_hash", String(HASH_LENGTH), nullable=False),
    Column("task_hashes", Text, nullable=False),
    _created(),
)

execution_table = Table(
    "kredun_execution",
    metadata,
    Column("id", String(HASH_LENGTH), primary_key=True),
    Column("args", Text, nullable=False),
    Column("status", String(STATUS_LENGTH), nullable=False),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime(), nullable=True),
    Column("result_hash", String(HASH_LENGTH), nullable=True),
    Column("result_preview", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("parent_job_id", String(HASH_LENGTH), nullable=True),
    # `kredun log` lists the newest executions first.
    Index("ix_kredun_execution_start_time", "start_time"),
)

job_table = Table(
    "kredun_job",
    metadata,
    Column("id", String(HASH_LENGTH), primary_key=True),
    Column(
        "execution_id",
        String(HASH_LENGTH),
        ForeignKey("kredun_execution.id", name="fk_kredun_job_execution_id"),
        nullable=False,
        index=True,
    ),
    Column("parent_id", String(HASH_LENGTH), nullable=True, index=True),
    Column("task_name", Text, nullable=False),
    Column("task_hash", String(HASH_LENGTH), nullable=False),
    Column("eval_hash", String(HASH_LENGTH), nullable=True, index=True),
    Column("status", String(STATUS_LENGTH), nullable=False),
    Column("executor", Text, nullable=False),
    Column("start_time", UTCDateTime(), nullable=False),
    Column("end_time", UTCDateTime(), nullable=True),
    Column("result_hash", String(HASH_LENGTH), nullable=True),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("cache_off", String(STATUS_LENGTH), nullable=True),
    # The task's version and hash_includes and the context keys read into arguments, as
    # JSON (kredun.provenance.hashed): what `kredun log --why` names besides code and
    # arguments.
    Column("hashed", Text, nullable=True),
)

# Rows below are keyed by job and written once (insert-or-ignore); they have no foreign
# keys so a batch writes them in any order and the bulk writer stays one statement each.
# On SQLite they are WITHOUT ROWID: the rows live in their primary key's b-tree instead of
# a rowid table plus a key index, which halves the work of each insert.
argument_table = Table(
    "kredun_argument",
    metadata,
    Column("job_id", String(HASH_LENGTH), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    # Not indexed: nothing looks arguments up by value, and each index slows every write.
    Column("value_hash", String(HASH_LENGTH), nullable=False),
    Column("preview", Text, nullable=False),
    sqlite_with_rowid=False,
)

edge_table = Table(
    "kredun_edge",
    metadata,
    Column("src_job_id", String(HASH_LENGTH), primary_key=True),
    Column("dst_job_id", String(HASH_LENGTH), primary_key=True, index=True),
    Column("name", Text, primary_key=True),
    sqlite_with_rowid=False,
)

file_table = Table(
    "kredun_file",
    metadata,
    Column("job_id", String(HASH_LENGTH), primary_key=True),
    Column("role", String(STATUS_LENGTH), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("hash", String(HASH_LENGTH), nullable=False),
    Column("kind", String(STATUS_LENGTH), nullable=False),
    _created(),
    # `kredun log --file PATH` looks files up by path.
    Index("ix_kredun_file_path", "path"),
    sqlite_with_rowid=False,
)

tag_table = Table(
    "kredun_tag",
    metadata,
    Column("entity_id", String(HASH_LENGTH), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("entity_kind", String(STATUS_LENGTH), nullable=False),
    Index("ix_kredun_tag_key_value", "key", "value"),
    sqlite_with_rowid=False,
)
