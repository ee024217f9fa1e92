"""Differences from redun's programming model found by running redun's own public-model tests
against kredun, each pinned by a test of our own."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import subprocess
import sys
import warnings

import pytest
from kredun import (
    PartialTask,
    Scheduler,
    catch,
    fork_thread,
    get_context,
    join_thread,
    subrun,
    task,
)
from kredun.errors import (
    ConfigError,
    DryRunResult,
    NamespaceWarning,
    PlanError,
    TaskNameError,
    TaskOptionError,
)
from kredun.functools import map_, seq
from kredun.submit import encode_submission
from kredun.subrun import from_redun_config
from kredun.task import CacheCheckValid, CacheScope
from kredun.valuestore import open_value_store

from tests.support.tasks import restored_registry  # noqa: F401

# Tasks here (module level and in tests) get their own namespace: other test modules define
# tasks with the same short names.
kredun_namespace = "redun_model_test"


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "sqlite"])
def test_a_task_value_stays_valid_when_a_task_its_code_calls_is_edited(on_disk, tmp_path):
    # redun: a task value is valid while its own hash is current. The code of `adder`
    # calls `offset` by name, so editing `offset` re-runs `offset` alone, not the job
    # whose cached result holds `adder`.
    ran: list[str] = []

    @task()
    def offset():
        ran.append("offset")
        return 10

    @task()
    def adder(a, b):
        ran.append("adder")
        return a + b + offset()

    @task()
    def apply(fn, a, b):
        ran.append("apply")
        return fn(a, b)

    @task()
    def main():
        ran.append("main")
        return apply(adder, 2, 3)

    shared = Scheduler()

    def run(expr):
        # On disk, each run is a new scheduler: the cached results come from the database.
        scheduler = Scheduler(f"sqlite:///{tmp_path}/k.db") if on_disk else shared
        return scheduler.run(expr)

    assert run(main()) == 15
    assert ran == ["main", "apply", "adder", "offset"]

    ran.clear()
    assert run(main()) == 15
    assert ran == []

    @task()
    def offset():  # noqa: F811 -- an edit of the task
        ran.append("offset")
        return 20

    ran.clear()
    assert run(main()) == 25
    assert ran == ["offset"]

    @task()
    def adder(a, b):  # noqa: F811 -- editing the task value itself does re-run its holder
        ran.append("adder")
        return a * b + offset()

    ran.clear()
    assert run(main()) == 26
    assert ran == ["main", "apply", "adder"]


def test_nout_zero_unpacks_into_nothing():
    @task(nout=0)
    def nothing() -> tuple:
        return ()

    @task()
    def main():
        return [x for x in nothing()]

    assert list(nothing()) == []
    assert Scheduler().run(main()) == []


def test_a_recovery_is_replayed_only_for_the_same_call_options():
    # A call with its own options is another expression: the recovery recorded for
    # `catch(faulty(), ...)` does not stand in for `catch(faulty.options(...)(), ...)`.
    ran: list[str] = []

    @task()
    def faulty():
        ran.append("faulty")
        return 1 / 0

    @task()
    def recover(error):
        return -1

    scheduler = Scheduler()
    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == -1
    assert scheduler.run(catch(faulty(), ZeroDivisionError, recover)) == -1
    assert ran == ["faulty"]

    uncached = faulty.options(cache_scope=CacheScope.NONE)
    assert scheduler.run(catch(uncached(), ZeroDivisionError, recover)) == -1
    assert ran == ["faulty", "faulty"]


def test_a_finished_thread_can_be_joined_twice_and_caught():
    @task()
    def double(x):
        return 2 * x

    @task()
    def boom(x):
        raise ValueError("boom")

    @task()
    def recover(error):
        return f"recovered {error}"

    @task()
    def fork(fn, x):
        return fork_thread(fn(x))

    @task()
    def take_twice(thread):
        return [join_thread(thread), join_thread(thread)]

    @task()
    def take_caught(thread):
        return catch(join_thread(thread), ValueError, recover)

    scheduler = Scheduler()
    assert scheduler.run(take_twice(fork(double, 10))) == [20, 20]
    assert scheduler.run(take_caught(fork(boom, 1))) == "recovered boom"


@dataclasses.dataclass
class Link:
    value: str
    rest: Link | None = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    total: int
    label: str = dataclasses.field(default="x", init=False)


@task()
def as_text(x: int) -> str:
    return str(x)


@task()
def add(a: int, b: int) -> int:
    return a + b


def test_dataclass_fields_holding_expressions_are_evaluated():
    def chain(items: list[int]) -> Link | None:
        return Link(as_text(items[0]), chain(items[1:])) if items else None

    @task()
    def make(n: int) -> Frozen:
        return Frozen(add(n, 1))

    scheduler = Scheduler()
    assert scheduler.run(chain([1, 2, 3])) == Link("1", Link("2", Link("3")))
    made = scheduler.run([make(1), Frozen(5)])
    assert made == [Frozen(2), Frozen(5)]
    assert made[0].label == "x"


def test_a_dataclass_holding_expressions_is_refused_in_plans_with_a_clear_error(tmp_path):
    store = open_value_store(f"file://{tmp_path}")
    with pytest.raises(PlanError, match="Link dataclass holding expressions"):
        encode_submission(Link(as_text(1)), store.put)
    encode_submission(Link("plain"), store.put)  # a plain dataclass is a value, as before


def test_a_task_value_whose_code_refers_to_itself_is_cached(tmp_path):
    ran: list[int] = []

    @task()
    def step(n):
        ran.append(n)
        return step.partial(n - 1)

    db = f"sqlite:///{tmp_path}/k.db"
    first = Scheduler(db).run(step(2))
    assert (first.task.fullname, first.args) == (step.fullname, (1,))
    again = Scheduler(db).run(step(2))
    assert again.task is step and again.args == (1,)
    assert ran == [2]


def test_a_partial_task_takes_options_for_its_calls():
    @task()
    def add(a, b):
        return a + b

    inc = add.partial(1).options(executor="process", retries=2)
    assert isinstance(inc, PartialTask)
    expr = inc(2)
    assert expr.task.get_option("executor") == "process"
    assert expr.task.get_option("retries") == 2
    assert add.get_option("executor") is None
    assert Scheduler().run(inc(2)) == 3
    with pytest.raises(TaskOptionError, match="retires"):
        add.partial(1).options(retires=2)


@task()
def pid_of(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_subrun_takes_redun_executor_sections_with_a_mode():
    # redun's `local` executor runs threads, or a process pool with `mode = process`.
    converted = from_redun_config({
        "executors.default": {"type": "local", "mode": "thread", "start_method": "spawn"},
        "executors.pool": {"type": "local", "mode": "process", "max_workers": "2"},
    })  # fmt: skip
    assert converted == {"executors": {
        "default": {"type": "local"},
        "pool": {"type": "process", "max_workers": 2},
    }}  # fmt: skip
    with pytest.raises(ConfigError, match=r"mode 'fiber' .*valid: thread, process"):
        from_redun_config({"executors.default": {"type": "local", "mode": "fiber"}})

    nested = {"executors.default": {"type": "local", "mode": "process", "max_workers": "1"}}
    x, pid = Scheduler().run(subrun(pid_of(3), executor="default", config=nested))
    assert x == 3 and pid != os.getpid()


def test_identical_uncached_calls_of_one_job_run_once():
    # redun evaluates an expression's identical calls once per parent job, whatever their
    # cache scope; calls made by different jobs still run each time.
    ran: list[str] = []

    @task(cache_scope=CacheScope.NONE)
    def draw() -> int:
        ran.append("draw")
        return len(ran)

    @task()
    def pair(tag: str) -> list:
        return [draw(), draw()]

    scheduler = Scheduler()
    assert scheduler.run([draw(), draw()]) == [1, 1]
    first, second = scheduler.run([pair("a"), pair("b")])
    assert first[0] == first[1] and second[0] == second[1]
    assert {first[0], second[0]} == {2, 3}
    assert ran == ["draw"] * 3


@task(export_options={"executor": "local"})
def exporting(x: int) -> list:
    return [pid_of(x), pid_of.options(executor="default")(x + 1)]


def test_export_options_in_the_decorator():
    processes = {"executors": {"default": {"type": "process", "max_workers": 1}}}
    (one, here), (two, there) = Scheduler(config=processes).run(exporting(1))
    # Exported: pid_of runs on local threads unless its call chose an executor itself.
    assert (one, two) == (1, 2)
    assert here == os.getpid() != there
    with pytest.raises(TaskOptionError, match=r"export_options=.* must be a dict"):
        task(export_options=["executor"])
    with pytest.raises(TaskOptionError, match="unknown option 'retires'"):
        task(export_options={"retires": 2})(pid_of.func)


@task()
def double(x: int) -> int:
    return 2 * x


@task()
def doubled_lists(lists: list) -> list:
    # A partial scheduler task used inside a task, as redun's functools example does.
    return [map_.partial(double)(values) for values in lists]


def test_scheduler_tasks_apply_partially():
    doubling = map_.partial(double)
    assert isinstance(doubling, PartialTask)
    scheduler = Scheduler()
    assert scheduler.run(doubling([1, 2])) == [2, 4]
    assert scheduler.run(doubled_lists([[1], [2, 3]])) == [[2], [4, 6]]
    assert scheduler.run(seq.partial()([double(1), double(2)])) == [2, 4]


@task(executor=get_context("tool.executor", "default"), retries=get_context("tool.retries", 0))
def tool_pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_task_options_read_from_the_context(tmp_path):
    processes = {"executors": {"default": {"type": "local"}, "pool": {"type": "process"}}}
    scheduler = Scheduler(config=processes)
    _, here = scheduler.run(tool_pid(1))
    assert here == os.getpid()
    _, there = scheduler.run(tool_pid(2), context={"tool": {"executor": "pool"}})
    assert there != os.getpid()
    with pytest.raises(TaskOptionError, match="retries='two' must be a whole number"):
        scheduler.run(tool_pid(3), context={"tool": {"retries": "two"}})
    with pytest.raises(TaskOptionError, match="option nout cannot be read from the context"):
        task(nout=get_context("n", 2))(pid_of.func)
    store = open_value_store(f"file://{tmp_path}")
    with pytest.raises(PlanError, match=r"options read from the context \(executor, retries\)"):
        encode_submission(tool_pid(1), store.put)


FAILING_WORKFLOW = """
from kredun import task


def helper():
    raise ValueError("Boom")


@task()
def inner(a: int) -> int:
    return helper()


@task(executor="process")
def remote(a: int) -> int:
    return helper()


@task()
def main(where: str = "here") -> int:
    return inner(1) if where == "here" else remote(1)
"""


@pytest.mark.parametrize("where", ["here", "process"])
def test_kredun_run_shows_the_task_traceback_without_the_schedulers_frames(tmp_path, where):
    (tmp_path / "wf.py").write_text(FAILING_WORKFLOW)
    done = subprocess.run(
        [sys.executable, "-m", "kredun", "run", "wf.py", "main", "--where", where],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert 'wf.py", line 11, in inner' in done.stderr or 'wf.py", line 16, in remote' in (
        done.stderr
    )
    assert 'raise ValueError("Boom")' in done.stderr and "ValueError: Boom" in done.stderr
    assert "scheduler.py" not in done.stderr and "cli/run.py" not in done.stderr


def test_task_options_are_read_with_redun_names_on_tasks_and_partials():
    @task(executor="process", export_options={"memory": 2})
    def add(a, b):
        return a + b

    assert add.has_task_option("executor") and not add.has_task_option("retries")
    assert add.get_task_option("executor") == "process"
    assert add.get_task_option("retries") is None
    assert add.get_task_option("retries", 3) == 3
    # Bookkeeping for exported options stays out of what a user reads back.
    assert add.get_task_options() == {"executor": "process", "memory": 2}

    tuned = add.options(retries=2)
    assert tuned.get_task_options() == {"executor": "process", "memory": 2, "retries": 2}
    assert not add.has_task_option("retries")

    inc = add.partial(1).options(executor="local")
    assert inc.has_task_option("executor") and inc.get_task_option("executor") == "local"
    assert inc.get_task_option("cpus", 1) == 1
    assert inc.get_task_options()["executor"] == "local"


def test_a_given_source_replaces_the_functions_own_in_the_hash():
    @task()
    def first():
        return 10

    @task(source=first.source)
    def second():
        return 20

    @task(source="def second():\n    return 30\n")
    def third():
        return 20

    assert second.source == first.source
    assert third.source == "def second():\n    return 30\n"
    assert second.hash != third.hash
    # The same given source gives the same hash whatever the body says.
    again = task(source=first.source, name="second")(lambda: 99)
    assert again.hash == second.hash
    # .options() copies keep the given source.
    assert second.options(retries=1).source == first.source
    assert Scheduler().run(second()) == 20


@pytest.mark.usefixtures("restored_registry")
def test_tasks_without_a_namespace_are_warned_of_when_a_run_starts():
    registry = importlib.import_module("kredun.task")._registry  # `kredun.task` is the decorator
    # Other test modules' namespace-less tasks would be named too: keep only this module's.
    for fullname in [name for name, defined in registry.items() if not defined.namespace]:
        del registry[fullname]

    @task(namespace="")
    def bare():
        return 10

    assert bare.namespace == "" and bare.fullname == "bare"
    with pytest.warns(NamespaceWarning, match=r"test_redun_model:bare$") as caught:
        assert Scheduler().run(bare()) == 10
    # It points at the task's definition, where the fix goes.
    assert caught[0].filename == __file__
    with pytest.raises(TaskNameError, match=r"namespace '\.ns'"):
        task(namespace=".ns", name="dotted")(lambda: 1)

    named = task(namespace="ns", name="bare")(lambda: 1)
    del registry["bare"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", NamespaceWarning)
        assert Scheduler().run(named()) == 1


def test_a_dry_run_says_why_each_job_would_miss_the_cache(tmp_path, caplog):
    scheduler = Scheduler(f"sqlite:///{tmp_path}/p.db")

    @task(version="1", name="explained")
    def first(x):
        return x

    def misses(expr) -> list[str]:
        caplog.clear()
        caplog.set_level(logging.INFO, logger="kredun")
        scheduler.logger.addHandler(caplog.handler)  # kredun's logger does not propagate
        try:
            with pytest.raises(DryRunResult):
                scheduler.run(expr, dryrun=True)
        finally:
            scheduler.logger.removeHandler(caplog.handler)
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Miss")]

    fullname = "redun_model_test.explained"
    [miss] = misses(first(10))
    assert miss.endswith(f"New task '{fullname}()' is called with new arguments")
    assert scheduler.run(first(10)) == 10

    [miss] = misses(first(11))
    assert f"Existing task '{fullname}()' is called with new arguments (x differ" in miss

    @task(version="2", name="explained")
    def second(x):
        return x

    [miss] = misses(second(10))
    assert f"New task '{fullname}()' with previous arguments (code changed" in miss
    assert f"{first.hash[:8]} --> {second.hash[:8]}" in miss
    [miss] = misses(second(11))
    assert miss.endswith(f"New task '{fullname}()' is called with new arguments")
    # Same code and arguments, yet it would run: here because the call's options keep it
    # from the cache.
    assert scheduler.run(second(10)) == 10
    [miss] = misses(second.options(cache=False)(10))
    assert f"Existing task '{fullname}()' with previous arguments" in miss


def test_cache_options_read_back_as_the_cache_scope_they_mean():
    @task(cache=False, check_valid="shallow")
    def uncached():
        return 1

    assert uncached.get_task_options() == {
        "cache_scope": CacheScope.CSE,
        "check_valid": CacheCheckValid.SHALLOW,
    }
    assert uncached.options(cache=True).get_task_option("cache_scope") is CacheScope.BACKEND
    # An explicit cache_scope wins over cache, as it does when the job is scheduled.
    both = uncached.options(cache_scope="NONE")
    assert both.get_task_option("cache_scope") is CacheScope.NONE
    assert not uncached.options().has_task_option("cache")
    plain = task(name="plain")(lambda: 1)
    assert not plain.has_task_option("cache_scope")
