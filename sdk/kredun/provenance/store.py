"""The SQL provenance store: one object that writes `ProvenanceBatch`es and answers queries.

Performance is the point of this module's shape. The scheduler buffers provenance and calls
`write` once per tick, so a whole tick costs one transaction with one bulk statement per table
(see `bulk`) instead of a couple of dozen ORM statements per job. Queries are SQLAlchemy Core
statements built once, which SQLAlchemy compiles once per dialect and reuses. Start-up does
no reflection and, on a database whose schema is current, never imports alembic.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from kredun.bounds import INLINE_VALUE_LIMIT
from kredun.errors import AmbiguousIdError, DatabaseURIError, NotFoundError, StoreError
from kredun.provenance.base import normalize_id
from kredun.provenance.bulk import TableWriter, prepare
from kredun.provenance.records import (
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
from kredun.provenance.schema import (
    HEAD_REVISION,
    argument_table,
    call_table,
    edge_table,
    execution_table,
    file_table,
    final_table,
    job_table,
    metadata,
    tag_table,
    task_table,
    value_table,
)
from kredun.tenancy import check_scope

__all__ = [
    "HEAD_REVISION",
    "AmbiguousIdError",
    "NotFoundError",
    "ProvenanceStore",
    "mask_uri",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# How long a SQLite writer waits for another process's write transaction before giving up.
# A 100,000-row batch commits in a few seconds, so this leaves a wide margin.
SQLITE_BUSY_TIMEOUT_S = 60.0
# Default for PostgreSQL when the URI does not set connect_timeout: fail fast and clearly
# instead of hanging on an unreachable host.
PG_CONNECT_TIMEOUT_S = 10
# Keys per lookup query: far below every dialect's bound-parameter limit.
LOOKUP_CHUNK = 500
# Serialises concurrent schema creation on PostgreSQL ("kredun" in ASCII).
PG_SCHEMA_LOCK_KEY = 0x6B726564756E
# Execution option telling the SQLite BEGIN hook to take the write lock up front.
_SQLITE_IMMEDIATE = "kredun_sqlite_immediate"
# Longest database reason quoted in an error message.
_REASON_LIMIT = 300


def _columns(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record_type))


# Record fields are column names; selecting them in the dataclass's order lets a row convert
# to a record positionally (`Record(*row)`).
_TASK_COLUMNS = _columns(TaskRecord)
_VALUE_COLUMNS = _columns(ValueRecord)
_CALL_COLUMNS = _columns(CallRecord)
_FINAL_COLUMNS = _columns(FinalRecord)
_EXECUTION_COLUMNS = _columns(ExecutionRecord)
_JOB_COLUMNS = _columns(JobRecord)
_ARGUMENT_COLUMNS = _columns(ArgumentRecord)
_EDGE_COLUMNS = _columns(EdgeRecord)
_FILE_COLUMNS = _columns(FileRecord)
_TAG_COLUMNS = _columns(TagRecord)


def _select_records(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    return select(*(table.c[name] for name in columns))


def _key_lookups(postgres: bool) -> tuple[Select[Any], Select[Any], Select[Any], Select[Any]]:
    """The by-key selects of calls, values, value data and final results, taking a list
    parameter `keys` and the cache `scope`.

    PostgreSQL gets `= ANY(:keys)`, one array parameter, which it plans and psycopg sends
    about twice as fast as an `IN` list of 500 parameters; SQLite has no arrays.
    """

    def matches(key: Column[str]) -> ColumnElement[bool]:
        if postgres:
            return key == any_(bindparam("keys", type_=ARRAY(key.type)))
        return key.in_(bindparam("keys", expanding=True))

    in_scope: Any = bindparam("scope")
    return (
        _select_records(call_table, _CALL_COLUMNS)
        .where(call_table.c.scope == in_scope)
        .where(matches(call_table.c.eval_hash)),
        _select_records(value_table, _VALUE_COLUMNS)
        .where(value_table.c.scope == in_scope)
        .where(matches(value_table.c.hash)),
        select(value_table.c.hash, value_table.c.data)
        .where(value_table.c.scope == in_scope)
        .where(matches(value_table.c.hash))
        # Inline data is small by construction; a row claiming more (written by hand, say)
        # is not read into memory: the value store, which caps reads, is asked instead.
        .where(func.length(value_table.c.data) <= INLINE_VALUE_LIMIT),
        _select_records(final_table, _FINAL_COLUMNS)
        .where(final_table.c.scope == in_scope)
        .where(matches(final_table.c.call_key)),
    )


_SELECT_TASK = _select_records(task_table, _TASK_COLUMNS).where(
    task_table.c.hash == bindparam("hash")
)
_SELECT_REVISION = text("SELECT version_num FROM alembic_version")
# Alembic's own bookkeeping table, as alembic creates it, for stamping a fresh schema.
_alembic_version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_SELECT_EXECUTIONS = _select_records(execution_table, _EXECUTION_COLUMNS)
_SELECT_JOBS_OF = (
    _select_records(job_table, _JOB_COLUMNS)
    .where(job_table.c.execution_id == bindparam("execution_id"))
    .order_by(job_table.c.start_time, job_table.c.id)
)
_SELECT_JOB_COUNTS = (
    select(job_table.c.task_name, job_table.c.status, func.count())
    .where(job_table.c.execution_id == bindparam("execution_id"))
    .group_by(job_table.c.task_name, job_table.c.status)
)


_SECRET_PARAMETER = re.compile(r"(?i)((?:^|[&;])[^=&;]*(?:pass|pwd|secret|token)[^=&;]*=)[^&;#]*")


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by `***`, safe to print and log.

    Works on the raw string so that even URIs SQLAlchemy cannot parse are masked: the
    password of `scheme://user:pw@host`, `scheme://:pw@host` and `user:pw@host` (up to the
    last `@` before the query, as a password may hold one), and query parameters such as
    `?password=` or `&sslpassword=`. When in doubt it masks more, never less.
    """
    head, mark, query = uri.partition("?")
    start = head.find("://")
    start = start + 3 if start >= 0 else 0
    at = head.rfind("@")
    if at >= start:
        user, colon, _ = head[start:at].partition(":")
        if colon:
            head = f"{head[:start]}{user}:***{head[at:]}"
    return head + mark + _SECRET_PARAMETER.sub(r"\1***", query)


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 3] + "..."


def _reason(exc: Exception) -> str:
    """The database's own complaint, without SQLAlchemy's echo of the SQL and parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    elif isinstance(exc, SQLAlchemyError):
        return _one_line(str(exc))
    return _one_line(f"{type(exc).__name__}: {exc}")


def _chunks(keys: list[str], size: int = LOOKUP_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _writers(dialect: Dialect) -> list[tuple[str, TableWriter]]:
    """What `write` writes, as (batch attribute, writer), in order: executions before jobs,
    as a job's execution_id is a foreign key. Tasks and values are content-addressed:
    insert-or-ignore, except that a value row missing its bytes, `bool()` or word on files
    takes them from a later record that has them (a row a subrun's provenance fragment
    described, say). A call's latest result wins: for a deterministic task every result
    is the same, and an uncached task's (e.g. call_by_name's) newest run is the one that
    counts."""
    return [
        ("tasks", TableWriter(task_table, TaskRecord, "hash", dialect)),
        (
            "values",
            TableWriter(
                value_table,
                ValueRecord,
                ("scope", "hash"),
                dialect,
                fill=VALUE_FILLED_FIELDS,
            ),
        ),
        (
            "calls",
            TableWriter(call_table, CallRecord, ("scope", "eval_hash"), dialect, upsert=True),
        ),
        (
            "finals",
            TableWriter(final_table, FinalRecord, ("scope", "call_key"), dialect, upsert=True),
        ),
        ("executions", TableWriter(execution_table, ExecutionRecord, "id", dialect, upsert=True)),
        (
            "jobs",
            TableWriter(job_table, JobRecord, "id", dialect, upsert=True, fixed=("execution_id",)),
        ),
        *(
            (attribute, TableWriter(table, record, key, dialect))
            for attribute, table, record, key in (
                ("arguments", argument_table, ArgumentRecord, ("job_id", "position")),
                ("edges", edge_table, EdgeRecord, ("src_job_id", "dst_job_id", "name")),
                ("files", file_table, FileRecord, ("job_id", "role", "path")),
                ("tags", tag_table, TagRecord, ("entity_id", "key", "value")),
            )
        ),
    ]


def _uri_error(uri: str, problem: str) -> DatabaseURIError:
    return DatabaseURIError(f"cannot use database URI {mask_uri(uri)!r}: {problem}")


def _parse(uri: str) -> URL:
    """The URI as a SQLAlchemy URL on a supported dialect, with `postgresql` meaning psycopg 3."""
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise _uri_error(
            uri,
            "cannot parse it (expected sqlite:///PATH, sqlite:// for in-memory, or "
            "postgresql://USER:PASSWORD@HOST[:PORT]/DB)",
        ) from exc
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise _uri_error(
            uri, f"unsupported database {backend!r}; kredun supports sqlite and postgresql"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    # Bulk writes use driver features (psycopg's COPY, sqlite3's executemany).
    expected = "psycopg" if backend == "postgresql" else "pysqlite"
    if url.get_driver_name() != expected:
        raise _uri_error(
            uri,
            f"unsupported driver {url.get_driver_name()!r}; use postgresql:// (psycopg 3) "
            "or sqlite:///PATH",
        )
    return url


def _on_sqlite_connect(wal: bool) -> Any:
    """A `connect` hook setting the pragmas that let many processes share one SQLite file.

    WAL lets readers run while one process writes; synchronous=NORMAL skips the fsync per
    commit (a crash may lose the last transactions, never corrupt the file); the busy timeout
    makes writers queue instead of failing; a 32 MiB page cache (allocated only as used) keeps
    a large batch's index pages in memory. Foreign keys are on so SQLite rejects what
    PostgreSQL rejects. The driver's own transaction handling is switched off: it would not
    BEGIN before SELECT or DDL, so `_on_sqlite_begin` issues BEGIN itself.
    """

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if wal:
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA cache_size = -32768")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return on_connect


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode. On a new file, connections racing to switch it fail at once
    with "database is locked" (SQLite does not call the busy handler for that lock), so this
    waits and retries for up to the busy timeout, as every other statement would."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _on_sqlite_begin(connection: Connection) -> None:
    """BEGIN for reads; BEGIN IMMEDIATE for writes, so a writer waits for the write lock at the
    start (honouring the busy timeout) rather than failing when upgrading a read lock."""
    immediate = connection.get_execution_options().get(_SQLITE_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Engines shared by every store of one process that asks for a bounded pool, by URI and
# pool size: the operator runs any number of Executions on one pool.
_shared_engines: dict[tuple[str, int], tuple[Engine, bool]] = {}
_shared_engines_lock = threading.Lock()
SHARED_POOL_TIMEOUT_S = 60  # a store waiting longer for a pooled connection reports an error


def _engine(uri: str, url: URL, pool_size: int | None) -> tuple[Engine, bool]:
    if pool_size is None:
        return _create_engine(uri, url)
    with _shared_engines_lock:
        found = _shared_engines.get((uri, pool_size))
        if found is None:
            found = _shared_engines[(uri, pool_size)] = _create_engine(uri, url, pool_size)
        return found


def _create_engine(uri: str, url: URL, pool_size: int | None = None) -> tuple[Engine, bool]:
    """The engine for `url`, and whether it is an in-memory SQLite database. `pool_size`
    bounds its connections (no overflow)."""
    kwargs: dict[str, Any] = {}
    connect_args: dict[str, Any] = {}
    memory = False
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        connect_args["check_same_thread"] = False
        if memory:
            # One connection shared by every thread: each new connection would be a new,
            # empty database.
            kwargs["poolclass"] = StaticPool
        else:
            parent = Path(url.database).parent  # type: ignore[arg-type]
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = (
                    "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
                )
                raise _uri_error(
                    uri, f"cannot create directory {str(parent)!r}: {reason or exc}"
                ) from exc
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
    else:
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        # The operator holds connections for days; the database may restart under it.
        kwargs["pool_pre_ping"] = True
    if pool_size is not None and not memory:
        kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=SHARED_POOL_TIMEOUT_S)
    try:
        engine = create_engine(url, connect_args=connect_args, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        hint = " (pip install 'kredun[postgres]')" if url.get_backend_name() == "postgresql" else ""
        raise _uri_error(
            uri, f"database driver {url.get_driver_name()!r} is not available{hint}"
        ) from exc
    except (ArgumentError, TypeError, ValueError) as exc:
        raise _uri_error(uri, _one_line(str(exc))) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect(wal=not memory))
        event.listen(engine, "begin", _on_sqlite_begin)
    return engine, memory


class ProvenanceStore:
    """Executions, jobs, cached calls, values and tasks in SQLite or PostgreSQL.

    Thread-safe: file and PostgreSQL stores use a connection pool; an in-memory store has a
    single connection, so its operations are serialised with a lock.
    """

    def __init__(self, uri: str, scope: str = "", pool_size: int | None = None) -> None:
        """Prepare the engine; connects lazily. Raises `DatabaseURIError` for a bad URI.

        `scope` is the cache scope (kredun.tenancy) of the calls and values this store
        writes and looks up; executions, jobs and tasks are not scoped. With `pool_size`,
        the store uses the process's one pool of that many connections for `uri`, shared
        with every other store asking the same (closing the store leaves it open)."""
        self.scope = check_scope(scope)
        url = _parse(uri)
        self.display_uri = mask_uri(uri)
        self._engine, memory = _engine(uri, url, pool_size)
        self._shared_engine = pool_size is not None
        self._dialect = self._engine.dialect.name
        self._writers: list[tuple[str, TableWriter]] = []
        (
            self._select_calls,
            self._select_values,
            self._select_value_data,
            self._select_finals,
        ) = _key_lookups(postgres=self._dialect == "postgresql")
        # Errors the store reports as StoreError: SQLAlchemy's, and the driver's own from the
        # few calls that bypass SQLAlchemy (COPY).
        self._db_errors = (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error)
        self._lock: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        if self._dialect == "sqlite":
            self._location = "in-memory SQLite" if memory else f"SQLite database {url.database}"
        else:
            self._location = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"

    # -- connections -------------------------------------------------------------------------

    def _open(self) -> Connection:
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot connect to {self._location}: {_reason(exc)}") from exc

    @contextmanager
    def _connect(
        self,
        what: str,
        write: bool = False,
        prepare: Callable[[Connection], None] | None = None,
    ) -> Iterator[Connection]:
        """A connection in a transaction, with database errors turned into one-line
        `StoreError`s saying what was being done; rolled back unless the block succeeds.
        `prepare` runs on the connection first, outside that transaction."""
        with self._lock, self._open() as connection:
            if write:
                connection.execution_options(**{_SQLITE_IMMEDIATE: True})
            try:
                if prepare is not None:
                    prepare(connection)
                with connection.begin():
                    yield connection
            except self._db_errors as exc:
                raise StoreError(f"{what} failed on {self._location}: {_reason(exc)}") from exc

    # -- schema ------------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        """The database's schema revision, or None if it has no kredun schema yet.

        One plain query, so a normal start-up never imports alembic.
        """
        with self._lock, self._open() as connection:
            try:
                return connection.execute(_SELECT_REVISION).scalar()
            except DBAPIError:  # no alembic_version table yet
                return None

    def ensure_schema(self) -> None:
        """Create or upgrade the schema if the database is not at `HEAD_REVISION`.

        Safe when several processes start at once: migrations run under a lock
        (`BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL) and re-read the revision
        once they hold it, so only the first one migrates.
        """
        if self.current_revision() != HEAD_REVISION and not self._create_fresh_schema():
            self.upgrade()

    def _lock_schema(self, connection: Connection) -> None:
        """Serialize schema changes across processes (SQLite: the BEGIN IMMEDIATE lock)."""
        if self._dialect == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK_KEY}
            )

    def _create_fresh_schema(self) -> bool:
        """Give an empty database the head schema straight from the table definitions.

        That is what the migrations build (a test compares the two), minus the ~0.15 s of
        importing and running alembic on a `kredun run` in a new directory. Returns False
        when the database is not empty, so the caller migrates instead.
        """
        with self._connect("creating the schema", write=True) as connection:
            self._lock_schema(connection)
            existing = inspect(connection).get_table_names()
            if existing:
                return False
            metadata.create_all(connection)
            _alembic_version_table.create(connection)
            connection.execute(_alembic_version_table.insert(), {"version_num": HEAD_REVISION})
        return True

    def upgrade(self) -> tuple[str | None, str]:
        """Run the migrations up to head; returns the (old, new) revision (`kredun db upgrade`)."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.util import CommandError

        with self._connect("upgrading the schema", write=True) as connection:
            self._lock_schema(connection)
            old = MigrationContext.configure(connection).get_current_revision()
            if old == HEAD_REVISION:
                return old, old
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot upgrade {self._location} from schema revision {old!r} "
                    f"(this kredun knows up to {HEAD_REVISION!r}; was it created by a newer "
                    f"kredun?): {_one_line(str(exc))}"
                ) from exc
            if MigrationContext.configure(connection).get_current_revision() != HEAD_REVISION:
                # Caught by a test too; checked here because a mismatch would otherwise make
                # every start-up silently import alembic and re-run this.
                raise StoreError(
                    f"migrations did not end at {HEAD_REVISION!r}, the revision this kredun "
                    "expects: HEAD_REVISION in kredun.provenance.schema is stale"
                )
        return old, HEAD_REVISION

    # -- writing -----------------------------------------------------------------------------

    def write(self, batch: ProvenanceBatch) -> None:
        """Write a whole batch in one transaction: all of it or, on error, none of it.

        Tasks, values and calls are insert-or-ignore (they are content-addressed); executions
        and jobs are upserted by id, so the scheduler can write a job as RUNNING and later as
        DONE. Raises `StoreError` naming the table that failed.
        """
        if not batch:
            return
        if not self._writers:
            # Built on first write, so read-only commands never pay for compiling them.
            self._writers = _writers(self._engine.dialect)
        writers = self._writers
        tables = [writer for _, writer in writers]
        for call in batch.calls:
            call.scope = self.scope
        for value in batch.values:
            value.scope = self.scope
        for final in batch.finals:
            final.scope = self.scope
        with self._connect(
            "writing a provenance batch", write=True, prepare=lambda c: prepare(c, tables)
        ) as connection:
            for attribute, writer in writers:
                records = getattr(batch, attribute)
                if not records:
                    continue
                try:
                    writer.write(connection, records)
                except self._db_errors as exc:
                    raise StoreError(
                        f"writing {len(records)} {attribute} to {writer.table.name} failed on "
                        f"{self._location}, nothing from the batch was written: {_reason(exc)}"
                    ) from exc

    # -- reading -----------------------------------------------------------------------------

    def _by_keys(
        self, statement: Select[Any], keys: Iterable[str], what: str
    ) -> Iterator[tuple[Any, ...]]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return
        with self._connect(what) as connection:
            for chunk in _chunks(unique):
                yield from connection.execute(statement, {"keys": chunk, "scope": self.scope})

    def lookup_calls(self, eval_hashes: Iterable[str]) -> dict[str, CallRecord]:
        """The cached calls of this store's scope among `eval_hashes`, keyed by eval hash;
        misses are absent."""
        rows = self._by_keys(self._select_calls, eval_hashes, "looking up cached calls")
        return {row[0]: CallRecord(*row) for row in rows}

    def lookup_finals(self, call_keys: Iterable[str]) -> dict[str, FinalRecord]:
        """The final results recorded for `call_keys` (see FinalRecord), in one query per
        500 keys; misses are absent."""
        rows = self._by_keys(self._select_finals, call_keys, "looking up final results")
        return {row[0]: FinalRecord(*row) for row in rows}

    def value_records(self, hashes: Iterable[str]) -> dict[str, ValueRecord]:
        """The value rows of this store's scope among `hashes`, keyed by hash; unknown
        hashes are absent."""
        rows = self._by_keys(self._select_values, hashes, "reading values")
        return {row[0]: ValueRecord(*row) for row in rows}

    def value_data(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The inline bytes of the values among `hashes` that have them.

        Values stored only in the value store (data is NULL) and unknown hashes are absent.
        """
        rows = self._by_keys(self._select_value_data, hashes, "reading value data")
        return {value_hash: bytes(data) for value_hash, data in rows}

    def get_task(self, task_hash: str) -> TaskRecord | None:
        """The task with this hash, or None."""
        with self._connect("reading a task") as connection:
            row = connection.execute(_SELECT_TASK, {"hash": task_hash}).first()
        return None if row is None else TaskRecord(*_fields(row))

    def recent_executions(self, limit: int = 20) -> list[ExecutionRecord]:
        """The `limit` most recently started executions, newest first."""
        statement = _SELECT_EXECUTIONS.order_by(
            execution_table.c.start_time.desc(), execution_table.c.id.desc()
        ).limit(limit)
        with self._connect("listing executions") as connection:
            return [ExecutionRecord(*_fields(row)) for row in connection.execute(statement)]

    def find_execution(self, id_prefix: str) -> ExecutionRecord:
        """The execution whose id is, or uniquely starts with, `id_prefix`.

        Raises `NotFoundError` if none matches and `AmbiguousIdError` if several do.
        """
        statement = (
            _SELECT_EXECUTIONS.where(execution_table.c.id.startswith(id_prefix, autoescape=True))
            .order_by(execution_table.c.id)
            .limit(2)
        )
        with self._connect("finding an execution") as connection:
            rows = connection.execute(statement).all()
        if not rows:
            raise NotFoundError(f"no execution id starts with {id_prefix!r}")
        # Ordered by id, an exact match comes first and wins over longer ids it prefixes.
        if len(rows) > 1 and rows[0].id != id_prefix:
            raise AmbiguousIdError(
                f"execution id prefix {id_prefix!r} is ambiguous "
                f"(matches {rows[0].id}, {rows[1].id}, ...); give more characters"
            )
        return ExecutionRecord(*_fields(rows[0]))

    def jobs_of(self, execution_id: str) -> list[JobRecord]:
        """The jobs of one execution, in the order they started."""
        with self._connect("listing jobs") as connection:
            result = connection.execute(_SELECT_JOBS_OF, {"execution_id": execution_id})
            return [JobRecord(*_fields(row)) for row in result]

    def descendants(self, job_id: str) -> list[JobRecord]:
        """Every job under `job_id` (its children, theirs, ...), in the order they started."""
        tree = (
            select(job_table.c.id)
            .where(job_table.c.parent_id == job_id)
            .cte("subtree", recursive=True)
        )
        # UNION, not UNION ALL: a row cannot repeat, so even a damaged parent link that
        # forms a cycle ends the recursion.
        tree = tree.union(select(job_table.c.id).where(job_table.c.parent_id == tree.c.id))
        statement = (
            _select_records(job_table, _JOB_COLUMNS)
            .where(job_table.c.id.in_(select(tree.c.id)))
            .order_by(job_table.c.start_time, job_table.c.id)
        )
        return self._records(statement, JobRecord, "listing the jobs under a job")

    def job_counts(self, execution_id: str) -> dict[str, dict[str, int]]:
        """task name -> status -> number of jobs, for the status tables `kredun` prints."""
        counts: dict[str, dict[str, int]] = {}
        with self._connect("counting jobs") as connection:
            result = connection.execute(_SELECT_JOB_COUNTS, {"execution_id": execution_id})
            for row in result:
                task_name, status, count = _fields(row)
                counts.setdefault(task_name, {})[status] = count
        return counts

    # -- questions (kredun log) ---------------------------------------------------------------

    def _records(self, statement: Select[Any], record_type: type, what: str) -> list[Any]:
        with self._connect(what) as connection:
            return [record_type(*_fields(row)) for row in connection.execute(statement)]

    def _unique(self, statement: Select[Any], key: Column[str], prefix: str, what: str) -> Any:
        """The one row whose `key` is, or uniquely starts with, `prefix`."""
        statement = statement.where(key.startswith(prefix, autoescape=True)).order_by(key).limit(2)
        with self._connect(f"finding a {what}") as connection:
            rows = connection.execute(statement).all()
        if not rows:
            raise NotFoundError(f"no {what} id starts with {prefix!r}")
        if len(rows) > 1 and rows[0][0] != prefix:
            raise AmbiguousIdError(
                f"{what} id prefix {prefix!r} is ambiguous "
                f"(matches {rows[0][0]}, {rows[1][0]}, ...); give more characters"
            )
        return rows[0]

    def find_job(self, id_prefix: str) -> JobRecord:
        """The job whose id (dashes allowed, as in a UUID) is or uniquely starts with the
        prefix. Raises NotFoundError or AmbiguousIdError."""
        select_jobs = _select_records(job_table, _JOB_COLUMNS)
        row = self._unique(select_jobs, job_table.c.id, normalize_id(id_prefix), "job")
        return JobRecord(*_fields(row))

    def find_value(self, hash_prefix: str) -> ValueRecord:
        # The hash first, as `_unique` reports ids from the first column.
        columns = [value_table.c.hash, *(value_table.c[name] for name in _VALUE_COLUMNS)]
        statement = select(*columns).where(value_table.c.scope == self.scope)
        row = self._unique(statement, value_table.c.hash, hash_prefix.lower(), "value")
        return ValueRecord(*_fields(row)[1:])

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
        statement = _select_records(job_table, _JOB_COLUMNS)
        if task is not None:
            statement = statement.where(job_table.c.task_name == task)
        if status is not None:
            statement = statement.where(job_table.c.status == status)
        if eval_hash is not None:
            statement = statement.where(job_table.c.eval_hash == eval_hash)
        if before is not None:
            statement = statement.where(job_table.c.start_time < before)
        if tag is not None:
            statement = statement.where(job_table.c.id.in_(_tagged(*tag)))
        statement = statement.order_by(job_table.c.start_time.desc(), job_table.c.id.desc())
        return self._records(statement.limit(limit), JobRecord, "finding jobs")

    def find_executions(
        self,
        status: str | None = None,
        tag: tuple[str, str | None] | None = None,
        parent_job_id: str | None = None,
        limit: int = 20,
    ) -> list[ExecutionRecord]:
        """Executions matching every filter given, newest first."""
        statement = _SELECT_EXECUTIONS
        if status is not None:
            statement = statement.where(execution_table.c.status == status)
        if parent_job_id is not None:
            statement = statement.where(execution_table.c.parent_job_id == parent_job_id)
        if tag is not None:
            statement = statement.where(execution_table.c.id.in_(_tagged(*tag)))
        statement = statement.order_by(
            execution_table.c.start_time.desc(), execution_table.c.id.desc()
        ).limit(limit)
        return self._records(statement, ExecutionRecord, "finding executions")

    def subruns_of(self, job_id: str) -> list[ExecutionRecord]:
        return self.find_executions(parent_job_id=job_id)

    def arguments_of(self, job_id: str) -> list[ArgumentRecord]:
        statement = (
            _select_records(argument_table, _ARGUMENT_COLUMNS)
            .where(argument_table.c.job_id == job_id)
            .order_by(argument_table.c.position)
        )
        return self._records(statement, ArgumentRecord, "reading arguments")

    def edges_of(self, job_id: str) -> list[EdgeRecord]:
        """The call-graph edges into and out of a job."""
        statement = _select_records(edge_table, _EDGE_COLUMNS).where(
            (edge_table.c.dst_job_id == job_id) | (edge_table.c.src_job_id == job_id)
        )
        return self._records(statement, EdgeRecord, "reading the call graph")

    def files_of(self, job_id: str) -> list[FileRecord]:
        statement = (
            _select_records(file_table, _FILE_COLUMNS)
            .where(file_table.c.job_id == job_id)
            .order_by(file_table.c.role, file_table.c.path)
        )
        return self._records(statement, FileRecord, "reading files")

    def file_history(self, path: str) -> list[tuple[FileRecord, JobRecord]]:
        """Every job that read or wrote `path`, newest first."""
        statement = (
            select(*(file_table.c[n] for n in _FILE_COLUMNS))
            .add_columns(*(job_table.c[n] for n in _JOB_COLUMNS))
            .join(job_table, job_table.c.id == file_table.c.job_id)
            .where(file_table.c.path == path)
            .order_by(job_table.c.start_time.desc())
        )
        split = len(_FILE_COLUMNS)
        with self._connect("reading a file's history") as connection:
            return [
                (FileRecord(*row[:split]), JobRecord(*row[split:]))
                for row in connection.execute(statement)
            ]

    def tags_of(self, entity_id: str) -> list[TagRecord]:
        statement = (
            _select_records(tag_table, _TAG_COLUMNS)
            .where(tag_table.c.entity_id == entity_id)
            .order_by(tag_table.c.key, tag_table.c.value)
        )
        return self._records(statement, TagRecord, "reading tags")

    def tagged(self, key: str, value: str | None = None) -> list[TagRecord]:
        """The tags `key` (=`value`, when given) on every entity carrying them."""
        statement = _select_records(tag_table, _TAG_COLUMNS).where(tag_table.c.key == key)
        if value is not None:
            statement = statement.where(tag_table.c.value == value)
        statement = statement.order_by(tag_table.c.entity_kind, tag_table.c.entity_id)
        return self._records(statement, TagRecord, "finding tagged records")

    def all_tags(self) -> list[tuple[str, str, int]]:
        """(key, value, how many entities carry it)."""
        statement = (
            select(tag_table.c.key, tag_table.c.value, func.count())
            .group_by(tag_table.c.key, tag_table.c.value)
            .order_by(tag_table.c.key, tag_table.c.value)
        )
        with self._connect("listing tags") as connection:
            return [tuple(row) for row in connection.execute(statement)]  # type: ignore[misc]

    def remove_tags(self, entity_id: str, key: str, value: str | None = None) -> int:
        """Remove a tag (every value of `key` when `value` is None); returns how many."""
        statement = tag_table.delete().where(
            (tag_table.c.entity_id == entity_id) & (tag_table.c.key == key)
        )
        if value is not None:
            statement = statement.where(tag_table.c.value == value)
        with self._connect("removing tags", write=True) as connection:
            return connection.execute(statement).rowcount

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection (of a pool of its own). The store must not be used
        afterwards."""
        if not self._shared_engine:
            self._engine.dispose()

    def __enter__(self) -> ProvenanceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProvenanceStore({self.display_uri!r})"


def _tagged(key: str, value: str | None) -> Select[Any]:
    """The ids of entities carrying tag `key` (with `value`, when given)."""
    statement = select(tag_table.c.entity_id).where(tag_table.c.key == key)
    return statement if value is None else statement.where(tag_table.c.value == value)


def _fields(row: Any) -> tuple[Any, ...]:
    """A row's columns, untyped: each SELECT lists its record's fields in order."""
    return tuple(row)
