"""redun's top-level API from `kredun`: `from redun import X` becomes `from kredun import X`.

Every name redun 0.44.1 exports either works with redun's meaning or fails at the import
line with NotSupportedError saying what to use instead."""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from pathlib import Path

import kredun
import pytest
from kredun import Scheduler, get_context, task
from kredun.compat import UNSUPPORTED, _schedulers
from kredun.control import scheduler_task
from kredun.errors import KredunError, NoCurrentScheduler, NotSupportedError, TaskNameError
from kredun.scheduler import get_current_scheduler, set_current_scheduler
from kredun.task import get_current_namespace, get_task_registry, namespace

from tests.support.modes import MODES, run_in

kredun_namespace = "redun_api_test"

# redun 0.44.1: `redun.__all__`, and the executor classes its __init__ also defines.
REDUN_ALL = (
    "Dir", "File", "Handle", "PartialTask", "Scheduler", "ShardedS3Dataset", "Task",
    "apply_tags", "catch", "cond", "get_current_namespace", "get_current_scheduler",
    "get_task_registry", "merge_handles", "namespace", "run", "script",
    "set_current_scheduler", "task", "throw", "version", "__version__",
)  # fmt: skip
REDUN_EXECUTOR_CLASSES = (
    "AliasExecutor", "AWSBatchExecutor", "AWSGlueExecutor", "DockerExecutor",
    "GCPBatchExecutor", "K8SExecutor", "LocalExecutor",
)  # fmt: skip
NOT_SUPPORTED = ("Handle", "merge_handles", "ShardedS3Dataset", "register_executor")
# redun.functools' public helpers.
REDUN_FUNCTOOLS = (
    "apply_func", "as_task", "compose", "compose_apply", "const", "delay", "eval_",
    "flat_map", "flatten", "force", "identity", "map_", "seq", "starmap", "zip_",
)  # fmt: skip


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def scheduler_in_body() -> bool:
    return get_current_scheduler(required=False) is None


calls: list[int] = []


@task()
def counted(x: int) -> int:
    calls.append(x)
    return x * 10


@task()
def threads(n: int = get_context("threads", 1)) -> int:
    return n


# Which scheduler is current on the scheduler's own thread, where redun's scheduler tasks
# run: the id of it, or None.
@scheduler_task("test_current_scheduler_id")
def _current_scheduler_id(run, node) -> None:
    current = get_current_scheduler(required=False)
    run.resolve(node, None if current is None else id(current))


# -- the names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in REDUN_ALL if n not in NOT_SUPPORTED])
def test_redun_top_level_name_is_exported(name):
    assert getattr(kredun, name) is not None
    assert name in kredun.__all__ or name == "__version__"


@pytest.mark.parametrize("name", NOT_SUPPORTED + REDUN_EXECUTOR_CLASSES)
def test_unsupported_redun_name_fails_at_import_with_advice(name):
    with pytest.raises(NotSupportedError) as raised:
        exec(f"from kredun import {name}", {})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"kredun.{name} (from redun) is not supported: ")
    assert isinstance(raised.value, ImportError)
    assert isinstance(raised.value, KredunError)
    assert name not in kredun.__all__


def test_register_executor_points_at_kredun_executor_types():
    with pytest.raises(NotSupportedError, match=r"register_executor_type\(\)"):
        from kredun import register_executor  # noqa: F401


def test_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        kredun.no_such_name  # noqa: B018
    assert not hasattr(kredun, "no_such_name")
    with pytest.raises(ImportError, match="cannot import name 'no_such_name'") as raised:
        exec("from kredun import no_such_name", {})
    assert not isinstance(raised.value, NotSupportedError)


def test_star_import_gives_every_supported_name():
    namespace_: dict = {}
    exec("from kredun import *", namespace_)
    for name in REDUN_ALL:
        if name not in NOT_SUPPORTED and name != "__version__":
            assert namespace_[name] is getattr(kredun, name)


@pytest.mark.parametrize("name", REDUN_FUNCTOOLS)
def test_redun_functools_helper_is_in_kredun_functools(name):
    functools = importlib.import_module("kredun.functools")
    assert callable(getattr(functools, name))


def test_no_prov_is_not_supported():
    with pytest.raises(NotSupportedError, match=r"kredun\.functools\.no_prov .*not supported"):
        from kredun.functools import no_prov  # noqa: F401


def test_readme_lists_every_unsupported_name():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Coming from redun", 1)[1].split("\n## ", 1)[0]
    for names in UNSUPPORTED.values():
        for name in names:
            assert f"`{name}`" in section or f"functools.{name}`" in section, name


def test_version_is_the_distribution_version():
    assert kredun.version == kredun.__version__ == importlib.metadata.version("kredun")


# -- get_current_scheduler / set_current_scheduler -----------------------------------------


def test_no_current_scheduler_outside_a_run():
    assert get_current_scheduler(required=False) is None
    with pytest.raises(NoCurrentScheduler, match="no kredun Scheduler is running"):
        get_current_scheduler()
    assert kredun.get_current_scheduler is get_current_scheduler


def test_set_current_scheduler_is_per_thread():
    scheduler = Scheduler()
    set_current_scheduler(scheduler)
    try:
        assert get_current_scheduler() is scheduler
        seen = []
        other = threading.Thread(target=lambda: seen.append(get_current_scheduler(False)))
        other.start()
        other.join()
        assert seen == [None]
    finally:
        set_current_scheduler(None)
    assert get_current_scheduler(required=False) is None


def test_running_scheduler_is_current_on_its_thread():
    scheduler = Scheduler()
    progress_saw = []
    result = scheduler.run(
        _current_scheduler_id(),
        progress=lambda counts: progress_saw.append(get_current_scheduler()),
    )
    assert result == id(scheduler)
    assert progress_saw and all(seen is scheduler for seen in progress_saw)
    assert get_current_scheduler(required=False) is None


def test_run_restores_the_scheduler_current_before_it():
    outer, inner = Scheduler(), Scheduler()
    set_current_scheduler(outer)
    try:
        assert inner.run(_current_scheduler_id()) == id(inner)
        assert get_current_scheduler() is outer
    finally:
        set_current_scheduler(None)


def test_current_scheduler_is_reset_when_the_run_fails():
    @task(namespace="redun_api_test")
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        Scheduler().run(boom())
    assert get_current_scheduler(required=False) is None


@pytest.mark.parametrize("mode", MODES)
def test_task_body_has_no_current_scheduler_as_in_redun(mode):
    # redun sets the current scheduler only on the thread running Scheduler.run(); a task
    # body runs on an executor's thread or process, where there is none.
    assert run_in(mode, scheduler_in_body()) is True


def test_forked_process_has_no_current_scheduler():
    config = {"executors": {"default": {"type": "process", "start_method": "fork"}}}
    scheduler = Scheduler(config=config)
    try:
        assert scheduler.run(scheduler_in_body()) is True
    finally:
        scheduler.close()


# -- get_task_registry / get_current_namespace ---------------------------------------------


def test_task_registry_finds_tasks_by_name_and_hash():
    registry = kredun.get_task_registry()
    assert registry is get_task_registry()
    assert registry.get("redun_api_test.add") is add
    assert registry.get(hash=add.hash) is add
    assert "redun_api_test.add" in registry
    assert add.hash in registry.task_hashes
    assert registry.get("redun_api_test.missing") is None
    assert registry.get(hash="0" * 40) is None
    assert add in list(registry)
    assert len(registry) == len(list(registry))


def test_task_registry_includes_scheduler_tasks():
    registry = get_task_registry()
    assert registry.get("kredun.cond") is not None
    assert registry.get("kredun.cond").fullname == "kredun.cond"
    assert "kredun.map_" in registry


def test_task_registry_gives_the_current_definition():
    @task(namespace="redun_api_test", name="redefined")
    def first() -> int:
        return 1

    @task(namespace="redun_api_test", name="redefined")
    def second() -> int:
        return 2

    assert get_task_registry().get("redun_api_test.redefined") is second
    assert get_task_registry().get(hash=first.hash) is None


def test_task_registry_get_needs_a_name_or_hash():
    with pytest.raises(TaskNameError, match="give task_name or hash"):
        get_task_registry().get()


def test_current_namespace_follows_namespace():
    assert get_current_namespace() == ""
    namespace("api_ns")
    try:
        assert kredun.get_current_namespace() == "api_ns"
    finally:
        namespace()
    assert get_current_namespace() == ""


# -- run ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_run(monkeypatch, tmp_path):
    """kredun.run() with no cached schedulers, no environment overrides, in tmp_path."""
    for name in ("KREDUN_CONFIG", "KREDUN_DATABASE_URI", "KREDUN_VALUE_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    calls.clear()
    yield tmp_path
    for scheduler in _schedulers.values():
        scheduler.close()
    _schedulers.clear()


def test_run_uses_the_config_dir_and_reuses_its_scheduler(fresh_run):
    config_dir = fresh_run / "conf"
    config_dir.mkdir()
    (config_dir / "kredun.toml").write_text("[context]\nthreads = 7\n")
    assert kredun.run(add(counted(1), threads()), config_dir=str(config_dir)) == 17
    assert (config_dir / "kredun.db").exists()
    assert calls == [1]
    (scheduler,) = _schedulers.values()
    # The same scheduler again: the call replays from the cache.
    assert kredun.run(counted(1), config_dir=str(config_dir)) == 10
    assert calls == [1]
    assert list(_schedulers.values()) == [scheduler]
    # Options reach Scheduler.run().
    assert kredun.run(counted(1), config_dir=str(config_dir), cache=False) == 10
    assert calls == [1, 1]
    assert kredun.run(threads(), config_dir=str(config_dir), context={"threads": 3}) == 3


def test_run_without_config_dir_is_what_kredun_run_uses(fresh_run):
    assert kredun.run(counted(2)) == 20
    assert (fresh_run / ".kredun" / "kredun.db").exists()
    # A scheduler of its own, on the same database: the cached call replays.
    _schedulers.clear()
    assert kredun.run(counted(2)) == 20
    assert calls == [2]


def test_run_reads_kredun_config_from_the_environment(fresh_run, monkeypatch):
    path = fresh_run / "elsewhere.toml"
    path.write_text(f'[database]\nuri = "sqlite:///{fresh_run}/env.db"\n[context]\nthreads = 5\n')
    monkeypatch.setenv("KREDUN_CONFIG", str(path))
    assert kredun.run(threads()) == 5
    assert (fresh_run / "env.db").exists()


def test_run_reports_a_bad_config_dir_file(fresh_run):
    (fresh_run / "bad").mkdir()
    (fresh_run / "bad" / "kredun.toml").write_text("[nonsense]\n")
    with pytest.raises(kredun.errors.ConfigError, match="nonsense"):
        kredun.run(add(1, 2), config_dir=str(fresh_run / "bad"))
    assert not _schedulers
