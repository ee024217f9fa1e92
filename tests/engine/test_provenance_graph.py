"""Provenance that answers questions: arguments, the call graph, file lineage, subruns,
tags and why a job did not consult the cache; and the migration that added them.

Tests taking `store_uri` run on SQLite and PostgreSQL (tests/support/postgres.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from kredun import File, Scheduler, apply_tags, subrun, task
from kredun.errors import AmbiguousIdError, NotFoundError, TagError, TaskOptionError
from kredun.provenance.base import ProvenanceBackend
from kredun.provenance.schema import HEAD_REVISION
from kredun.provenance.store import ProvenanceStore
from sqlalchemy import create_engine, text

from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401


@task()
def inc(n: int) -> int:
    return n + 1


@task()
def add(a: int, b: int = 0) -> int:
    return a + b


@task()
def total(numbers: list[int]) -> int:
    return sum(numbers)


@task()
def write_text(path: str, n: int) -> File:
    file = File(path)
    file.write(str(n))
    return file


@task()
def copy_file(src: File, dst: str) -> File:
    return src.copy_to(File(dst))


@task(cache=False)
def uncached(n: int) -> int:
    return n


@task(tags={"team": "genomics", "stage": 2})
def tagged(n: int) -> int:
    return n


def by_task(store: ProvenanceBackend) -> dict[str, list[Any]]:
    jobs: dict[str, list[Any]] = {}
    for job in store.find_jobs(limit=1000):
        jobs.setdefault(job.task_name, []).append(job)
    return jobs


@pytest.fixture(params=["memory", "sqlite"])
def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    uri = None if request.param == "memory" else f"sqlite:///{tmp_path}/p.db"
    opened = Scheduler(uri)
    yield opened
    opened.close()


def test_arguments_are_recorded_by_parameter_with_hash_and_preview(scheduler: Scheduler) -> None:
    assert scheduler.run(add(2, b=inc(3))) == 6
    store = scheduler.store
    (job,) = by_task(store)["add"]
    arguments = store.arguments_of(job.id)
    assert [(a.position, a.name, a.preview) for a in arguments] == [(0, "a", "2"), (1, "b", "4")]
    assert all(len(a.value_hash) == 40 for a in arguments)
    assert arguments[0].value_hash != arguments[1].value_hash


def test_edges_lead_from_the_producing_job_to_the_consumer(scheduler: Scheduler) -> None:
    assert scheduler.run(total([inc(1), inc(2), 7])) == 12
    store = scheduler.store
    jobs = by_task(store)
    (consumer,) = jobs["total"]
    producers = {job.id for job in jobs["inc"]}
    edges = store.edges_of(consumer.id)
    assert {(e.src_job_id, e.dst_job_id, e.name) for e in edges} == {
        (p, consumer.id, "numbers") for p in producers
    }
    # Seen from a producer, the same edge goes out.
    some = next(iter(producers))
    assert [(e.src_job_id, e.dst_job_id) for e in store.edges_of(some)] == [(some, consumer.id)]


def test_a_replayed_job_still_feeds_its_consumer(scheduler: Scheduler) -> None:
    scheduler.run(add(inc(1), 1))
    scheduler.run(add(inc(1), 2))
    store = scheduler.store
    newest_add = store.find_jobs(task="add", limit=1)[0]
    newest_inc = store.find_jobs(task="inc", limit=1)[0]
    assert newest_inc.status == "CACHED"
    assert [e.src_job_id for e in store.edges_of(newest_add.id)] == [newest_inc.id]


def test_file_lineage_records_who_wrote_a_file_and_from_what(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    source, target = str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
    scheduler.run(copy_file(write_text(source, inc(1)), target))
    store = scheduler.store
    jobs = by_task(store)
    (writer,), (copier,) = jobs["write_text"], jobs["copy_file"]
    assert [(f.role, f.path, f.kind) for f in store.files_of(writer.id)] == [
        ("output", source, "File")
    ]
    assert [(f.role, f.path) for f in store.files_of(copier.id)] == [
        ("input", source),
        ("output", target),
    ]
    written = store.files_of(writer.id)[0]
    assert store.files_of(copier.id)[0].hash == written.hash


def test_a_subruns_execution_is_recorded_under_the_job_that_ran_it(tmp_path: Path) -> None:
    scheduler = Scheduler(f"sqlite:///{tmp_path}/p.db")
    try:
        assert scheduler.run(subrun(add(inc(1), 1))) == 3
        store = scheduler.store
        assert isinstance(store, ProvenanceStore)
        (outer,) = by_task(store)["kredun.subrun"]
        (inner,) = store.find_executions(parent_job_id=outer.id)
        assert {job.task_name for job in store.jobs_of(inner.id)} == {"add", "inc"}
        assert outer.execution_id != inner.id
    finally:
        scheduler.close()


def test_cache_off_says_whether_the_task_or_the_run_turned_it_off(
    scheduler: Scheduler,
) -> None:
    scheduler.run(add(uncached(1), 1))
    jobs = by_task(scheduler.store)
    assert jobs["uncached"][0].cache_off == "task"
    assert jobs["add"][0].cache_off is None
    scheduler.run(add(1, 5), cache=False)
    assert scheduler.store.find_jobs(task="add", limit=1)[0].cache_off == "run"
    # An explicit cache_scope wins over cache=, as it does for the scheduler.
    scheduler.run(add.options(cache_scope="CSE")(1, 6))
    scheduler.run(add.options(cache=False, cache_scope="BACKEND")(1, 7))
    scheduler.run(add.options(cache_scope="NONE")(1, 8))
    none, backend, cse = scheduler.store.find_jobs(task="add", limit=3)
    assert (cse.cache_off, backend.cache_off, none.cache_off) == ("scope:CSE", None, "scope:NONE")
    from kredun.provenance.why import explain

    assert explain(scheduler.store, cse).lines == [
        "add ran because the task has cache_scope=CSE: it reuses only results of its own execution."
    ]
    assert (
        explain(scheduler.store, none)
        .lines[0]
        .endswith("cache_scope=NONE: it never reuses a result.")
    )


def test_tags_on_tasks_runs_and_values(scheduler: Scheduler) -> None:
    assert scheduler.run(apply_tags(tagged(inc(1)), {"sample": "s1"}), tags={"project": "p"}) == 2
    store = scheduler.store
    (job,) = store.find_jobs(tag=("team", "genomics"))
    assert job.task_name == "tagged"
    assert store.find_jobs(tag=("stage", "2")) == [job]
    assert store.find_jobs(tag=("team", "other")) == []
    assert [j.id for j in store.find_jobs(tag=("team", None))] == [job.id]
    if isinstance(store, ProvenanceStore):
        (execution,) = store.find_executions(tag=("project", "p"))
        assert execution.id == job.execution_id
        assert job.result_hash is not None
        assert {(t.key, t.value, t.entity_kind) for t in store.tags_of(job.result_hash)} == {
            ("sample", "s1", "value")
        }


def test_a_resumed_execution_keeps_its_tags_as_the_user_left_them(tmp_path: Path) -> None:
    # What the operator does after a restart: run the same execution id again with the
    # tags from its annotation.
    execution_id = uuid.uuid4().hex
    scheduler = Scheduler(f"sqlite:///{tmp_path}/p.db")
    try:
        tags = {"team": "genomics", "sample": "s1"}
        scheduler.run(inc(1), execution_id=execution_id, tags=tags)
        store = scheduler.store
        assert store.remove_tags(execution_id, "team") == 1
        scheduler.run(inc(1), execution_id=execution_id, tags=tags)
        assert {(t.key, t.value) for t in store.tags_of(execution_id)} == {("sample", "s1")}
        # A new execution is tagged as asked.
        other = uuid.uuid4().hex
        scheduler.run(inc(2), execution_id=other, tags=tags)
        assert {(t.key, t.value) for t in store.tags_of(other)} == set(tags.items())
    finally:
        scheduler.close()


def test_bad_tags_are_one_clear_error() -> None:
    with pytest.raises(TaskOptionError, match="tags"):
        inc.options(tags={"": "x"})
    with pytest.raises(TagError, match="tag key"):
        apply_tags(1, {"": "x"})
    with pytest.raises(TagError, match="expected a dict"):
        Scheduler().run(inc(1), tags="team=a")


def test_find_job_by_prefix_with_or_without_dashes(scheduler: Scheduler) -> None:
    scheduler.run(inc(1))
    (job,) = scheduler.store.find_jobs()
    dashed = str(uuid.UUID(job.id))
    assert scheduler.store.find_job(dashed[:13]).id == job.id
    assert scheduler.store.find_job(job.id[:6].upper()).id == job.id
    with pytest.raises(NotFoundError):
        scheduler.store.find_job("zz")


def test_an_ambiguous_job_prefix_is_refused(scheduler: Scheduler) -> None:
    scheduler.run(total([inc(n) for n in range(40)]))
    with pytest.raises(AmbiguousIdError, match="job id prefix"):
        scheduler.store.find_job("")


# -- migration --------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_migration_from_0002_keeps_every_row(store_uri: str) -> None:  # noqa: F811
    """A database as the previous release left it (schema 0002, with data) upgrades to
    head; every row reads back, and the new tables work."""
    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0002")
        connection.execute(
            text(
                "INSERT INTO kredun_execution (id, args, status, start_time) "
                "VALUES (:id, 'kredun run wf.py main', 'DONE', :t)"
            ),
            {"id": "e" * 32, "t": T0},
        )
        connection.execute(
            text(
                "INSERT INTO kredun_job (id, execution_id, task_name, task_hash, eval_hash, "
                "status, executor, start_time, attempt) VALUES "
                "(:id, :e, 'add', :h, :h, 'DONE', 'default', :t, 0)"
            ),
            {"id": "j" * 32, "e": "e" * 32, "h": "a" * 40, "t": T0},
        )
        connection.execute(
            text(
                "INSERT INTO kredun_call (scope, eval_hash, task_hash, args_hash, result_hash, "
                "result_kind) VALUES ('ns/x', :h, :h, :h, :h, 'value')"
            ),
            {"h": "a" * 40},
        )
        connection.execute(
            text(
                "INSERT INTO kredun_value (scope, hash, type_name, preview, size, data) "
                "VALUES ('', :h, 'builtins.int', '3', 5, :d)"
            ),
            {"h": "a" * 40, "d": b"\x80\x04K\x03."},
        )
    engine.dispose()
    with ProvenanceStore(store_uri, scope="ns/x") as store:
        assert store.upgrade() == ("0002", HEAD_REVISION)
        job = store.find_job("jjjj")
        assert (job.task_name, job.status, job.start_time, job.cache_off) == (
            "add",
            "DONE",
            T0,
            None,
        )
        assert store.find_execution("eee").args == "kredun run wf.py main"
        assert store.lookup_calls(["a" * 40])["a" * 40].result_kind == "value"
        assert store.arguments_of(job.id) == []
    with ProvenanceStore(store_uri) as store:
        assert store.value_data(["a" * 40]) == {"a" * 40: b"\x80\x04K\x03."}


# -- tags on cluster Executions ---------------------------------------------------------------


def test_execution_tags_become_labels_where_kubernetes_allows() -> None:
    from kredun.resource import ANNOTATION_TAGS
    from kredun.submit import _execution_manifest

    tags = [("team", "genomics"), ("run", ""), ("note", "has spaces"), ("x" * 64, "v"),
            ("sample", "a"), ("sample", "b")]  # fmt: skip
    manifest = _execution_manifest(inc(1), "h" * 40, b"plan", image="img", tags=tags)
    labels = manifest["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("tags.kredun.dev/")} == {
        "tags.kredun.dev/team": "genomics",
        "tags.kredun.dev/run": "",
    }
    assert json.loads(manifest["metadata"]["annotations"][ANNOTATION_TAGS]) == {
        "team": ["genomics"], "run": [""], "note": ["has spaces"], "x" * 64: ["v"],
        "sample": ["a", "b"],
    }  # fmt: skip


def test_why_on_either_store(scheduler: Scheduler) -> None:
    from kredun.provenance.why import explain, job_arguments

    scheduler.run(add(1, 2))
    scheduler.run(add(1, 3))
    store = scheduler.store
    newest, first = store.find_jobs(task="add")
    assert explain(store, newest).lines == [
        f"add ran: compared with the closest earlier call, job {first.id[:8]} (execution "
        f"{first.execution_id[:8]}, {first.start_time.astimezone():%Y-%m-%d %H:%M:%S}):",
        "  argument 'b' changed: 2 -> 3",
    ]
    scheduler.run(add(1, b=2))
    replay = store.find_jobs(task="add", limit=1)[0]
    assert replay.status == "CACHED"
    (line,) = explain(store, replay).lines
    assert f"replayed the cached result of job {first.id[:8]}" in line
    assert [(a.name, a.preview) for a in job_arguments(store, replay)] == [("a", "1"), ("b", "2")]
    assert explain(store, first).lines == [
        "add ran because no earlier call of it is recorded: a first run."
    ]


@task()
def nested(depth: int) -> Any:
    return [nested(depth - 1), inc(depth)] if depth else inc(0)


@pytest.mark.parametrize("backend", ["memory", "database"])
def test_descendants_are_every_job_under_a_job(backend: str, store_uri: str) -> None:  # noqa: F811
    scheduler = Scheduler(None if backend == "memory" else store_uri)
    try:
        scheduler.run(nested(2))
        store = scheduler.store
        root = store.find_jobs(task="nested")[-1]
        under = store.descendants(root.id)
        assert sorted(job.task_name for job in under) == ["inc"] * 3 + ["nested"] * 2
        ids = {root.id, *(job.id for job in under)}
        assert all(job.parent_id in ids for job in under)
        assert [job.start_time for job in under] == sorted(job.start_time for job in under)
        (inner,) = [job for job in under if job.task_name == "nested" and job.parent_id == root.id]
        assert sorted(job.task_name for job in store.descendants(inner.id)) == [
            "inc", "inc", "nested"
        ]  # fmt: skip
        leaf = next(job for job in under if job.task_name == "inc")
        assert store.descendants(leaf.id) == []
    finally:
        scheduler.close()


@task()
def shell_copy(src: str, out: str) -> Any:
    from kredun import script

    return script(
        "cat in.txt > out.txt",
        inputs=[File(src).stage("in.txt")],
        outputs=File(out).stage("out.txt"),
        tempdir=True,
    )


def test_script_lineage_and_no_outputs_for_returned_expressions(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    source, target = tmp_path / "src.txt", tmp_path / "final.txt"
    source.write_text("hello")
    scheduler.run(shell_copy(str(source), str(target)))
    jobs = by_task(scheduler.store)
    (outer,), (command,) = jobs["shell_copy"], jobs["kredun.script"]
    # shell_copy returned an expression holding Files: it wrote none of them.
    assert scheduler.store.files_of(outer.id) == []
    roles = {(f.role, f.path) for f in scheduler.store.files_of(command.id)}
    assert ("output", str(target)) in roles
    assert {("staged", str(source)), ("staged", str(target))} <= roles


def test_sql_store_writes_and_answers_every_question(store_uri: str) -> None:  # noqa: F811
    from kredun.provenance.records import (
        ArgumentRecord,
        EdgeRecord,
        ExecutionRecord,
        FileRecord,
        JobRecord,
        ProvenanceBatch,
        TagRecord,
        ValueRecord,
    )

    run_id, first, second = "e" * 32, "a" * 32, "b" * 32

    def job(job_id: str, status: str, offset: int) -> JobRecord:
        start = T0.replace(second=offset)
        return JobRecord(job_id, run_id, None, "add", "t" * 40, job_id[0] * 40, status,
                         "default", start, start, "v" * 40, cache_off="task")  # fmt: skip

    batch = ProvenanceBatch(
        executions=[ExecutionRecord(run_id, "run", "DONE", T0)],
        jobs=[job(first, "DONE", 1), job(second, "FAILED", 2)],
        values=[ValueRecord("v" * 40, "builtins.int", "7", 5, b"x")],
        arguments=[
            ArgumentRecord(second, 0, "a", "1" * 40, "1"),
            ArgumentRecord(second, 1, "b", "v" * 40, "7"),
        ],
        edges=[EdgeRecord(first, second, "b")],
        files=[
            FileRecord(first, "output", "/data/x", "f" * 40, "File"),
            FileRecord(second, "input", "/data/x", "f" * 40, "File"),
        ],
        tags=[TagRecord(run_id, "project", "p", "execution"), TagRecord(second, "k", "v", "job")],
    )
    with ProvenanceStore(store_uri) as store:
        store.ensure_schema()
        store.write(batch)
        store.write(batch)  # insert-or-ignore: writing twice changes nothing
        assert [a.name for a in store.arguments_of(second)] == ["a", "b"]
        assert store.edges_of(first) == store.edges_of(second) == batch.edges
        assert [f.role for f in store.files_of(second)] == ["input"]
        assert [(f.role, j.id) for f, j in store.file_history("/data/x")] == [
            ("input", second),
            ("output", first),
        ]
        assert [j.id for j in store.find_jobs(status="FAILED")] == [second]
        assert [j.id for j in store.find_jobs(tag=("k", "v"))] == [second]
        assert store.find_jobs(task="add", before=T0.replace(second=2)) == [batch.jobs[0]]
        assert [e.id for e in store.find_executions(tag=("project", None))] == [run_id]
        assert store.find_value("vvvv").preview == "7"
        assert [(t.key, t.value) for t in store.tagged("project")] == [("project", "p")]
        assert store.all_tags() == [("k", "v", 1), ("project", "p", 1)]
        assert store.remove_tags(second, "k") == 1
        assert store.tags_of(second) == []
        assert store.find_job(first).cache_off == "task"
