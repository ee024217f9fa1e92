"""A subrun's nested scheduler in a job keeps its cache entries in the job's value store (the
call index), so a later subrun of the same cache scope replays its inner calls."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kredun import File, Scheduler, subrun, task
from kredun.errors import StoreError
from kredun.hashing import hash_bytes
from kredun.provenance import callindex
from kredun.provenance.callindex import (
    CallIndexStore,
    call_index_key,
    encode_call,
    final_index_key,
)
from kredun.provenance.records import (
    CallRecord,
    FinalRecord,
    JobRecord,
    ProvenanceBatch,
    ValueRecord,
)
from kredun.valuestore import INLINE_VALUE_LIMIT, DirectoryValueStore, MemoryValueStore

from tests.support.worker_executor import TYPE as WORKER_PROCESS

kredun_namespace = "indextest"

EVAL, TASK, ARGS = "e" * 40, "1" * 40, "2" * 40
SMALL = b"small result"
RESULT = hash_bytes(SMALL)


class CountingStore(MemoryValueStore):
    """A memory value store that counts reads and can refuse writes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.refuse: set[str] = set()

    def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        self.reads.append(value_hash)
        return super().get(value_hash, max_bytes)

    def put(self, value_hash: str, data: bytes, replace: bool = False) -> None:
        if value_hash in self.refuse:
            raise StoreError(f"cannot write {value_hash[:8]}")
        super().put(value_hash, data, replace)


def call(result_hash: str = RESULT) -> CallRecord:
    return CallRecord(EVAL, TASK, ARGS, result_hash, "value")


def recorded() -> ProvenanceBatch:
    """What a scheduler flushes for one call whose small result it kept inline."""
    final = FinalRecord(f"{EVAL}@{'c' * 40}", RESULT, f"{TASK} {ARGS}")
    inline = ValueRecord(RESULT, "builtins.bytes", "b'small result'", len(SMALL), SMALL)
    return ProvenanceBatch(calls=[call()], finals=[final], values=[inline])


# -- the index itself -----------------------------------------------------------------------


def test_an_entry_written_by_one_store_is_read_by_the_next(tmp_path: Path) -> None:
    values = DirectoryValueStore(tmp_path)
    batch = recorded()
    CallIndexStore(values).write(batch)
    # The result was inline (in memory only): it is in the value store now, for a hit to load.
    assert values.get(RESULT) == SMALL
    later = CallIndexStore(DirectoryValueStore(tmp_path))
    assert later.lookup_calls([EVAL, "f" * 40]) == {EVAL: call()}
    (final,) = batch.finals
    assert later.lookup_finals([final.call_key]) == {final.call_key: final}
    # The later store's own memory holds nothing of the earlier run.
    assert later.provenance() == ProvenanceBatch()


def test_a_result_kept_in_an_earlier_flush_is_stored_with_its_entry() -> None:
    values = CountingStore()
    store = CallIndexStore(values)
    inline = ValueRecord(RESULT, "builtins.bytes", "b'small'", len(SMALL), SMALL)
    store.write(ProvenanceBatch(values=[inline]))
    assert not values.exists(RESULT)  # a value alone is no cache entry
    argument = ValueRecord(hash_bytes(b"arg"), "builtins.bytes", "b'arg'", 3, b"arg")
    store.write(ProvenanceBatch(calls=[call()], values=[argument]))
    assert values.get(RESULT) == SMALL
    assert not values.exists(argument.hash)  # only what an entry names is copied out
    assert CallIndexStore(values).lookup_calls([EVAL]) == {EVAL: call()}


def test_a_large_result_already_in_the_value_store_is_not_written_again() -> None:
    values = CountingStore()
    large = b"x" * (INLINE_VALUE_LIMIT + 1)
    values.put(hash_bytes(large), large)
    values.refuse.add(hash_bytes(large))  # a second write would fail the entry
    described = ValueRecord(hash_bytes(large), "builtins.bytes", "b'xxx'", len(large), None)
    cached = call(result_hash=hash_bytes(large))
    CallIndexStore(values).write(ProvenanceBatch(calls=[cached], values=[described]))
    assert CallIndexStore(values).lookup_calls([EVAL]) == {EVAL: cached}


def test_memory_answers_first_and_a_miss_costs_one_read() -> None:
    values = CountingStore()
    store = CallIndexStore(values)
    store.write(ProvenanceBatch(calls=[call()]))
    values.reads.clear()
    assert store.lookup_calls([EVAL]) == {EVAL: call()}
    assert values.reads == []  # this run recorded it: no read
    other = CallIndexStore(values)
    absent = "a" * 40
    assert other.lookup_calls([EVAL, absent, absent]) == {EVAL: call()}
    assert sorted(values.reads) == sorted([call_index_key(EVAL), call_index_key(absent)])
    values.reads.clear()
    assert other.lookup_calls([absent]) == {} and values.reads == []  # known to be missing
    assert other.lookup_finals(["b" * 40]) == {} and values.reads == [final_index_key("b" * 40)]


def entry(**changes: Any) -> bytes:
    document = json.loads(encode_call(call()))
    for name, value in changes.items():
        if value is REMOVED:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document).encode()


REMOVED = object()


@pytest.mark.parametrize(
    "data",
    [
        entry(eval_hash="f" * 40),  # about another call: never this one's result
        entry(version=2),
        entry(version=True),
        entry(result_hash="../../etc/passwd"),
        entry(task_hash="A" * 40),
        entry(args_hash=None),
        entry(result_kind="pickle"),
        entry(scope="ns/other"),
        entry(result_kind=REMOVED),
        b'{"version": 1, "version": 1}',
        b"[]",
        b"\xff not json",
        entry(padding="x" * callindex.MAX_CALL_ENTRY_BYTES),  # over its size: never parsed
    ],
)
def test_an_entry_that_is_not_this_calls_is_a_miss(data: bytes) -> None:
    values = CountingStore()
    values.put(RESULT, SMALL)
    values.put(call_index_key(EVAL), data)
    assert CallIndexStore(values).lookup_calls([EVAL]) == {}
    assert values.reads == [call_index_key(EVAL)]


@pytest.mark.parametrize(
    "task_hashes", ["x", f"{TASK}  {ARGS}", f"{TASK} {ARGS} ", 7, f"{TASK},{ARGS}"]
)
def test_a_malformed_final_is_a_miss(task_hashes: Any) -> None:
    values = CountingStore()
    key = f"{EVAL}@{'c' * 40}"
    document = {"version": 1, "call_key": key, "result_hash": RESULT, "task_hashes": task_hashes}
    values.put(final_index_key(key), json.dumps(document).encode())
    assert CallIndexStore(values).lookup_finals([key]) == {}


def test_an_unreadable_index_is_a_miss() -> None:
    class Broken(CountingStore):
        def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
            raise StoreError("S3 is down")

    assert CallIndexStore(Broken()).lookup_calls([EVAL]) == {}


def test_a_failed_write_is_logged_and_never_names_missing_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = CountingStore()
    values.refuse.add(RESULT)
    store = CallIndexStore(values)
    logging.getLogger("kredun").addHandler(caplog.handler)  # it does not propagate
    try:
        store.write(recorded())
        # The run goes on with its records; the entries naming the unstored result are not
        # kept.
        assert store.lookup_calls([EVAL]) == {EVAL: call()}
        assert not values.exists(call_index_key(EVAL))
        assert "Could not keep 2 of 2 cache entries" in caplog.text
        values.refuse = {call_index_key(EVAL)}
        store.write(ProvenanceBatch(calls=[call()]))
        assert "Could not keep 1 of 1" in caplog.text
    finally:
        logging.getLogger("kredun").removeHandler(caplog.handler)


@task()
def double(x: int) -> int:
    return 2 * x


@task()
def total(a: int, b: int) -> int:
    return a + b


@task()
def both(x: int) -> Any:
    return total(double(x), double(x + 1))


def test_a_later_scheduler_on_the_value_store_replays_calls(tmp_path: Path) -> None:
    values = f"file://{tmp_path / 'values'}"

    def run() -> list[str]:
        index = CallIndexStore(DirectoryValueStore(tmp_path / "values"))
        scheduler = Scheduler(value_store=values, provenance=index)
        assert scheduler.run(both(1)) == 6
        statuses = [job.status for job in scheduler.store.find_jobs(limit=10)]
        scheduler.close()
        return statuses

    assert sorted(run()) == ["DONE"] * 4
    # `both` replays the expression it returned, whose calls replay in turn.
    assert sorted(run()) == ["CACHED"] * 4


# -- through `kredun worker`, as in a Pod ------------------------------------------------------


@task()
def inc(x: int) -> int:
    return x + 1


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def write_text(path: str, text: str) -> File:
    output = File(path)
    output.write(text)
    return output


@task()
def read_text(file: File) -> str:
    return file.read()


INNER = {"executors": {"default": {"type": "local"}}}  # no database: memory and the index


@pytest.fixture
def parent(tmp_path: Path) -> Any:
    """A scheduler whose subrun jobs run in `kredun worker` processes of their own, with
    no database, as in job Pods."""
    values = f"file://{tmp_path / 'values'}"
    scheduler = Scheduler(config={
        "database": {"uri": f"sqlite:///{tmp_path / 'p.db'}"},
        "value_store": {"uri": values},
        "executors": {"pod": {"type": WORKER_PROCESS, "value_store": values}},
    })  # fmt: skip
    yield scheduler
    scheduler.close()


def latest_inner(scheduler: Scheduler) -> list[JobRecord]:
    """The inner jobs of the latest subrun, as its fragment brought them back."""
    store = scheduler.store
    outer = store.find_jobs(task="kredun.subrun", limit=1)[0]
    (inner,) = store.find_executions(parent_job_id=outer.id)
    return store.jobs_of(inner.id)


def inner_jobs(scheduler: Scheduler) -> dict[str, list[str]]:
    """The statuses of the inner jobs of the latest subrun, by task."""
    found: dict[str, list[str]] = {}
    for job in latest_inner(scheduler):
        found.setdefault(job.task_name.rpartition(".")[2], []).append(job.status)
    return {name: sorted(statuses) for name, statuses in found.items()}


def test_a_returned_expression_replays_in_a_fresh_worker(parent: Scheduler) -> None:
    expr = subrun(both(1), executor="pod", config=INNER)
    assert parent.run(expr) == 6
    assert parent.run(expr) == 6
    assert inner_jobs(parent) == {"both": ["CACHED"], "double": ["CACHED", "CACHED"],
                                  "total": ["CACHED"]}  # fmt: skip


def test_a_second_subrun_replays_the_inner_calls(parent: Scheduler) -> None:
    expr = subrun(add(inc(1), inc(2)), executor="pod", config=INNER)
    assert parent.run(expr) == 5
    assert inner_jobs(parent) == {"inc": ["DONE", "DONE"], "add": ["DONE"]}
    assert parent.run(expr) == 5
    assert inner_jobs(parent) == {"inc": ["CACHED", "CACHED"], "add": ["CACHED"]}
    # The index is the job's, in its value store: the parent's database caches no inner call.
    jobs = latest_inner(parent)
    assert parent.store.lookup_calls(job.eval_hash for job in jobs if job.eval_hash) == {}


def test_an_edited_inner_task_reruns_only_its_call(parent: Scheduler) -> None:
    @task(name="leaf")
    def leaf(x: int) -> int:
        return x + 1

    assert parent.run(subrun(add(leaf(1), inc(5)), executor="pod", config=INNER)) == 8

    @task(name="leaf")
    def edited(x: int) -> int:
        return 1 + x  # other code, same result: what it feeds replays

    assert parent.run(subrun(add(edited(1), inc(5)), executor="pod", config=INNER)) == 8
    assert inner_jobs(parent) == {"leaf": ["DONE"], "inc": ["CACHED"], "add": ["CACHED"]}


def test_a_deleted_output_file_reruns_the_call_that_wrote_it(
    parent: Scheduler, tmp_path: Path
) -> None:
    path = tmp_path / "out.txt"
    expr = subrun(read_text(write_text(str(path), "hello")), executor="pod", config=INNER)
    assert parent.run(expr) == "hello"
    assert parent.run(expr) == "hello"
    assert inner_jobs(parent) == {"write_text": ["CACHED"], "read_text": ["CACHED"]}
    path.unlink()
    assert parent.run(expr) == "hello"
    # The file it returned is gone: its cached result is no longer what the call would make.
    assert inner_jobs(parent)["write_text"] == ["DONE"] and path.read_text() == "hello"


def test_a_changed_output_file_reruns_the_call_that_wrote_it(
    parent: Scheduler, tmp_path: Path
) -> None:
    path = tmp_path / "out.txt"
    expr = subrun(write_text(str(path), "hello"), executor="pod", config=INNER)
    parent.run(expr)
    path.write_text("changed by hand")
    assert parent.run(expr).read() == "hello"
    assert inner_jobs(parent) == {"write_text": ["DONE"]}


@task(check_valid="shallow")
def shallow_sum(x: int) -> Any:
    return add(inc(x), inc(x + 1))


def test_a_shallow_call_replays_its_final_value(parent: Scheduler) -> None:
    expr = subrun(shallow_sum(1), executor="pod", config=INNER)
    assert parent.run(expr) == 5
    assert parent.run(expr) == 5
    # Only the shallow call: what it returned is not even looked at.
    assert inner_jobs(parent) == {"shallow_sum": ["CACHED"]}


def test_one_cache_scope_never_replays_anothers_inner_calls(tmp_path: Path) -> None:
    values = f"file://{tmp_path / 'values'}"

    def run_in(scope: str) -> dict[str, list[str]]:
        scheduler = Scheduler(config={
            "database": {"uri": f"sqlite:///{tmp_path / 'p.db'}"},
            "value_store": {"uri": values},
            "tenancy": {"cache_scope": scope},
            "executors": {"pod": {"type": WORKER_PROCESS, "value_store": values}},
        })  # fmt: skip
        try:
            assert scheduler.run(subrun(inc(1), executor="pod", config=INNER)) == 2
            return inner_jobs(scheduler)
        finally:
            scheduler.close()

    assert run_in("ns/team-a") == {"inc": ["DONE"]}
    assert run_in("ns/team-b") == {"inc": ["DONE"]}
    assert run_in("ns/team-a") == {"inc": ["CACHED"]}


def test_a_subrun_naming_a_value_store_keeps_its_index_there(
    parent: Scheduler, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    config = {**INNER, "value_store": {"uri": f"file://{own}"}}
    expr = subrun(inc(41), executor="pod", config=config)
    assert parent.run(expr) == 42
    (job,) = latest_inner(parent)
    assert job.eval_hash and DirectoryValueStore(own).exists(call_index_key(job.eval_hash))
    assert not DirectoryValueStore(tmp_path / "values").exists(call_index_key(job.eval_hash))
    assert parent.run(expr) == 42 and inner_jobs(parent) == {"inc": ["CACHED"]}
