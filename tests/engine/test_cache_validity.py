"""A cached result is reused only while the code that produced it is unchanged.

Each scenario edits a workflow file between `kredun run`s on one database, as a user would,
and checks both the result and which jobs ran again (redun's behaviour: a task is looked up
by name when called; a cached result holding an edited task value is not reused).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import store_uri  # noqa: F401
from tests.support.tasks import restored_registry  # noqa: F401

WORKFLOW = """
import os
from kredun import subrun, task

kredun_namespace = "cv"
EXECUTOR = os.environ.get("CV_EXECUTOR", "default")


@task(executor=EXECUTOR)
def child(x: int) -> int:
    return x + 1


@task(executor=EXECUTOR)
def main(x: int = 1) -> int:
    return child(x)


@task(executor=EXECUTOR)
def flaky(x: int) -> int:
    raise ValueError("not fixed yet")


@task(executor=EXECUTOR)
def uses_flaky(x: int = 1) -> int:
    return flaky(x)


@task(executor=EXECUTOR)
def apply(fn, x: int) -> int:
    return fn(x)


@task(executor=EXECUTOR)
def higher(x: int = 1) -> int:
    return apply(child, x)


@task(executor=EXECUTOR)
def helper(x: int) -> int:
    return x * 10


@task(executor=EXECUTOR)
def process(x: int) -> int:
    return helper(x)


@task(executor=EXECUTOR)
def pipeline(x: int = 1) -> int:
    return process(x)


@task()
def nested(x: int = 1) -> int:
    return subrun(main(x), executor="process")
"""

EDIT_CHILD = ("return x + 1", "return x + 100")
FIX_FLAKY = ('raise ValueError("not fixed yet")', "return x * 2")
JOB_LINE = re.compile(r"(Run|Cached) +Job \w+:  cv\.(\w+)\(")


class Workflow:
    def __init__(self, directory: Path, database: str, executor: str) -> None:
        self.directory = directory
        self.database = database
        self.executor = executor
        self.path = directory / "wf.py"
        self.path.write_text(WORKFLOW)

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text
        self.path.write_text(text.replace(old, new))

    def run(self, task_name: str) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
        done = subprocess.run(
            [sys.executable, "-m", "kredun", "run", "--database", self.database,
             "wf.py", task_name],
            cwd=self.directory, capture_output=True, text=True, timeout=180,
            env={**os.environ, "CV_EXECUTOR": self.executor},
        )  # fmt: skip
        jobs: dict[str, list[str]] = {"Run": [], "Cached": []}
        for action, name in JOB_LINE.findall(done.stderr):
            jobs[action].append(name)
        return done, jobs

    def result(self, task_name: str) -> tuple[str, dict[str, list[str]]]:
        done, jobs = self.run(task_name)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip(), jobs


@pytest.fixture(params=["default", "process"])
def workflow(request, tmp_path, store_uri):  # noqa: F811
    return Workflow(tmp_path, store_uri, request.param)


def test_unchanged_code_replays_without_running_a_job(workflow):
    assert workflow.result("main") == ("2", {"Run": ["main", "child"], "Cached": []})
    assert workflow.result("main") == ("2", {"Run": [], "Cached": ["main", "child"]})


def test_edited_child_reruns_and_only_it(workflow):
    workflow.result("main")
    workflow.edit(*EDIT_CHILD)
    result, jobs = workflow.result("main")
    assert result == "101"
    assert jobs == {"Run": ["child"], "Cached": ["main"]}


def test_edited_grandchild_reruns_and_nothing_that_merely_calls_it(workflow):
    assert workflow.result("pipeline")[0] == "10"
    workflow.edit("return x * 10", "return x * 20")
    result, jobs = workflow.result("pipeline")
    assert result == "20"
    # pipeline's and process's cached results call the next task by name: they replay.
    assert jobs == {"Run": ["helper"], "Cached": ["pipeline", "process"]}


def test_fixed_failing_task_runs_its_new_code(workflow):
    failed, _ = workflow.run("uses_flaky")
    assert failed.returncode == 1 and "not fixed yet" in failed.stderr
    again, _ = workflow.run("uses_flaky")
    assert again.returncode == 1  # errors are never replayed: it ran (and failed) again
    workflow.edit(*FIX_FLAKY)
    result, jobs = workflow.result("uses_flaky")
    assert result == "2"
    assert jobs == {"Run": ["flaky"], "Cached": ["uses_flaky"]}


def test_edited_task_passed_as_an_argument_reruns(workflow):
    assert workflow.result("higher")[0] == "2"
    workflow.edit(*EDIT_CHILD)
    result, jobs = workflow.result("higher")
    assert result == "101"
    # higher's cached result holds the old `child` task value: it is not reused.
    assert sorted(jobs["Run"]) == ["apply", "child", "higher"]


def test_subrun_follows_edits_inside_the_nested_scheduler(tmp_path, store_uri):  # noqa: F811
    workflow = Workflow(tmp_path, store_uri, "default")
    assert workflow.result("nested")[0] == "2"
    replayed, _ = workflow.result("nested")
    assert replayed == "2"
    workflow.edit(*EDIT_CHILD)
    assert workflow.result("nested")[0] == "101"


# -- the mechanism, in one process -------------------------------------------------------------


def _define(body: str):
    from kredun import task

    # The version stands for an edit: the source text is the same for every body.
    @task(namespace="cv_unit", name="step", version=body)
    def step(x):
        return eval(body, {"x": x})

    return step


@pytest.mark.usefixtures("restored_registry")
def test_a_task_value_from_an_older_definition_is_stale():
    import pickle

    from kredun.serialize import dumps
    from kredun.validity import checking_staleness

    old = _define("x + 1")
    data = dumps(old)
    with checking_staleness() as problems:
        assert pickle.loads(data) is old
    assert problems == []
    _define("x + 2")  # the same name, new code
    with checking_staleness() as problems:
        restored = pickle.loads(data)
    assert problems == ["task cv_unit.step was edited"]
    assert restored.hash == old.hash  # the value keeps the identity it was cached with


@pytest.mark.usefixtures("restored_registry")
def test_a_call_restores_to_the_current_definition():
    import pickle

    from kredun.serialize import dumps
    from kredun.validity import checking_staleness

    data = dumps(_define("x + 1")(5))
    current = _define("x + 2")
    with checking_staleness() as problems:
        call = pickle.loads(data)
    assert call.task is current and problems == []


@pytest.mark.usefixtures("restored_registry")
def test_a_call_of_a_task_no_longer_defined_is_stale():
    import importlib
    import pickle

    from kredun.serialize import dumps
    from kredun.validity import checking_staleness

    data = dumps(_define("x + 1")(5))
    del importlib.import_module("kredun.task")._registry["cv_unit.step"]
    with checking_staleness() as problems:
        pickle.loads(data)
    assert problems == ["task cv_unit.step is no longer defined"]


@pytest.mark.usefixtures("restored_registry")
def test_a_call_built_before_a_redefinition_runs_the_current_code():
    from kredun import Scheduler

    expr = _define("x + 1")(5)
    _define("x + 2")
    assert Scheduler().run(expr) == 7


@pytest.mark.usefixtures("restored_registry")
def test_a_task_value_redefined_in_this_process_is_not_replayed():
    from kredun import Scheduler, task

    @task(namespace="cv_unit")
    def apply_to(fn, x):
        return fn.func(x)  # uses the task value itself, not a call by name

    @task(namespace="cv_unit")
    def higher_order(x):
        return apply_to(get_step(), x)

    def get_step():
        from kredun import get_task

        return get_task("cv_unit.step")

    scheduler = Scheduler()
    _define("x + 1")
    assert scheduler.run(higher_order(1)) == 2
    _define("x + 2")
    assert scheduler.run(higher_order(1)) == 3
