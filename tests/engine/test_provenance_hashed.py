"""Jobs record what else took part in their call's hash (schema 0007): the task's version
and hash_includes and the context keys a `get_context` default read into an argument, so
`kredun log --why` and a dry run name such a difference. Tests taking `store_uri` run on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from kredun import Scheduler, get_context, task
from kredun.errors import DryRunResult
from kredun.provenance import hashed
from kredun.provenance.records import JobRecord, ProvenanceBatch
from kredun.provenance.schema import HEAD_REVISION
from kredun.provenance.store import ProvenanceStore
from kredun.provenance.why import HashChange, explain
from sqlalchemy import create_engine, inspect, text

from tests.engine.test_cli_log import newest, ok
from tests.support.migrations import alembic_config
from tests.support.postgres import store_uri  # noqa: F401

kredun_namespace = "hashed_test"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@task()
def fetch(uri: str = get_context("db.uri", "none"), n: int = 1) -> str:
    return f"{uri}:{n}"


@task()
def plain(n: int) -> int:
    return n


@pytest.fixture
def scheduler(tmp_path: Path) -> Any:
    opened = Scheduler(f"sqlite:///{tmp_path}/p.db")
    yield opened
    opened.close()


def jobs(scheduler: Scheduler, name: str) -> list[JobRecord]:
    return scheduler.store.find_jobs(task=f"{kredun_namespace}.{name}")


def test_a_changed_context_key_is_named_with_the_argument_it_filled(
    scheduler: Scheduler,
) -> None:
    assert scheduler.run(fetch(n=2), context={"db": {"uri": "a"}}) == "a:2"
    assert scheduler.run(fetch(n=2), context={"db": {"uri": "b"}}) == "b:2"
    now, then = jobs(scheduler, "fetch")
    assert hashed.decode(now.hashed)[1]["db.uri"]["argument"] == "uri"
    answer = explain(scheduler.store, now)
    assert answer.compared_with == then.id
    assert answer.lines[1:] == ["  context key db.uri: 'a' -> 'b' (argument 'uri')"]
    assert answer.hash_changes == [HashChange("context", "db.uri", "'a'", "'b'", "uri")]
    # An argument the caller gave is an argument, even for a parameter that can read the
    # context.
    scheduler.run(fetch(uri="c", n=2), context={"db": {"uri": "b"}})
    latest = jobs(scheduler, "fetch")[0]
    assert latest.hashed is None
    assert explain(scheduler.store, latest).lines[1:] == ["  argument 'uri' changed: 'b' -> 'c'"]


def test_a_changed_hash_includes_is_named_rather_than_the_same_source(
    scheduler: Scheduler,
) -> None:
    scheduler.run(plain.options(hash_includes=["config-1"])(5))
    scheduler.run(plain.options(hash_includes=["config-2"])(5))
    now, then = jobs(scheduler, "plain")
    assert now.task_hash != then.task_hash and now.eval_hash != then.eval_hash
    answer = explain(scheduler.store, now)
    assert answer.lines[1:] == ["  option hash_includes: ['config-1'] -> ['config-2']"]
    assert answer.hash_changes == [
        HashChange("option", "hash_includes", "['config-1']", "['config-2']")
    ]
    # Options outside the hash (memory) neither make a job run nor get recorded.
    scheduler.run(plain.options(hash_includes=["config-2"], memory=2)(5))
    assert jobs(scheduler, "plain")[0].status == "CACHED"
    scheduler.run(plain(6))
    assert jobs(scheduler, "plain")[0].hashed is None


def test_jobs_recorded_before_0007_get_the_answer_they_had(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    scheduler.run(plain.options(hash_includes=["config-1"])(5))
    scheduler.run(plain.options(hash_includes=["config-2"])(5))
    now, then = jobs(scheduler, "plain")
    engine = create_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.begin() as connection:
        connection.execute(text("UPDATE kredun_job SET hashed = NULL"))
    engine.dispose()
    now = scheduler.store.find_job(now.id)
    answer = explain(scheduler.store, now)
    assert answer.lines[1:] == [
        "  the code of task hashed_test.plain changed:",
        f"    task hash {then.task_hash[:8]} -> {now.task_hash[:8]} (same source: version or name)",
    ]
    assert answer.hash_changes == []


def test_a_dry_run_names_the_option_and_the_context_key(
    scheduler: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    def miss(expr: Any, **run: Any) -> str:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="kredun")
        scheduler.logger.addHandler(caplog.handler)  # kredun's logger does not propagate
        try:
            with pytest.raises(DryRunResult):
                scheduler.run(expr, dryrun=True, **run)
        finally:
            scheduler.logger.removeHandler(caplog.handler)
        (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Miss")]
        return line

    scheduler.run(fetch(n=1), context={"db": {"uri": "a"}})
    assert "new arguments (uri (context key db.uri) differ from job" in miss(
        fetch(n=1), context={"db": {"uri": "b"}}
    )
    scheduler.run(plain.options(hash_includes=[1])(1))
    assert miss(plain.options(hash_includes=[2])(1)).endswith("; option hash_includes: [1] -> [2])")


def test_why_names_a_changed_version_in_text_and_json(tmp_path: Path) -> None:
    workflow = (
        "from kredun import task\n\n\n"
        '@task(version="1")\ndef step(n: int) -> int:\n    return n\n\n\n'
        "@task()\ndef main() -> int:\n    return step(3)\n"
    )
    (tmp_path / "wf.py").write_text(workflow)
    ok(tmp_path, "run", "wf.py", "main")
    # A new version: the source is not part of a versioned task's hash, so no diff.
    edited = workflow.replace('version="1"', 'version="2"').replace("return n\n", "return n  \n")
    (tmp_path / "wf.py").write_text(edited)
    ok(tmp_path, "run", "wf.py", "main")
    job = newest(tmp_path, "step")
    why = ok(tmp_path, "log", "--why", job["id"]).splitlines()
    assert why[1:] == ["  option version: '1' -> '2'"]
    answer = json.loads(ok(tmp_path, "log", "--why", job["id"], "--format", "json"))
    assert answer["hash_changes"] == [
        {"kind": "option", "name": "version", "old": "'1'", "new": "'2'", "argument": None}
    ]
    assert answer["explanation"] == why


def test_an_unreadable_record_leaves_the_generic_answer() -> None:
    assert hashed.decode("{not json") == ({}, {})
    assert hashed.decode("[1]") == ({}, {})
    assert hashed.decode('{"options": 3, "context": {"k": 1}}') == ({}, {"k": 1})
    assert hashed.encode({}, {}) is None


def test_migration_0007_keeps_jobs_and_stores_what_they_hashed(store_uri: str) -> None:  # noqa: F811
    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0006")
        connection.execute(
            text(
                "INSERT INTO kredun_execution (id, args, status, start_time) "
                "VALUES (:e, 'kredun run wf.py main', 'DONE', :t)"
            ),
            {"e": "e" * 32, "t": T0},
        )
        connection.execute(
            text(
                "INSERT INTO kredun_job (id, execution_id, task_name, task_hash, eval_hash, "
                "status, executor, start_time, attempt, cache_off) VALUES "
                "(:id, :e, 'add', :h, :h, 'DONE', 'default', :t, 0, 'task')"
            ),
            {"id": "j" * 32, "e": "e" * 32, "h": "a" * 40, "t": T0},
        )
    try:
        with ProvenanceStore(store_uri) as store:
            assert store.upgrade() == ("0006", HEAD_REVISION)
            old = store.find_job("jjjj")
            assert (old.task_name, old.status, old.start_time, old.cache_off, old.hashed) == (
                "add", "DONE", T0, "task", None
            )  # fmt: skip
            record = hashed.encode({"version": {"preview": "'1'", "hash": "h"}}, {})
            new = JobRecord("k" * 32, "e" * 32, None, "add", "b" * 40, "b" * 40, "DONE",
                            "default", T0, hashed=record)  # fmt: skip
            store.write(ProvenanceBatch(jobs=[new]))
            assert store.find_job("kkkk").hashed == record
            assert store.find_execution("eee").args == "kredun run wf.py main"
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0006")
            columns = {column["name"] for column in inspect(connection).get_columns("kredun_job")}
            assert "hashed" not in columns and "cache_off" in columns
            count = connection.execute(text("SELECT count(*) FROM kredun_job")).scalar()
            assert count == 2
    finally:
        engine.dispose()
