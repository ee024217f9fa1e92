"""What a run records in the provenance store, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from kredun import Scheduler, task
from kredun.provenance.store import ProvenanceStore

from tests.support.postgres import store_uri  # noqa: F401  (fixture)

kredun_namespace = "prov"


@task()
def add(a, b):
    return a + b


@task()
def add4(a, b, c, d):
    return add(add(a, b), add(c, d))


@task()
def explode():
    raise KeyError("missing")


@pytest.fixture(autouse=True)
def quiet():
    logging.getLogger("kredun").setLevel(logging.WARNING)
    yield
    logging.getLogger("kredun").setLevel(logging.INFO)


def test_run_records_execution_jobs_tree_tasks_values_and_calls(store_uri):  # noqa: F811
    scheduler = Scheduler(db_uri=store_uri)
    assert scheduler.run(add4(1, 2, 3, 4), label="test add4") == 10
    scheduler.close()
    with ProvenanceStore(store_uri) as store:
        (execution,) = store.recent_executions()
        assert execution.status == "DONE" and execution.args == "test add4"
        assert execution.result_preview == "10" and execution.end_time is not None
        jobs = store.jobs_of(execution.id)
        by_id = {job.id: job for job in jobs}
        (root,) = [job for job in jobs if job.parent_id is None]
        assert root.task_name == "prov.add4"
        children = [job for job in jobs if job.parent_id == root.id]
        assert sorted(job.task_name for job in children) == ["prov.add"] * 3
        assert all(job.status == "DONE" and job.end_time >= job.start_time for job in jobs)
        assert set(by_id) == {job.id for job in jobs}
        task_record = store.get_task(add.hash)
        assert task_record.name == "prov.add" and task_record.namespace == "prov"
        assert task_record.source.startswith("def add(a, b):")
        final = [job for job in children if job.result_hash == execution.result_hash]
        assert len(final) == 1  # the outer add produced the execution's result
        values = store.value_records([execution.result_hash])
        assert values[execution.result_hash].preview == "10"
        assert values[execution.result_hash].type_name == "builtins.int"
        calls = store.lookup_calls([job.eval_hash for job in jobs])
        assert calls[root.eval_hash].result_kind == "expression"
        assert {calls[job.eval_hash].result_kind for job in children} == {"value"}


def test_failed_run_is_recorded_consistently(store_uri):  # noqa: F811
    scheduler = Scheduler(db_uri=store_uri)
    with pytest.raises(KeyError):
        scheduler.run([add(1, 1), explode()])
    assert scheduler.run(add(1, 1)) == 2  # the store is still usable
    scheduler.close()
    with ProvenanceStore(store_uri) as store:
        failed, done = reversed(store.recent_executions())
        assert failed.status == "FAILED" and failed.error == "KeyError: 'missing'"
        statuses = {job.task_name: job.status for job in store.jobs_of(failed.id)}
        assert statuses == {"prov.add": "DONE", "prov.explode": "FAILED"}
        assert [job.status for job in store.jobs_of(done.id)] == ["CACHED"]
        explode_job = next(j for j in store.jobs_of(failed.id) if j.task_name == "prov.explode")
        assert store.lookup_calls([explode_job.eval_hash]) == {}  # errors are never cached


def test_large_values_go_to_the_value_store(store_uri, tmp_path):  # noqa: F811
    @task(namespace="prov")
    def big(n):
        return "x" * n

    values_dir = tmp_path / "values"
    scheduler = Scheduler(db_uri=store_uri, value_store=f"file://{values_dir}")
    assert len(scheduler.run(big(200_000))) == 200_000
    scheduler.close()
    assert sum(1 for path in values_dir.rglob("*") if path.is_file()) == 1
    fresh = Scheduler(db_uri=store_uri, value_store=f"file://{values_dir}")
    assert fresh.run(big(200_000)) == "x" * 200_000  # replayed from the value store
    fresh.close()


def test_in_memory_scheduler_keeps_provenance_without_sqlalchemy():
    import subprocess
    import sys

    scheduler = Scheduler()
    assert scheduler.run(add4(1, 2, 3, 4)) == 10
    store = scheduler.store
    (execution,) = store.recent_executions()
    assert store.find_execution(execution.id[:6]) == execution
    jobs = store.jobs_of(execution.id)
    assert sorted(job.task_name for job in jobs) == ["prov.add"] * 3 + ["prov.add4"]
    assert store.get_task(add.hash).name == "prov.add"
    assert store.value_records([execution.result_hash])[execution.result_hash].preview == "10"
    program = (
        "import sys\n"
        "from kredun import Scheduler, task\n"
        "inc = task(lambda x: x + 1, name='inc')\n"
        "assert Scheduler().run(inc(1)) == 2\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_jobs_outliving_a_flush_are_recorded_in_their_final_state(store_uri, monkeypatch):  # noqa: F811
    import kredun.scheduler

    monkeypatch.setattr(kredun.scheduler, "FLUSH_INTERVAL", 0.01)

    @task(namespace="prov")
    def slow(x):
        import time

        time.sleep(0.3)
        if x < 0:
            raise ValueError("negative")
        return x

    scheduler = Scheduler(db_uri=store_uri)
    assert scheduler.run(slow(1)) == 1
    with pytest.raises(ValueError):
        scheduler.run(slow(-1))
    scheduler.close()
    with ProvenanceStore(store_uri) as store:
        failed, done = store.recent_executions()
        (done_job,) = store.jobs_of(done.id)
        (failed_job,) = store.jobs_of(failed.id)
    assert done_job.status == "DONE" and done_job.end_time is not None
    assert done_job.result_hash is not None
    assert failed_job.status == "FAILED" and failed_job.error == "ValueError: negative"
