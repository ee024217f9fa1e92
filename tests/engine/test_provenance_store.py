"""The SQL provenance store on SQLite and PostgreSQL: schema, writes, reads, errors, concurrency.

Tests taking `store_uri` run twice, `[sqlite]` and `[postgres]`; the PostgreSQL runs skip
without KREDUN_TEST_POSTGRES_URI (see tests/support/postgres.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from kredun.errors import DatabaseURIError, StoreError
from kredun.provenance.base import ProvenanceBackend
from kredun.provenance.memory import MemoryProvenanceStore
from kredun.provenance.records import (
    CallRecord,
    ExecutionRecord,
    FinalRecord,
    JobRecord,
    ProvenanceBatch,
    TaskRecord,
    ValueRecord,
)
from kredun.provenance.schema import HEAD_REVISION, metadata
from kredun.provenance.store import (
    AmbiguousIdError,
    NotFoundError,
    ProvenanceStore,
)
from sqlalchemy import create_engine, inspect, text

from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
TABLES = {
    "kredun_task", "kredun_value", "kredun_call", "kredun_final", "kredun_execution", "kredun_job"
}  # fmt: skip


def h(label: object) -> str:
    """A 40-hex content hash standing in for a real one."""
    return uuid.uuid5(uuid.NAMESPACE_OID, str(label)).hex + "00000000"


def new_id() -> str:
    return uuid.uuid4().hex


def execution(**changes: object) -> ExecutionRecord:
    record = ExecutionRecord(
        id=new_id(), args="kredun run wf.py main", status="RUNNING", start_time=T0
    )
    return replace(record, **changes)


def job(execution_id: str, n: int = 0, **changes: object) -> JobRecord:
    record = JobRecord(
        id=new_id(),
        execution_id=execution_id,
        parent_id=None,
        task_name="ns.add",
        task_hash=h("task"),
        eval_hash=h(("eval", n)),
        status="DONE",
        executor="local",
        start_time=T0 + timedelta(seconds=n),
        end_time=T0 + timedelta(seconds=n, milliseconds=5),
        result_hash=h(("value", n)),
    )
    return replace(record, **changes)


def value(n: int, data: bytes | None = b"\x80\x04K\x03.") -> ValueRecord:
    return ValueRecord(h(("value", n)), "builtins.int", str(n), 5, data)


def call(n: int) -> CallRecord:
    return CallRecord(h(("eval", n)), h("task"), h(("args", n)), h(("value", n)), "value")


@pytest.fixture
def store(store_uri: str) -> Iterator[ProvenanceStore]:  # noqa: F811
    with ProvenanceStore(store_uri) as opened:
        opened.ensure_schema()
        yield opened


# -- schema -----------------------------------------------------------------------------------


def test_schema_is_created_from_empty_and_ensure_is_idempotent(store_uri: str) -> None:  # noqa: F811
    with ProvenanceStore(store_uri) as store:
        assert store.current_revision() is None
        store.ensure_schema()
        assert store.current_revision() == HEAD_REVISION
        store.ensure_schema()
        assert store.upgrade() == (HEAD_REVISION, HEAD_REVISION)
    engine = create_engine(store_uri)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_upgrade_reports_old_and_new_revision(store_uri: str) -> None:  # noqa: F811
    with ProvenanceStore(store_uri) as store:
        assert store.upgrade() == (None, HEAD_REVISION)


def test_head_revision_is_alembic_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_migrations_create_exactly_the_schema_metadata_describes(store_uri: str) -> None:  # noqa: F811
    # A fresh database is created from the metadata directly (ensure_schema's fast path);
    # this proves the migrations build the very same schema.
    with ProvenanceStore(store_uri) as store:
        assert store.upgrade() == (None, HEAD_REVISION)
        with store._engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []


def test_fresh_database_gets_the_schema_without_alembic(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    program = (
        "import sys\n"
        "from kredun.provenance.store import ProvenanceStore\n"
        f"store = ProvenanceStore({uri!r})\n"
        "store.ensure_schema()\n"
        "print('alembic' in sys.modules, store.current_revision())\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["False", HEAD_REVISION]
    with ProvenanceStore(uri) as store:
        assert store.upgrade() == (HEAD_REVISION, HEAD_REVISION)  # alembic agrees


def test_concurrent_ensure_schema_all_succeed(store_uri: str) -> None:  # noqa: F811
    stores = [ProvenanceStore(store_uri) for _ in range(3)]
    errors = run_threads([store.ensure_schema for store in stores])
    assert errors == []
    assert {store.current_revision() for store in stores} == {HEAD_REVISION}
    for store in stores:
        store.close()


def test_connections_racing_to_set_up_a_new_sqlite_file_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL fails at once when another connection does it at the same
    # moment (no busy handler for that lock); it happened about once in ten tries.
    for attempt in range(30):
        stores = [ProvenanceStore(f"sqlite:///{tmp_path / f'{attempt}.db'}") for _ in range(4)]
        try:
            assert run_threads([store.ensure_schema for store in stores]) == []
        finally:
            for store in stores:
                store.close()


def test_ensure_schema_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'k.db'}"
    with ProvenanceStore(uri) as store:
        store.ensure_schema()
    program = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from kredun.provenance.store import ProvenanceStore\n"
        f"store = ProvenanceStore({uri!r})\n"
        "store.ensure_schema()\n"
        "print('alembic' in sys.modules, round(time.perf_counter() - start, 3))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout.split()
    print(f"import + ensure_schema on a current database: {output[1]} s")
    assert output[0] == "False"


def test_database_from_a_newer_kredun_is_refused(store: ProvenanceStore) -> None:
    with store._engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(StoreError, match=r"'ffff'.*newer kredun"):
        store.ensure_schema()


# -- writing and reading ----------------------------------------------------------------------


def test_round_trip_of_every_record_type(store: ProvenanceStore) -> None:
    task = TaskRecord(h("task"), "ns.add", "ns", "@task\ndef add(a, b):\n    return a + b\n")
    inline, external = value(1), value(2, data=None)
    ex = execution(
        status="DONE",
        end_time=T0 + timedelta(seconds=3),
        result_hash=inline.hash,
        result_preview="1",
    )
    parent = job(ex.id, 1)
    child = job(
        ex.id,
        2,
        parent_id=parent.id,
        eval_hash=None,
        status="FAILED",
        result_hash=None,
        error="ValueError: boom",
        traceback="Traceback ...\nValueError: boom",
        attempt=2,
    )
    store.write(ProvenanceBatch([task], [inline, external], [call(1)], [parent, child], [ex]))

    assert store.get_task(task.hash) == task
    assert store.get_task(h("missing")) is None
    assert store.value_records([inline.hash, external.hash, h("x")]) == {
        inline.hash: inline,
        external.hash: external,
    }
    assert store.value_data([inline.hash, external.hash, h("x")]) == {inline.hash: inline.data}
    assert store.lookup_calls([h(("eval", 1)), h(("eval", 2))]) == {h(("eval", 1)): call(1)}
    assert store.find_execution(ex.id) == ex
    assert store.recent_executions() == [ex]
    assert store.jobs_of(ex.id) == [parent, child]
    assert store.job_counts(ex.id) == {"ns.add": {"DONE": 1, "FAILED": 1}}
    assert store.jobs_of(new_id()) == []
    assert store.job_counts(new_id()) == {}


def test_timestamps_come_back_as_the_same_instant_in_utc(store: ProvenanceStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = execution(start_time=datetime(2025, 3, 1, 14, 0, 0, 5, tzinfo=plus_two))
    naive = execution(start_time=datetime(2025, 3, 1, 13, 0, 0))  # taken to be UTC
    store.write(ProvenanceBatch(executions=[local, naive]))
    found = {record.id: record.start_time for record in store.recent_executions()}
    assert found[local.id] == datetime(2025, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert found[naive.id] == datetime(2025, 3, 1, 13, 0, 0, tzinfo=UTC)
    assert {start.utcoffset() for start in found.values()} == {timedelta(0)}


def test_content_addressed_rows_are_insert_or_ignore_calls_keep_the_latest(
    store: ProvenanceStore,
) -> None:
    task = TaskRecord(h("task"), "ns.add", "ns", "v1")
    store.write(ProvenanceBatch(tasks=[task], values=[value(1)], calls=[call(1)]))
    store.write(
        ProvenanceBatch(
            tasks=[replace(task, source="v2")],
            values=[replace(value(1), preview="other"), value(2)],
            calls=[replace(call(1), result_kind="plan"), call(2)],
        )
    )
    assert store.get_task(task.hash) == task
    assert store.value_records([value(1).hash, value(2).hash]) == {
        value(1).hash: value(1),
        value(2).hash: value(2),
    }
    newest = replace(call(1), result_kind="plan")
    assert store.lookup_calls([call(1).eval_hash]) == {call(1).eval_hash: newest}


def test_a_value_row_takes_missing_bytes_and_facts_from_a_later_record(
    store: ProvenanceStore,
) -> None:
    check_value_rows_are_filled_in(store)


def test_the_memory_store_fills_value_rows_in_alike() -> None:
    check_value_rows_are_filled_in(MemoryProvenanceStore())


def check_value_rows_are_filled_in(store: ProvenanceBackend) -> None:
    # First described only (as a subrun's provenance fragment does), then by a real job.
    described = replace(value(1), data=None, preview="as described")
    full = replace(value(1), truth=True, holds_files=False)
    other = replace(value(2), data=None)
    store.write(ProvenanceBatch(values=[described, value(3)]))
    store.write(ProvenanceBatch(values=[full, other, replace(value(3), truth=False)]))
    filled = replace(described, data=full.data, truth=True, holds_files=False)
    assert store.value_records([full.hash, other.hash, value(3).hash]) == {
        full.hash: filled,  # what the row lacked; its description stays
        other.hash: other,
        value(3).hash: replace(value(3), truth=False),
    }
    # A row that has them keeps them.
    store.write(ProvenanceBatch(values=[replace(full, data=b"x", truth=False, holds_files=True)]))
    assert store.value_records([full.hash]) == {full.hash: filled}
    assert store.value_data([full.hash]) == {full.hash: full.data}


def test_final_results_are_looked_up_in_one_batch_and_keep_the_latest(
    store: ProvenanceStore,
) -> None:
    keys = [h(("eval", n)) for n in range(1200)] + [f"{h(('eval', 0))}@{h('context')}"]
    finals = [FinalRecord(key, h(("value", i)), f"{h('a')} {h('b')}") for i, key in enumerate(keys)]
    store.write(ProvenanceBatch(finals=finals))
    store.write(ProvenanceBatch(finals=[replace(finals[0], result_hash=h("newer"))]))
    found = store.lookup_finals([*keys, h("missing")])
    assert found == {
        record.call_key: record for record in [replace(finals[0], result_hash=h("newer")),
                                               *finals[1:]]
    }  # fmt: skip
    assert store.lookup_finals([]) == {}


def test_jobs_and_executions_are_upserted_by_id(store: ProvenanceStore) -> None:
    ex = execution()
    running = job(ex.id, status="RUNNING", end_time=None, result_hash=None)
    store.write(ProvenanceBatch(jobs=[running], executions=[ex]))
    assert store.jobs_of(ex.id) == [running]

    done = replace(running, status="DONE", end_time=T0 + timedelta(seconds=1), result_hash=h("r"))
    finished = replace(ex, status="DONE", end_time=T0 + timedelta(seconds=2), result_preview="3")
    store.write(ProvenanceBatch(jobs=[done], executions=[finished]))
    assert store.jobs_of(ex.id) == [done]
    assert store.find_execution(ex.id) == finished
    assert store.job_counts(ex.id) == {"ns.add": {"DONE": 1}}


def test_duplicates_within_one_batch_last_record_wins(store: ProvenanceStore) -> None:
    ex = execution()
    first = job(ex.id, status="RUNNING")
    last = replace(first, status="DONE", attempt=1)
    store.write(
        ProvenanceBatch(
            values=[value(1), value(1)],
            calls=[call(1), call(1)],
            jobs=[first, last],
            executions=[ex, replace(ex, status="DONE")],
        )
    )
    assert store.jobs_of(ex.id) == [last]
    assert store.find_execution(ex.id).status == "DONE"


def test_empty_batch_and_empty_lookups_touch_nothing(store: ProvenanceStore) -> None:
    store.write(ProvenanceBatch())
    assert store.lookup_calls([]) == {}
    assert store.value_data(iter(())) == {}
    assert store.value_records(set()) == {}


def test_lookups_are_chunked_beyond_500_keys(store: ProvenanceStore) -> None:
    n = 1_234
    store.write(
        ProvenanceBatch(values=[value(i) for i in range(n)], calls=[call(i) for i in range(n)])
    )
    wanted = [h(("eval", i)) for i in range(n + 10)] * 2  # misses and repeats too
    assert len(store.lookup_calls(wanted)) == n
    assert len(store.value_data(value(i).hash for i in range(n))) == n


def test_failed_batch_leaves_nothing_and_earlier_data_intact(store: ProvenanceStore) -> None:
    ex = execution()
    store.write(ProvenanceBatch(values=[value(1)], calls=[call(1)], jobs=[job(ex.id, 1)],
                                executions=[ex]))  # fmt: skip
    orphan = job(new_id(), 2)  # its execution does not exist: the foreign key rejects it
    bad = ProvenanceBatch(
        tasks=[TaskRecord(h("t2"), "ns.t2", "ns", "")],
        values=[value(2)],
        calls=[call(2)],
        jobs=[job(ex.id, 3), orphan],
        executions=[replace(ex, status="FAILED")],
    )
    with pytest.raises(StoreError) as failure:
        store.write(bad)
    message = str(failure.value)
    assert "kredun_job" in message and "nothing from the batch was written" in message
    assert "\n" not in message

    assert store.get_task(h("t2")) is None
    assert store.value_records([value(1).hash, value(2).hash]).keys() == {value(1).hash}
    assert store.lookup_calls([call(1).eval_hash, call(2).eval_hash]).keys() == {call(1).eval_hash}
    assert store.find_execution(ex.id).status == "RUNNING"
    assert [record.eval_hash for record in store.jobs_of(ex.id)] == [h(("eval", 1))]

    # The store is still usable after a failed write.
    store.write(ProvenanceBatch(values=[value(2)]))
    assert value(2).hash in store.value_records([value(2).hash])


def test_a_constraint_violation_fails_cleanly(store: ProvenanceStore) -> None:
    ex = execution()
    broken = job(ex.id, status=None)  # NOT NULL
    with pytest.raises(StoreError, match="kredun_job"):
        store.write(ProvenanceBatch(values=[value(1)], jobs=[broken], executions=[ex]))
    assert store.value_records([value(1).hash]) == {}
    assert store.recent_executions() == []


# -- finding executions -----------------------------------------------------------------------


def test_find_execution_by_prefix(store: ProvenanceStore) -> None:
    check_find_execution(store)


def test_the_memory_store_finds_executions_and_fails_alike() -> None:
    check_find_execution(MemoryProvenanceStore())


def check_find_execution(store: ProvenanceBackend) -> None:
    """Both stores: the same answers, the same error classes and messages."""
    a = execution(id="abc1" + "0" * 28)
    b = execution(id="abc2" + "0" * 28, start_time=T0 + timedelta(minutes=1))
    c = execution(id="de" + "0" * 30, start_time=T0 + timedelta(minutes=2))
    store.write(ProvenanceBatch(executions=[a, b, c]))

    assert store.find_execution("abc1") == a
    assert store.find_execution("d") == c
    assert store.find_execution(b.id) == b
    with pytest.raises(AmbiguousIdError, match="'abc'"):
        store.find_execution("abc")
    with pytest.raises(NotFoundError, match="'fff'"):
        store.find_execution("fff")
    with pytest.raises(NotFoundError):
        store.find_execution("ab_")  # LIKE wildcards are literal characters
    with pytest.raises(NotFoundError):
        store.find_execution("%")
    assert issubclass(NotFoundError, LookupError)
    assert [record.id for record in store.recent_executions()] == [c.id, b.id, a.id]
    assert [record.id for record in store.recent_executions(limit=1)] == [c.id]


# -- bad URIs and unreachable databases -------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("garbage", "cannot parse it (expected sqlite:///PATH"),
        ("", "cannot parse it"),
        ("mysql://kredun:s3cret@db.example/kredun", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://kredun:s3cret@db.example/kredun", "unsupported driver"),
        ("postgresql+nosuchdriver://kredun:s3cret@db.example/kredun", "unsupported driver"),
        ("postgresql://kredun:s3cret@db.example:notaport/kredun", "cannot"),
    ],
)
def test_bad_uri_is_a_one_line_database_uri_error(uri: str, problem: str) -> None:
    with pytest.raises(DatabaseURIError) as failure:
        ProvenanceStore(uri)
    message = str(failure.value)
    assert problem in message
    assert "\n" not in message
    assert "s3cret" not in message
    assert uri.replace("s3cret", "***") in message


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    uri = f"sqlite:///{blocker}/sub/kredun.db"
    with pytest.raises(DatabaseURIError, match="cannot create directory") as failure:
        ProvenanceStore(uri)
    assert uri in str(failure.value)


def test_missing_postgres_driver_is_a_database_uri_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(
        DatabaseURIError, match=r"driver 'psycopg' is not available.*kredun\[postgres\]"
    ):
        ProvenanceStore("postgresql://kredun:s3cret@db.example/kredun")


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    with ProvenanceStore(f"sqlite:///{tmp_path}/a/b/kredun.db") as store:
        store.ensure_schema()
    assert (tmp_path / "a" / "b" / "kredun.db").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://nohost:1/x?connect_timeout=3",
        "postgresql://kredun:s3cret@127.0.0.1:1/x?connect_timeout=3",
    ],
)
def test_unreachable_postgres_is_a_quick_one_line_store_error(uri: str) -> None:
    store = ProvenanceStore(uri)  # connects lazily
    started = time.monotonic()
    with pytest.raises(StoreError) as failure:
        store.ensure_schema()
    elapsed = time.monotonic() - started
    message = str(failure.value)
    host = uri.split("@")[-1].split("//")[-1].split("/")[0]
    assert f"cannot connect to PostgreSQL at {host}" in message
    assert "\n" not in message and "s3cret" not in message
    assert elapsed < 10, f"took {elapsed:.1f}s"


# -- concurrency ------------------------------------------------------------------------------


def run_threads(targets: list) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(target) -> None:
        try:
            start.wait()
            target()
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def write_many(store: ProvenanceStore, worker: int, batches: int = 30, per_batch: int = 20) -> None:
    """Like a scheduler: one execution, jobs RUNNING then DONE, shared and private values."""
    ex = execution()
    store.write(ProvenanceBatch(executions=[ex]))
    for b in range(batches):
        ns = [b * per_batch + i for i in range(per_batch)]
        jobs = [job(ex.id, n, status="RUNNING") for n in ns]
        store.write(ProvenanceBatch(jobs=jobs))
        # Values and calls overlap between workers: both record the same content.
        store.write(
            ProvenanceBatch(
                values=[value(n) for n in ns] + [value(-1 - worker * 10_000 - n) for n in ns],
                calls=[call(n) for n in ns],
                jobs=[replace(record, status="DONE") for record in jobs],
            )
        )
        assert store.lookup_calls(call(n).eval_hash for n in ns).keys() == {
            call(n).eval_hash for n in ns
        }
    store.write(ProvenanceBatch(executions=[replace(ex, status="DONE")]))


def test_two_stores_on_one_database_write_concurrently(store_uri: str) -> None:  # noqa: F811
    stores = [ProvenanceStore(store_uri) for _ in range(2)]
    stores[0].ensure_schema()
    targets = [
        lambda store=store, worker=worker: write_many(store, worker)
        for worker, store in enumerate(stores * 2)  # two threads per store
    ]
    assert run_threads(targets) == []
    executions = stores[1].recent_executions()
    assert len(executions) == 4 and {record.status for record in executions} == {"DONE"}
    for record in executions:
        assert stores[0].job_counts(record.id) == {"ns.add": {"DONE": 600}}
    assert len(stores[1].value_records(value(n).hash for n in range(600))) == 600
    for store in stores:
        store.close()


def test_in_memory_store_is_shared_by_threads() -> None:
    with ProvenanceStore("sqlite://") as store:
        store.ensure_schema()
        assert run_threads([lambda w=w: write_many(store, w, batches=10) for w in range(4)]) == []
        executions = store.recent_executions()
        assert len(executions) == 4
        assert {store.job_counts(record.id)["ns.add"]["DONE"] for record in executions} == {200}
    with ProvenanceStore("sqlite:///:memory:") as other:
        other.ensure_schema()
        assert other.recent_executions() == []  # a separate, empty database


# -- volume -----------------------------------------------------------------------------------


def test_a_50000_job_batch(store: ProvenanceStore) -> None:
    n = 50_000
    ex = execution()
    batch = ProvenanceBatch(
        tasks=[TaskRecord(h("task"), "ns.add", "ns", "def add(a, b): ...")],
        values=[value(i) for i in range(n)],
        calls=[call(i) for i in range(n)],
        jobs=[job(ex.id, i) for i in range(n)],
        executions=[ex],
    )
    started = time.perf_counter()
    store.write(batch)
    elapsed = time.perf_counter() - started
    print(f"\n{store.display_uri.split(':')[0]}: wrote {n} jobs + values + calls in {elapsed:.2f}s")
    assert store.job_counts(ex.id) == {"ns.add": {"DONE": n}}
    assert len(store.lookup_calls(record.eval_hash for record in batch.calls)) == n
