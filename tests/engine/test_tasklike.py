"""Every kind of task offers what the engine relies on (kredun.tasklike)."""

from __future__ import annotations

import threading

import pytest
from kredun import task
from kredun.control import SchedulerTask, scheduler_task_named
from kredun.errors import ExecutorError
from kredun.executors.base import python_function
from kredun.executors.local import LocalExecutor
from kredun.executors.process import ProcessExecutor
from kredun.job import Job
from kredun.plan import TaskRef
from kredun.tasklike import NamedTask, TaskLike

kredun_namespace = "tasklike_test"


@task(memory=2)
def add(a: int, b: int = 1) -> int:
    return a + b


def reference() -> TaskRef:
    return TaskRef(add.fullname, add.hash, __name__, add.parameters, None, {"memory": 2})


@pytest.mark.parametrize("made", [lambda: add, reference], ids=["Task", "TaskRef"])
def test_tasks_that_become_jobs_are_task_like(made) -> None:
    made_task = made()
    assert isinstance(made_task, TaskLike)
    assert (made_task.fullname, made_task.namespace) == ("tasklike_test.add", "tasklike_test")
    assert made_task.hash == add.hash
    assert [parameter.name for parameter in made_task.parameters] == ["a", "b"]
    assert made_task.get_option("memory") == 2 and made_task.option_values["memory"] == 2
    assert made_task.options(memory=4).get_option("memory") == 4
    assert made_task.bind((1,), {"b": 3}) == {"a": 1, "b": 3}
    # A plan's reference hashes a call's arguments exactly as the task does.
    assert made_task.hash_arguments(["h1"], {}) == add.hash_arguments(["h1"], {})


def test_a_scheduler_task_is_named_but_never_a_job() -> None:
    catch = scheduler_task_named("kredun.catch")
    assert isinstance(catch, SchedulerTask)
    assert isinstance(catch, NamedTask)
    assert not isinstance(catch, TaskLike)


def job(of: TaskLike) -> Job:
    return Job("j", of, "e" * 40, "a" * 40, [1], {}, None, "default", None)


def test_an_in_process_executor_refuses_a_task_reference_by_name() -> None:
    assert python_function(job(add), "default") is add.func
    with pytest.raises(ExecutorError, match=r"'default' runs .* tasklike_test\.add is a task ref"):
        python_function(job(reference()), "default")


@pytest.mark.parametrize("kind", [LocalExecutor, ProcessExecutor])
def test_a_task_reference_sent_to_an_in_process_executor_fails_its_job(kind) -> None:
    executor = kind("here", {"max_workers": 1})
    reported = threading.Event()
    outcomes = []

    def report(outcome) -> None:
        outcomes.append(outcome)
        reported.set()

    try:
        executor.submit(job(reference()), report)
        assert reported.wait(10)
    finally:
        executor.shutdown()
    (outcome,) = outcomes
    assert isinstance(outcome.error, ExecutorError)
    assert "tasklike_test.add is a task reference" in str(outcome.error)
