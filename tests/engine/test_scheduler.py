"""Scheduler behaviour beyond the notebook: caching across runs, CSE, errors, executors."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from kredun import Scheduler, subrun, task
from kredun.errors import CancelledError, ConfigError, SerializationError
from kredun.provenance.store import ProvenanceStore

from tests.support.seed_results import check_subrun_example_groups

kredun_namespace = "sched_test"

calls: list[tuple] = []
calls_lock = threading.Lock()


def record_call(*key) -> None:
    with calls_lock:
        calls.append(key)


@pytest.fixture(autouse=True)
def reset_calls():
    calls.clear()
    logging.getLogger("kredun").setLevel(logging.WARNING)
    yield
    logging.getLogger("kredun").setLevel(logging.INFO)


@task()
def inc(x):
    record_call("inc", x)
    return x + 1


@task()
def slow_inc(x):
    record_call("slow_inc", x)
    time.sleep(0.3)
    return x + 1


@task()
def boom(x):
    raise ValueError(f"boom {x}")


@task()
def pid_of(x):
    return os.getpid()


@task()
def fail_then_succeed(marker_dir: str):
    marker = os.path.join(marker_dir, "failed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"


def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'kredun.db'}"


def test_cache_replays_across_schedulers_sharing_a_database(tmp_path):
    uri = sqlite_uri(tmp_path)
    first = Scheduler(db_uri=uri)
    assert first.run([inc(1), inc(2)]) == [2, 3]
    first.close()
    second = Scheduler(db_uri=uri)
    assert second.run([inc(1), inc(2), inc(3)]) == [2, 3, 4]
    second.close()
    assert sorted(calls) == [("inc", 1), ("inc", 2), ("inc", 3)]


def test_no_cache_runs_again(tmp_path):
    scheduler = Scheduler(db_uri=sqlite_uri(tmp_path))
    scheduler.run(inc(1))
    scheduler.run(inc(1), cache=False)
    assert calls == [("inc", 1), ("inc", 1)]


def test_edited_task_body_or_version_reruns():
    scheduler = Scheduler()

    def define(body_offset: int, version: str | None = None):
        namespace: dict = {"task": task, "record_call": record_call}
        exec(
            f"@task(namespace='edit', version={version!r})\n"
            f"def step(x):\n    record_call('step', x)\n    return x + {body_offset}\n",
            namespace,
        )
        return namespace["step"]

    assert scheduler.run(define(1)(5)) == 6
    assert scheduler.run(define(1)(5)) == 6  # same source: cached
    assert scheduler.run(define(2)(5)) == 7  # edited body: new hash, runs
    assert scheduler.run(define(2, "v1")(5)) == 7  # versioned: runs once...
    assert scheduler.run(define(3, "v1")(5)) == 7  # ...and the version, not the body, decides
    assert scheduler.run(define(3, "v2")(5)) == 8
    assert len(calls) == 4


def test_identical_calls_run_once_even_while_in_flight():
    scheduler = Scheduler()
    # Two distinct expression objects for the same call, both ready in the same tick.
    assert scheduler.run([slow_inc(1), slow_inc(1), inc(slow_inc(1))]) == [2, 2, 3]
    assert calls.count(("slow_inc", 1)) == 1


def test_cse_while_in_flight_across_ticks():
    @task(namespace="sched_test")
    def later(x):
        return slow_inc(x)  # becomes ready after slow_inc(1) is already running

    scheduler = Scheduler()
    assert scheduler.run([slow_inc(1), later(1)]) == [2, 2]
    assert calls.count(("slow_inc", 1)) == 1


def test_task_error_reaches_caller_with_type_and_traceback_and_is_not_cached(tmp_path):
    uri = sqlite_uri(tmp_path)
    scheduler = Scheduler(db_uri=uri)
    with pytest.raises(ValueError, match="boom 3") as caught:
        scheduler.run(inc(boom(3)))
    assert any(frame.name == "boom" for frame in caught.traceback)
    with pytest.raises(ValueError):
        scheduler.run(boom(3))  # the error was not replayed from a cache: it ran again
    scheduler.close()
    store = ProvenanceStore(uri)
    executions = store.recent_executions()
    assert [e.status for e in executions] == ["FAILED", "FAILED"]
    assert executions[0].error == "ValueError: boom 3"
    jobs = store.jobs_of(executions[1].id)
    assert [(j.task_name, j.status) for j in jobs] == [("sched_test.boom", "FAILED")]
    assert "raise ValueError" in jobs[0].traceback
    store.close()


def test_process_job_traceback_names_the_task_file_line_and_source():
    scheduler = Scheduler()
    try:
        with pytest.raises(ValueError, match="boom 4") as caught:
            scheduler.run(boom.options(executor="process")(4))
    finally:
        scheduler.close()
    remote = "\n".join(getattr(caught.value, "__notes__", []))
    assert f'File "{__file__}", line' in remote and ", in boom" in remote
    assert 'raise ValueError(f"boom {x}")' in remote


def test_failure_keeps_what_was_already_recorded(tmp_path):
    uri = sqlite_uri(tmp_path)
    scheduler = Scheduler(db_uri=uri)
    with pytest.raises(ValueError):
        scheduler.run([inc(10), slow_inc(20), boom(1)])
    scheduler.close()
    with ProvenanceStore(uri) as store:
        (execution,) = store.recent_executions()
        statuses = {job.task_name: job.status for job in store.jobs_of(execution.id)}
    assert statuses["sched_test.boom"] == "FAILED"
    assert statuses["sched_test.inc"] == "DONE"
    # A fresh scheduler replays the successful job rather than re-running it.
    calls.clear()
    Scheduler(db_uri=uri).run(inc(10))
    assert calls == []


def test_failed_job_shows_in_status_table():
    scheduler = Scheduler()
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    scheduler.logger.addHandler(handler)
    scheduler.logger.setLevel(logging.INFO)
    try:
        with pytest.raises(ValueError):
            scheduler.run(boom(1))
    finally:
        scheduler.logger.removeHandler(handler)
    assert any(line.startswith("Failed Job") and "boom 1" in line for line in lines)
    assert "| sched_test.boom       0       0       1       0       0       1" in lines


def test_retries_option(tmp_path):
    flaky = fail_then_succeed.options(retries=1)
    assert Scheduler().run(flaky(str(tmp_path))) == "ok"
    without_retries = tmp_path / "second"
    without_retries.mkdir()
    with pytest.raises(RuntimeError, match="first attempt fails"):
        Scheduler().run(fail_then_succeed(str(without_retries)))


def test_process_executor_runs_in_other_processes():
    scheduler = Scheduler(config={"executors": {"procs": {"type": "process", "max_workers": 2}}})
    try:
        pids = scheduler.run([pid_of.options(executor="procs")(i) for i in range(4)])
        assert os.getpid() not in pids
        with pytest.raises(ValueError, match="boom 7") as caught:
            scheduler.run(boom.options(executor="procs")(7))
        assert "Traceback from task sched_test.boom" in "".join(caught.value.__notes__)
    finally:
        scheduler.close()


def test_unknown_executor_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown executor 'nowhere'"):
        Scheduler().run(inc.options(executor="nowhere")(1))


def test_unserializable_argument_is_a_clear_error():
    lock = threading.Lock()
    with pytest.raises(SerializationError, match=r"argument of sched_test\.inc"):
        Scheduler().run(inc(lock))


def test_bad_call_signature_is_a_type_error_naming_the_task():
    with pytest.raises(TypeError, match=r"sched_test.inc\(\)"):
        Scheduler().run(inc(1, 2))


@task(executor="local")
def scheduler_pid() -> int:
    return os.getpid()  # runs on the nested scheduler's own threads


@task()
def slow_pid(x):
    time.sleep(0.3)
    return os.getpid()


def test_subrun_runs_nested_scheduler_in_one_process_job():
    config = {"executors": {"default": {"type": "process", "max_workers": 4}}}
    scheduler = Scheduler()
    inner = {"pid": scheduler_pid(), "values": [slow_pid(i) for i in range(4)]}
    result = scheduler.run(subrun(inner, executor="process", config=config))
    scheduler.close()
    inner_pids = set(result["values"])
    assert result["pid"] != os.getpid()  # the nested scheduler ran in a process job
    assert result["pid"] not in inner_pids  # ...whose own jobs ran in further processes
    assert os.getpid() not in inner_pids
    assert len(inner_pids) > 1


def test_deep_chain_needs_no_recursion_limit():
    value = 0
    for i in range(20_000):
        value = inc.options(cache=False)(value) if i % 2 else inc(value)
    assert Scheduler().run(value) == 20_000


@task()
def signature_zoo(a, b=2, *rest, c, d=4, **extra):
    return [a, b, rest, c, d, extra]


@task()
def two(a, b=10):
    record_call("two", a, b)
    return a + b


def test_argument_binding_by_name_and_defaults():
    scheduler = Scheduler()
    assert scheduler.run([two(1), two(1, 10), two(a=1), two(b=10, a=1)]) == [11] * 4
    assert calls == [("two", 1, 10)]  # one call: the same arguments, however passed
    assert scheduler.run(signature_zoo(1, 2, 3, c=5, z=6)) == [1, 2, (3,), 5, 4, {"z": 6}]
    with pytest.raises(TypeError, match="missing a required keyword-only argument: 'c'"):
        scheduler.run(signature_zoo(1))
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        scheduler.run(two(1, a=2))


def test_seed_subrun_example_shape():
    from examples.subrun import main

    result = Scheduler().run(main())
    assert result["name"] == "main" and isinstance(result["uname"], bytes)
    check_subrun_example_groups(result["results"])


def test_values_equal_in_python_but_different_in_content_hash_differently():
    from kredun.hashing import hash_value

    assert hash_value(0.0) != hash_value(-0.0)
    assert hash_value(1) != hash_value(True) != hash_value(1.0)
    assert hash_value("a" * 100) == hash_value("a" * 100)
    assert hash_value({"b": 1, "a": 2}) == hash_value({"a": 2, "b": 1})
    assert hash_value([1, 2]) != hash_value((1, 2))


counter_state = {"n": 0}


@task(cache=False)
def counter() -> int:
    counter_state["n"] += 1
    return counter_state["n"]


def test_an_uncached_task_records_its_latest_result(tmp_path):
    uri = sqlite_uri(tmp_path)
    scheduler = Scheduler(db_uri=uri)
    assert [scheduler.run(counter()), scheduler.run(counter())] == [1, 2]
    scheduler.close()
    # A fresh scheduler replays the newest run, not the first one recorded.
    assert Scheduler(db_uri=uri).run(counter.options(cache=True)()) == 2


@task(namespace="stoptest")
def wait_for(gate: str, seconds: float) -> str:
    GATES[gate].wait(seconds)
    return gate


@task(namespace="stoptest")
def both(a: str, b: str) -> str:
    return a + b


GATES: dict[str, threading.Event] = {}


def test_a_stop_token_ends_the_run_within_a_tick() -> None:
    GATES["slow"] = threading.Event()
    stop = threading.Event()
    scheduler = Scheduler()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(CancelledError, match="stopped"):
            scheduler.run(both(wait_for("slow", 30), "x"), stop=stop, label="stoppable")
        assert time.monotonic() - started < 5  # not the 30 s the job would take
        [record] = scheduler.store.recent_executions()
        assert record.status == "CANCELLED"
    finally:
        GATES["slow"].set()
        scheduler.close()


def test_a_run_asked_to_stop_before_it_starts_runs_nothing() -> None:
    GATES["never"] = threading.Event()
    stop = threading.Event()
    stop.set()
    scheduler = Scheduler()
    with pytest.raises(CancelledError):
        scheduler.run(wait_for("never", 30), stop=stop)
    assert scheduler.store.jobs_of(scheduler.store.recent_executions()[0].id) == []
    scheduler.close()
