"""hash_includes, cache_scope and check_valid: redun's cache options."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kredun import CacheCheckValid, CacheScope, Scheduler, subrun, task
from kredun.errors import TaskOptionError

from tests.support.modes import MODES, PROCESS, run_in
from tests.support.postgres import store_uri  # noqa: F401
from tests.support.tasks import calls, note, restored_registry  # noqa: F401

kredun_namespace = "cache_options_test"


@task()
def leaf(log: str, x: int) -> int:
    note(log, "leaf")
    return x + 1


@task(check_valid="shallow")
def shallow_main(log: str, x: int):
    note(log, "main")
    return [leaf(log, x), leaf(log, x + 1)]


@task(check_valid=CacheCheckValid.SHALLOW)
def shallow_outer(log: str, x: int):
    note(log, "outer")
    return shallow_main(log, x)


@task()
def full_main(log: str, x: int):
    note(log, "main")
    return [leaf(log, x), leaf(log, x + 1)]


@task(cache_scope=CacheScope.NONE)
def never_cached(log: str) -> int:
    note(log, "none")
    return 1


@task(cache_scope="CSE")
def per_execution(log: str) -> int:
    note(log, "cse")
    return 2


@task(cache=False)
def uncached(log: str) -> int:
    note(log, "uncached")
    return 3


@task()
def failing_leaf(log: str, x: int) -> int:
    note(log, "failing")
    if not Path(log + ".fixed").exists():
        raise ValueError("not yet")
    return x


@task(check_valid="shallow")
def shallow_with_failure(log: str, x: int):
    return [leaf(log, x), failing_leaf(log, x)]


@task(check_valid="shallow")
def shallow_duplicates(log: str, x: int):
    return [leaf(log, x), leaf(log, x)]  # the second call joins the first


@task()
def slow_leaf(log: str, x: int) -> int:
    # Slow, so that the second of two identical calls joins the first while it runs (rather
    # than replaying it once it finished), whatever the machine's load.
    time.sleep(0.5)
    return leaf(log, x)


@task(check_valid="shallow")
def shallow_a(log: str):
    return slow_leaf(log, 100)


@task(check_valid="shallow")
def shallow_b(log: str):
    return slow_leaf(log, 100)


@task()
def both_shallow(log: str):
    return [shallow_a(log), shallow_b(log)]


def open_scheduler(uri: str, process: bool = False) -> Scheduler:
    return Scheduler(db_uri=uri, config=PROCESS if process else None)


def run_once(uri: str, expr, process: bool = False):
    scheduler = open_scheduler(uri, process)
    try:
        return scheduler.run(expr)
    finally:
        scheduler.close()


# -- hash_includes ----------------------------------------------------------------------------


@pytest.mark.usefixtures("restored_registry")
def test_hash_includes_is_part_of_the_task_hash():
    def define(includes):
        @task(namespace="ho", name="reader", hash_includes=includes)
        def reader(x):
            return x

        return reader

    plain = define(None)
    first = define(["data-v1", 3])
    assert first.hash != plain.hash
    assert define([3, "data-v1"]).hash == first.hash  # order does not matter
    assert define(["data-v2", 3]).hash != first.hash
    assert first.options(hash_includes=["data-v2", 3]).hash == define(["data-v2", 3]).hash
    assert first.options(retries=1).hash == first.hash  # other options keep the identity
    with pytest.raises(TaskOptionError, match=r"hash_includes=.* must be a list"):
        define("data-v1")
    with pytest.raises(TaskOptionError, match="option hash_includes"):
        define([threading.Lock()])


@pytest.mark.usefixtures("restored_registry")
def test_hash_includes_change_reruns_the_task(tmp_path):
    log = str(tmp_path / "log")

    def define(version_of_data):
        @task(namespace="ho", name="load", hash_includes=[version_of_data])
        def load(log: str, x: int) -> int:
            note(log, "load")
            return x

        return load

    scheduler = Scheduler()
    assert scheduler.run(define("v1")(log, 1)) == 1
    assert scheduler.run(define("v1")(log, 1)) == 1
    assert scheduler.run(define("v2")(log, 1)) == 1
    assert calls(tmp_path / "log") == ["load", "load"]


# -- cache_scope ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_cache_scopes_within_one_execution(mode, tmp_path):
    log = str(tmp_path / "log")
    expr = [never_cached(log), never_cached(log), per_execution(log), per_execution(log),
            uncached(log), uncached(log)]  # fmt: skip
    assert run_in(mode, expr) == [1, 1, 2, 2, 3, 3]
    # As in redun, identical calls in one expression run once even under CacheScope.NONE.
    assert sorted(calls(tmp_path / "log")) == ["cse", "none", "uncached"]


def test_cache_scopes_across_executions(tmp_path):
    log = str(tmp_path / "log")
    scheduler = Scheduler(db_uri=f"sqlite:///{tmp_path / 'db'}")
    for _ in range(2):
        assert scheduler.run([never_cached(log), per_execution(log), leaf(log, 1)]) == [1, 2, 2]
    assert sorted(calls(tmp_path / "log")) == ["cse", "cse", "leaf", "none", "none"]
    # A run with caching off treats BACKEND calls as CSE ones: they run again.
    assert scheduler.run(leaf(log, 1), cache=False) == 2
    assert calls(tmp_path / "log").count("leaf") == 2
    scheduler.close()


def test_bad_cache_options_are_refused():
    with pytest.raises(TaskOptionError, match="cache_scope='DISK' must be CacheScope"):
        leaf.options(cache_scope="DISK")
    with pytest.raises(TaskOptionError, match="check_valid='deep' must be 'full' or 'shallow'"):
        leaf.options(check_valid="deep")


# -- check_valid ------------------------------------------------------------------------------


def jobs_of_last_execution(uri: str) -> list[tuple[str, str]]:
    scheduler = Scheduler(db_uri=uri)
    try:
        store = scheduler.store
        execution = store.recent_executions(1)[0]
        return sorted((job.task_name.split(".")[-1], job.status) for job in store.jobs_of(
            execution.id
        ))  # fmt: skip
    finally:
        scheduler.close()


@pytest.mark.parametrize("process", [False, True], ids=["threads", "process"])
def test_shallow_reuses_the_final_value_without_the_subtree(tmp_path, store_uri, process):  # noqa: F811
    log = str(tmp_path / "log")
    assert run_once(store_uri, shallow_main(log, 1), process) == [2, 3]
    assert run_once(store_uri, shallow_main(log, 1), process) == [2, 3]
    assert calls(tmp_path / "log") == ["main", "leaf", "leaf"]
    # Only the shallow call is replayed: none of the jobs under it.
    assert jobs_of_last_execution(store_uri) == [("shallow_main", "CACHED")]
    # check_valid="full" (the default) replays every job of the subtree.
    run_once(store_uri, full_main(log, 1), process)
    run_once(store_uri, full_main(log, 1), process)
    assert jobs_of_last_execution(store_uri) == [
        ("full_main", "CACHED"), ("leaf", "CACHED"), ("leaf", "CACHED")
    ]  # fmt: skip


@pytest.mark.usefixtures("restored_registry")
def test_shallow_final_value_is_invalid_once_a_task_under_it_changes(
    tmp_path,
    store_uri,  # noqa: F811
):
    log = str(tmp_path / "log")

    def define_leaf(offset: int):
        @task(namespace="cache_options_test", name="leaf", version=str(offset))
        def edited_leaf(log: str, x: int) -> int:
            note(log, "leaf")
            return x + offset

        return edited_leaf

    assert run_once(store_uri, shallow_outer(log, 1)) == [2, 3]
    define_leaf(100)
    # Both shallow calls held the old leaf: neither final value is reused, the leaves run
    # again and shallow_main (unchanged) replays its expression.
    assert run_once(store_uri, shallow_outer(log, 1)) == [101, 102]
    assert calls(tmp_path / "log").count("leaf") == 4
    assert ("shallow_main", "CACHED") in jobs_of_last_execution(store_uri)
    # The new final values were recorded: the next run reuses the outer one alone.
    assert run_once(store_uri, shallow_outer(log, 1)) == [101, 102]
    assert jobs_of_last_execution(store_uri) == [("shallow_outer", "CACHED")]


@pytest.mark.usefixtures("restored_registry")
def test_shallow_in_one_scheduler_follows_redefinitions(tmp_path):
    log = str(tmp_path / "log")
    scheduler = Scheduler()
    assert scheduler.run(shallow_main(log, 1)) == [2, 3]
    assert scheduler.run(shallow_main(log, 1)) == [2, 3]
    assert calls(tmp_path / "log") == ["main", "leaf", "leaf"]

    @task(namespace="cache_options_test", name="leaf")
    def leaf(log: str, x: int) -> int:
        note(log, "leaf2")
        return x * 10

    assert scheduler.run(shallow_main(log, 1)) == [10, 20]
    assert calls(tmp_path / "log") == ["main", "leaf", "leaf", "leaf2", "leaf2"]


def test_shallow_inside_subrun(tmp_path):
    log = str(tmp_path / "log")
    uri = f"sqlite:///{tmp_path / 'db'}"
    for _ in range(2):
        assert run_once(uri, subrun(shallow_main(log, 1), executor="process")) == [2, 3]
    assert calls(tmp_path / "log") == ["main", "leaf", "leaf"]


def test_shallow_records_nothing_for_a_failed_subtree(tmp_path):
    log = str(tmp_path / "log")
    uri = f"sqlite:///{tmp_path / 'db'}"
    with pytest.raises(ValueError, match="not yet"):
        run_once(uri, shallow_with_failure(log, 1))
    Path(log + ".fixed").touch()
    assert run_once(uri, shallow_with_failure(log, 1)) == [2, 1]
    assert run_once(uri, shallow_with_failure(log, 1)) == [2, 1]
    # leaf and failing_leaf run side by side: their order in the log is not defined.
    assert sorted(calls(tmp_path / "log")) == ["failing", "failing", "leaf"]
    assert jobs_of_last_execution(uri) == [("shallow_with_failure", "CACHED")]


def test_shared_jobs_and_subtree_knowledge(tmp_path):
    log = str(tmp_path / "log")
    uri = f"sqlite:///{tmp_path / 'db'}"
    # A call joining an identical one under the same shallow job: the final is recorded.
    run_once(uri, shallow_duplicates(log, 1))
    assert run_once(uri, shallow_duplicates(log, 1)) == [2, 2]
    assert jobs_of_last_execution(uri) == [("shallow_duplicates", "CACHED")]
    # Two shallow jobs sharing one leaf job: the one whose leaf call joined the other's
    # cannot know what ran under it, so it records no final value and replays fully.
    run_once(uri, both_shallow(log))
    run_once(uri, both_shallow(log))
    assert jobs_of_last_execution(uri) == [
        ("both_shallow", "CACHED"), ("leaf", "CACHED"), ("shallow_a", "CACHED"),
        ("shallow_b", "CACHED"), ("slow_leaf", "CACHED"),
    ]  # fmt: skip


def test_shallow_lookups_are_batched(tmp_path):
    log = str(tmp_path / "log")
    uri = f"sqlite:///{tmp_path / 'db'}"
    run_once(uri, [shallow_main(log, i) for i in range(50)])
    scheduler = Scheduler(db_uri=uri)
    lookups = []
    original = scheduler.store.lookup_finals
    scheduler.store.lookup_finals = lambda keys: lookups.append(len(keys)) or original(keys)
    assert scheduler.run([shallow_main(log, i) for i in range(50)])[49] == [50, 51]
    scheduler.close()
    assert lookups == [50]
