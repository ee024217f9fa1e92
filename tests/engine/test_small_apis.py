"""Smaller APIs a workflow author uses: Scheduler.load, the job status report,
export_options, namespace(), fork_thread/join_thread and subrun's redun argument shapes."""

from __future__ import annotations

import os
import time

import pytest
from kredun import (
    Scheduler,
    catch,
    fork_thread,
    join_thread,
    namespace,
    subrun,
    task,
)
from kredun.errors import ConfigError, DatabaseURIError, TaskNameError

from tests.support.modes import MODES, run_in

kredun_namespace = "small_apis_test"


@task()
def pid(tag: int = 0) -> int:
    return os.getpid()


@task()
def where() -> list:
    return [pid(1), pid.options(retries=1)(2)]


@task()
def outer():
    return [where(), pid.options(executor="default")(3)]


@task()
def slow_double(x: int) -> int:
    time.sleep(0.3)
    return 2 * x


@task()
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@task()
def forks(x: int):
    return fork_thread(slow_double(x))  # finishes before slow_double does


@task()
def joins(x: int):
    thread = forks(x)
    return [join_thread(thread), join_thread(thread)]


@task()
def recover(error: Exception) -> str:
    return f"recovered {error}"


def test_load_opens_the_store_early(tmp_path):
    scheduler = Scheduler(db_uri=f"sqlite:///{tmp_path / 'db'}")
    scheduler.load()
    assert scheduler.store.current_revision() is not None
    scheduler.close()
    with pytest.raises(DatabaseURIError):
        Scheduler(db_uri="mysql://nowhere/db").load()


def test_job_status_report_describes_the_latest_run():
    scheduler = Scheduler()
    assert scheduler.get_job_status_report()[-2].split() == ["|", "ALL", *["0"] * 6]
    scheduler.run([slow_double(1), slow_double(2)])
    scheduler.run([slow_double(1)])
    lines = scheduler.get_job_status_report()
    assert lines[2].split() == ["|", "TASK", "PENDING", "RUNNING", "FAILED", "CACHED", "DONE",
                                "TOTAL"]  # fmt: skip
    rows = {line.split()[1]: line.split()[2:] for line in lines if line.startswith("| ")
            and len(line.split()) == 8 and line.split()[1] != "TASK"}  # fmt: skip
    assert rows["ALL"] == ["0", "0", "0", "1", "1", "1"]
    assert rows["small_apis_test.slow_double"] == ["0", "0", "0", "1", "1", "1"]


def test_export_options_reach_every_job_below():
    pids = Scheduler(config={"executors": {"default": {"type": "process", "max_workers": 2}},
                             }).run(outer.export_options(executor="local")())  # fmt: skip
    (first, second), third = pids
    # Exported: pid runs on `local` threads, in this process, unless a call chose otherwise.
    assert first == second == os.getpid()
    assert third != os.getpid()  # .options(executor="default") beats the export


def test_namespace_sets_the_default_namespace():
    namespace("scratch.area")
    try:
        exec("from kredun import task\n@task()\ndef made():\n    return 1\n", scope := {})
    finally:
        namespace()
    assert scope["made"].fullname == "scratch.area.made"
    exec("from kredun import task\n@task()\ndef made():\n    return 1\n", scope := {})
    assert scope["made"].fullname == "made"
    with pytest.raises(TaskNameError):
        namespace("not a namespace")


@pytest.mark.parametrize("mode", MODES)
def test_fork_and_join_threads(mode):
    assert run_in(mode, joins(3)) == [6, 6]
    assert run_in(mode, catch(join_thread(fork_thread(boom(1))), ValueError, recover)) == (
        "recovered boom 1"
    )
    with pytest.raises(ValueError, match="boom 2"):
        run_in(mode, join_thread(fork_thread(boom(2))))
    with pytest.raises(TypeError, match="needs a Thread"):
        run_in(mode, join_thread(5))


def test_an_execution_waits_for_forked_jobs():
    started = time.monotonic()
    thread = Scheduler().run(forks(2))
    assert type(thread).__name__ == "Thread"
    assert time.monotonic() - started >= 0.3


def test_subrun_accepts_redun_argument_shapes(tmp_path):
    config = {"executors.default": {"type": "process", "max_workers": "2"}}
    inner = [pid(4), pid(5)]
    pids = Scheduler().run(subrun(inner, "process", config=config, load_modules=["json"]))
    assert os.getpid() not in pids
    (tmp_path / "kredun.toml").write_text('[executors.default]\ntype = "local"\n')
    pids = Scheduler().run(subrun(inner, "process", config_dir=str(tmp_path)))
    assert len(set(pids)) == 1 and os.getpid() not in pids  # local threads in the job
    with pytest.raises(ConfigError, match="not both"):
        subrun(inner, "process", config=config, config_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="new_execution=False"):
        subrun(inner, "process", new_execution=False)
    with pytest.raises(ConfigError, match=r"\[backend\] db_user is not supported"):
        subrun(inner, "process", config={"backend": {"db_user": "x"}})
