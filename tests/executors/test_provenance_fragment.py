"""A subrun job's provenance fragment: what its nested scheduler recorded in memory where
it ran, exported by the worker, checked by the receiver and recorded under the subrun job
with ids of the receiver's making."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kredun import Scheduler, subrun, task
from kredun.errors import FragmentError
from kredun.executors import ReportOutcome, register_executor_type
from kredun.executors.remote import RemoteExecutor
from kredun.hashing import hash_bytes
from kredun.outcome import FragmentRef, Outcome, parse
from kredun.provenance import fragment as fragments
from kredun.provenance.fragment import export_fragment, parse_fragment, rebase
from kredun.provenance.memory import MemoryProvenanceStore
from kredun.provenance.records import (
    ArgumentRecord,
    EdgeRecord,
    ExecutionRecord,
    FileRecord,
    JobRecord,
    ProvenanceBatch,
    TagRecord,
    TaskRecord,
    ValueRecord,
)
from kredun.provenance.store import ProvenanceStore
from kredun.task import source_task_hash
from kredun.valuestore import ValueStore
from kredun.worker import run_job

from tests.support.worker_executor import TYPE as WORKER_PROCESS

kredun_namespace = "fragtest"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HASH = "b" * 40


@task()
def inc(x: int) -> int:
    return x + 1


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def fail(x: int) -> int:
    raise ValueError(f"no {x}")


@task(version="2")
def versioned(x: int) -> int:
    return x


@task(cache_scope="CSE")
def scoped(x: int) -> int:
    return x


def nested_records(expr: Any) -> ProvenanceBatch:
    """What a nested scheduler on an in-memory store records running `expr`."""
    scheduler = Scheduler()
    scheduler.run(expr, tags={"stage": "inner"})
    store = scheduler.store
    assert isinstance(store, MemoryProvenanceStore)
    return store.provenance()


def job(job_id: str, execution_id: str, parent_id: str | None = None, **fields: Any) -> JobRecord:
    return JobRecord(job_id, execution_id, parent_id, "fragtest.inc", inc.hash, HASH, "DONE",
                     "default", NOW, NOW, HASH, **fields)  # fmt: skip


def execution(execution_id: str) -> ExecutionRecord:
    return ExecutionRecord(execution_id, "inc(1)", "DONE", NOW, NOW, HASH, "2")


def encoded(batch: ProvenanceBatch) -> dict[str, Any]:
    data, _ = export_fragment(batch)
    assert data is not None
    return json.loads(data)


# -- the format ---------------------------------------------------------------------------


def test_what_a_nested_run_recorded_survives_its_fragment() -> None:
    records = nested_records(add(inc(1), inc(2)))
    data, jobs = export_fragment(records)
    assert data is not None and jobs == 3
    parsed = parse_fragment(data)
    for attribute in ("executions", "jobs", "arguments", "edges", "tags", "tasks"):
        assert getattr(parsed, attribute) == getattr(records, attribute), attribute
    assert len(parsed.edges) == 2 and parsed.tags[0].key == "stage"
    # Values travel described, not as bytes; cache entries stay where they were made.
    assert [(v.hash, v.type_name, v.preview, v.size) for v in parsed.values] == [
        (v.hash, v.type_name, v.preview, v.size) for v in records.values
    ]
    assert {(v.data, v.truth, v.holds_files) for v in parsed.values} == {(None, None, None)}
    assert "5" in {v.preview for v in parsed.values}
    assert (parsed.calls, parsed.finals) == ([], [])


def test_what_kredun_log_why_reads_survives_the_fragment() -> None:
    records = nested_records(add(versioned(1), scoped(2)))
    parsed = parse_fragment(export_fragment(records)[0] or b"")
    assert parsed.jobs == records.jobs
    assert "scope:CSE" in {job.cache_off for job in parsed.jobs}
    assert any(job.hashed and '"version"' in job.hashed for job in parsed.jobs)


def test_file_records_survive_their_fragment() -> None:
    batch = ProvenanceBatch(
        executions=[execution("e" * 32)],
        jobs=[job("a" * 32, "e" * 32)],
        files=[FileRecord("a" * 32, "output", "s3://b/k", HASH, "File")],
    )
    assert parse_fragment(export_fragment(batch)[0] or b"").files == batch.files


def test_a_fragment_past_its_bounds_is_not_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    records = nested_records(add(inc(1), inc(2)))
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_JOBS", 2)
    assert export_fragment(records) == (None, 3)
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_JOBS", 10)
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 100)
    assert export_fragment(records) == (None, 3)
    assert export_fragment(ProvenanceBatch()) == (None, 0)  # the nested run never started


def valid() -> dict[str, Any]:
    return encoded(nested_records(add(inc(1), 1)))


def changed(path: str, value: Any) -> dict[str, Any]:
    """A valid fragment with the field at `path` ("jobs.0.status") set, or removed when
    `value` is the `REMOVED` marker."""
    document = valid()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is REMOVED:
        del target[last]
    else:
        target[last] = value
    return document


REMOVED = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "'version' must be 1"),
        ("version", True, "'version' must be 1"),
        ("scope", "ns/other", "unknown field"),  # a fragment cannot name a cache scope
        ("calls", [], "unknown field"),  # nor bring cache entries
        ("values.0.data", "gAR9lC4=", "values[0]' must be an object with the fields"),
        ("values.0.truth", True, "values[0]' must be an object with the fields"),
        ("values.0.size", -5, "size' must be a whole number"),
        ("values.0.hash", "a" * 39, "hash' must be 40"),
        ("jobs", REMOVED, "lacks jobs"),
        ("jobs", {}, "'jobs' must be a list"),
        ("execution", [], "'execution' must be an object"),
        ("execution.id", "E" * 32, "execution.id' must be 32 lowercase hex"),
        ("execution.status", "SUCCEEDED", "execution.status' must be one of"),
        ("execution.parent_job_id", 7, "parent_job_id' must be 32"),
        ("jobs.0.id", "../../etc", "jobs[0].id' must be 32"),
        ("jobs.0.execution_id", None, "jobs[0].execution_id' must be 32"),
        ("jobs.0.status", "done", "jobs[0].status' must be one of PENDING"),
        ("jobs.0.task_hash", "A" * 40, "task_hash' must be 40 lowercase hex"),
        ("jobs.0.result_hash", "x", "result_hash' must be 40"),
        ("jobs.0.start_time", "2026-01-02T03:04:05", "with an offset"),
        ("jobs.0.start_time", "yesterday", "ISO 8601"),
        ("jobs.0.end_time", 17, "ISO 8601"),
        ("jobs.0.attempt", -1, "attempt' must be a whole number"),
        ("jobs.0.attempt", True, "attempt' must be a whole number"),
        ("jobs.0.cache_off", "always", "cache_off' must be one of run, task, scope:CSE"),
        ("jobs.0.error", "e" * 2001, "at most 2000 characters"),
        ("jobs.0.task_name", ["x"], "task_name' must be a string"),
        ("jobs.0.scope", "ns/other", "jobs[0]' must be an object with the fields"),
        ("jobs.0.executor", REMOVED, "jobs[0]' must be an object with the fields"),
        ("arguments.0.value_hash", "zz", "value_hash' must be 40"),
        ("edges.0.src_job_id", "", "src_job_id' must be 32"),
        ("tags.0.entity_kind", "task", "entity_kind' must be one of"),
        ("tasks.0.source", None, "source' must be a string"),
    ],
)
def test_malformed_fragments_are_refused_naming_the_field(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(FragmentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_fragment(json.dumps(changed(path, value)).encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # deeper than the parser goes
        (b"[]", "must be a JSON object"),
        (b'{"version": 1, "version": 1}', "appears twice"),
    ],
)
def test_fragments_that_are_not_fragments(data: bytes, message: str) -> None:
    with pytest.raises(FragmentError, match=message):
        parse_fragment(data)


def test_fragments_past_their_bounds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.dumps(valid()).encode()
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_JOBS", 1)
    with pytest.raises(FragmentError, match="holds 2 jobs, over the limit of 1"):
        parse_fragment(data)
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", len(data) - 1)
    with pytest.raises(FragmentError, match="over the limit"):
        parse_fragment(data)


# -- recording it under the subrun job ------------------------------------------------------


def source_hash(name: str, source: str) -> str | None:
    return source_task_hash(name, source) if source else None


def test_every_id_is_the_receivers_own() -> None:
    fragment = parse_fragment(export_fragment(nested_records(add(inc(1), inc(2))))[0] or b"")
    parent = "c" * 32
    batch = rebase(fragment, parent, source_hash)
    (nested,) = batch.executions
    old_ids = {fragment.executions[0].id, *(j.id for j in fragment.jobs)}
    new_ids = {nested.id, *(j.id for j in batch.jobs)}
    assert len(new_ids) == 4 and not new_ids & old_ids
    assert nested.parent_job_id == parent
    assert {j.execution_id for j in batch.jobs} == {nested.id}
    job_ids = {j.id for j in batch.jobs}
    assert {a.job_id for a in batch.arguments} <= job_ids and len(batch.arguments) == 4
    assert len(batch.edges) == 2
    assert all({e.src_job_id, e.dst_job_id} <= job_ids for e in batch.edges)
    assert [(t.entity_id, t.key) for t in batch.tags] == [(nested.id, "stage")]
    # A second import of the same fragment (a retried receiver) is a separate record.
    again = rebase(fragment, parent, source_hash)
    assert not {j.id for j in again.jobs} & job_ids


def test_references_to_ids_the_fragment_does_not_define_are_left_out() -> None:
    mine, other, outside = "1" * 32, "2" * 32, "3" * 32
    fragment = ProvenanceBatch(
        executions=[execution("e" * 32)],
        jobs=[job(mine, "e" * 32, parent_id=outside), job(other, "f" * 32)],
        arguments=[ArgumentRecord(mine, 0, "x", HASH, "1"),
                   ArgumentRecord(outside, 0, "x", HASH, "1")],
        edges=[EdgeRecord(mine, outside, "x"), EdgeRecord(outside, mine, "x")],
        files=[FileRecord(outside, "input", "/etc/passwd", HASH, "File")],
        tags=[TagRecord(outside, "k", "v", "job"), TagRecord(HASH, "k", "v", "value"),
              TagRecord(mine, "k", "v", "job"), TagRecord(mine, "k", "v", "execution")],
    )  # fmt: skip
    batch = rebase(fragment, "c" * 32, source_hash)
    (kept,) = batch.jobs  # the job of another execution is not the fragment's
    assert kept.parent_id is None
    assert [a.job_id for a in batch.arguments] == [kept.id]
    assert (batch.edges, batch.files) == ([], [])
    # Tags on values are left out too: a value's hash is every scope's.
    assert [(t.entity_id, t.entity_kind) for t in batch.tags] == [(kept.id, "job")]


def test_values_keep_their_description_only() -> None:
    claimed = ValueRecord(HASH, "builtins.int", "3", 5, b"forged", "ns/other", True, False)
    fragment = ProvenanceBatch(executions=[execution("e" * 32)], values=[claimed])
    (value,) = rebase(fragment, "c" * 32, source_hash).values
    assert value == ValueRecord(HASH, "builtins.int", "3", 5, None)  # scope: the receiver's


def test_only_task_rows_whose_hash_is_their_source_are_kept() -> None:
    genuine = TaskRecord(inc.hash, "fragtest.inc", "fragtest", inc.source)
    forged = TaskRecord(add.hash, "fragtest.add", "fragtest", "def add(a, b):\n    steal()\n")
    renamed = TaskRecord(inc.hash, "other.inc", "other", inc.source)
    misplaced = TaskRecord(inc.hash, "fragtest.inc", "frag", inc.source)
    # A versioned task's hash says nothing of its source: its row cannot be checked.
    unchecked = TaskRecord(versioned.hash, "fragtest.versioned", "fragtest", versioned.source)
    fragment = ProvenanceBatch(executions=[execution("e" * 32)],
                               tasks=[genuine, forged, renamed, misplaced, unchecked])  # fmt: skip
    assert rebase(fragment, "c" * 32, source_hash).tasks == [genuine]


def test_a_forged_fragment_cannot_touch_existing_records(tmp_path: Path) -> None:
    store = ProvenanceStore(f"sqlite:///{tmp_path / 'p.db'}", "ns/mine")
    store.ensure_schema()
    existing_execution, existing_job = "e" * 32, "a" * 32
    store.write(ProvenanceBatch(executions=[execution(existing_execution)],
                                jobs=[job(existing_job, existing_execution)]))  # fmt: skip
    # The fragment names the existing ids, claiming a failure and another parent for them.
    forged = ProvenanceBatch(
        executions=[replace(execution(existing_execution), status="FAILED", args="forged")],
        jobs=[replace(job(existing_job, existing_execution), status="FAILED", error="forged")],
        arguments=[ArgumentRecord(existing_job, 0, "x", HASH, "forged")],
        tags=[TagRecord(existing_job, "forged", "1", "job")],
    )
    parsed = parse_fragment(export_fragment(forged)[0] or b"")
    store.write(rebase(parsed, "c" * 32, source_hash))
    assert store.find_execution(existing_execution).status == "DONE"
    assert store.find_job(existing_job).status == "DONE"
    assert store.arguments_of(existing_job) == [] and store.tags_of(existing_job) == []
    (imported,) = store.find_executions(parent_job_id="c" * 32)
    (imported_job,) = store.jobs_of(imported.id)
    assert imported_job.id != existing_job and imported_job.error == "forged"
    store.close()


# -- the receiver ---------------------------------------------------------------------------


class Receiver(RemoteExecutor):
    def launch(self, *args: Any) -> None:
        raise AssertionError("not launched")

    def shutdown(self) -> None:
        pass


def received(outcome: Outcome, stored: bytes | None) -> Any:
    """What a remote executor reports for a subrun job that returned a verified value and
    whose fragment is `stored` under the hash its outcome names."""
    scheduler = Scheduler()
    receiver = Receiver("remote", {})
    receiver.bind(scheduler.host)
    if stored is not None and outcome.provenance is not None:
        scheduler.value_store.put(outcome.provenance.hash, stored)
    result = b"result"
    scheduler.value_store.put(hash_bytes(result), result)
    outcome = replace(outcome, kind="value", hash=hash_bytes(result), size=len(result))
    job = SimpleNamespace(id="0" * 32, task=SimpleNamespace(fullname="kredun.subrun"),
                          references=True)  # fmt: skip
    reports: list[Any] = []
    receiver.finished(job, reports.append, outcome=outcome)
    (report,) = reports
    assert report.error is None and report.data == result  # whatever became of the fragment
    return report


def named(data: bytes, **fields: Any) -> Outcome:
    reference = FragmentRef(hash_bytes(data), len(data))
    return Outcome(provenance=replace(reference, **fields))


def test_a_verified_fragment_is_reported_parsed() -> None:
    data = export_fragment(nested_records(add(inc(1), 1)))[0] or b""
    report = received(named(data), data)
    assert report.provenance_problem is None
    assert report.provenance == parse_fragment(data)


@pytest.mark.parametrize(
    ("outcome", "stored", "problem"),
    [
        (named(b"{}"), b"[]", "hash mismatch"),  # other bytes under the claimed hash
        (named(b"{}", size=3), b"{}", "hash mismatch"),  # a size that is not theirs
        (named(b"{}", size=17 * 1024**2), b"{}", "over the limit of 16777216"),
        (named(b"{}"), None, "is not in"),  # nothing stored
        (named(b"{}"), b"{}", "lacks"),  # verified, but not a fragment
        (Outcome(provenance_dropped=250_000), None, "(250000 jobs) was too large"),
    ],
)
def test_a_fragment_that_cannot_be_recorded_leaves_the_result_alone(
    outcome: Outcome, stored: bytes | None, problem: str
) -> None:
    report = received(outcome, stored)
    assert report.provenance is None and problem in str(report.provenance_problem)


# -- through the scheduler ------------------------------------------------------------------


class InProcessWorker(RemoteExecutor):
    """Runs each job's spec with the real worker code (`run_job`) on a thread of this
    process, and reports its outcome as a Pod's termination message would; `tamper`, when
    set, changes that outcome (and the value store) first."""

    tamper: Any = None

    def launch(self, job: Any, spec_json: str, report: ReportOutcome, resources: Any) -> None:
        def work() -> None:
            outcome, error = run_job(json.loads(spec_json), self.value_store)
            outcome = parse(outcome.to_json())
            if InProcessWorker.tamper is not None:
                outcome = InProcessWorker.tamper(outcome, self.value_store)
            failed = None if error is None else RuntimeError(f"task failed: {error}")
            self.finished(job, report, failed, "worker log", outcome)

        threading.Thread(target=work, daemon=True).start()

    def shutdown(self) -> None:
        pass


IN_PROCESS = "test-in-process-worker"
register_executor_type(IN_PROCESS, f"{__name__}:InProcessWorker")
INNER = {"executors": {"default": {"type": "local"}}}  # no database: an in-memory store


@pytest.fixture
def scheduler(tmp_path: Path) -> Any:
    values = f"file://{tmp_path / 'values'}"
    scheduler = Scheduler(config={
        "database": {"uri": f"sqlite:///{tmp_path / 'p.db'}"},
        "value_store": {"uri": values},
        "executors": {"remote": {"type": IN_PROCESS},
                      "process": {"type": WORKER_PROCESS, "value_store": values}},
    })  # fmt: skip
    yield scheduler
    scheduler.close()


def nested_under(scheduler: Scheduler) -> tuple[JobRecord, ExecutionRecord, list[JobRecord]]:
    store = scheduler.store
    assert isinstance(store, ProvenanceStore)
    (outer,) = store.find_jobs(task="kredun.subrun")
    (inner,) = store.find_executions(parent_job_id=outer.id)
    return outer, inner, store.jobs_of(inner.id)


def test_a_remote_subruns_inner_jobs_are_recorded_under_it(scheduler: Scheduler) -> None:
    assert scheduler.run(subrun(add(inc(1), inc(2)), executor="remote", config=INNER)) == 5
    outer, inner, jobs = nested_under(scheduler)
    assert inner.status == "DONE" and inner.result_preview == "5"
    assert outer.execution_id != inner.id
    assert sorted(job.task_name for job in jobs) == ["fragtest.add", "fragtest.inc", "fragtest.inc"]
    (added,) = (job for job in jobs if job.task_name == "fragtest.add")
    store = scheduler.store
    assert {e.src_job_id for e in store.edges_of(added.id)} == {
        job.id for job in jobs if job.task_name == "fragtest.inc"
    }
    assert [(a.name, a.preview) for a in store.arguments_of(added.id)] == [("a", "2"), ("b", "3")]
    task_row = store.get_task(added.task_hash)
    assert task_row is not None and "return a + b" in task_row.source
    rows = store.value_records(job.result_hash or "" for job in jobs)
    results = [rows[job.result_hash or ""] for job in jobs]
    described = {
        f"{job.task_name}={row.preview}": row for job, row in zip(jobs, results, strict=True)
    }
    assert sorted(described) == ["fragtest.add=5", "fragtest.inc=2", "fragtest.inc=3"]
    # An inner value is described only; the same value as the subrun's own result keeps the
    # row this scheduler wrote from the verified result.
    assert described["fragtest.inc=2"].data is None and described["fragtest.inc=2"].truth is None
    assert described["fragtest.add=5"].data is not None and described["fragtest.add=5"].truth
    # Inner calls are not cache entries here: a later subrun runs them again.
    assert store.lookup_calls(job.eval_hash for job in jobs if job.eval_hash) == {}


def test_a_failed_remote_subrun_still_shows_what_failed_inside(scheduler: Scheduler) -> None:
    with pytest.raises(RuntimeError, match="task failed"):
        scheduler.run(subrun(add(fail(1), 1), executor="remote", config=INNER))
    outer, inner, jobs = nested_under(scheduler)
    assert outer.status == "FAILED" and inner.status == "FAILED"
    (failed,) = jobs
    assert failed.task_name == "fragtest.fail" and failed.error == "ValueError: no 1"


def corrupt(outcome: Outcome, store: ValueStore) -> Outcome:
    assert outcome.provenance is not None
    store.put(outcome.provenance.hash, b"not the fragment", replace=True)
    return outcome


def forged(outcome: Outcome, store: ValueStore) -> Outcome:
    """A fragment that parses, naming an execution and a job the receiver already has."""
    assert outcome.provenance is not None
    document = json.loads(store.get(outcome.provenance.hash))
    document["execution"]["id"] = FORGED_EXECUTION
    for job in document["jobs"]:
        job["id"], job["execution_id"], job["status"] = FORGED_JOB, FORGED_EXECUTION, "FAILED"
    data = json.dumps(document).encode()
    store.put(hash_bytes(data), data)
    return replace(outcome, provenance=FragmentRef(hash_bytes(data), len(data)))


FORGED_EXECUTION, FORGED_JOB = "e" * 32, "a" * 32


def test_a_bad_fragment_is_dropped_with_a_warning_and_the_result_counts(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(InProcessWorker, "tamper", corrupt)
    scheduler.logger.addHandler(caplog.handler)  # kredun's logger does not propagate
    try:
        assert scheduler.run(subrun(add(inc(1), 1), executor="remote", config=INNER)) == 3
    finally:
        scheduler.logger.removeHandler(caplog.handler)
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "kredun.subrun: its provenance fragment" in warning.getMessage()
    assert "hash mismatch" in warning.getMessage()
    (outer,) = scheduler.store.find_jobs(task="kredun.subrun")
    assert outer.status == "DONE" and scheduler.store.find_executions(parent_job_id=outer.id) == []


def test_a_fragment_too_large_to_export_is_reported_as_dropped(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_JOBS", 2)
    scheduler.logger.addHandler(caplog.handler)
    try:
        expr = subrun(add(inc(1), inc(2)), executor="remote", config=INNER)
        assert scheduler.run(expr) == 5
    finally:
        scheduler.logger.removeHandler(caplog.handler)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "provenance (3 jobs) was too large to bring back" in warning
    (outer,) = scheduler.store.find_jobs(task="kredun.subrun")
    assert scheduler.store.find_executions(parent_job_id=outer.id) == []


def test_a_fragment_naming_existing_ids_gets_ids_of_its_own(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = scheduler.store
    store.write(ProvenanceBatch(executions=[execution(FORGED_EXECUTION)],
                                jobs=[job(FORGED_JOB, FORGED_EXECUTION)]))  # fmt: skip
    monkeypatch.setattr(InProcessWorker, "tamper", forged)
    assert scheduler.run(subrun(add(inc(1), 1), executor="remote", config=INNER)) == 3
    assert store.find_job(FORGED_JOB).status == "DONE"
    assert store.find_execution(FORGED_EXECUTION).parent_job_id is None
    _, inner, jobs = nested_under(scheduler)
    assert inner.id != FORGED_EXECUTION and len(jobs) == 1  # the two jobs shared one id
    assert jobs[0].id != FORGED_JOB and jobs[0].status == "FAILED"


def test_the_worker_command_brings_a_subruns_provenance_back(scheduler: Scheduler) -> None:
    # `kredun worker` in a process of its own, with no database, as in a Pod.
    assert scheduler.run(subrun(add(inc(1), 1), executor="process", config=INNER)) == 3
    _, inner, jobs = nested_under(scheduler)
    assert inner.status == "DONE"
    assert sorted(job.task_name for job in jobs) == ["fragtest.add", "fragtest.inc"]
