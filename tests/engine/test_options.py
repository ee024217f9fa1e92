"""No silent acceptance: unknown task options and configuration keys are errors where written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kredun import Scheduler, subrun, task
from kredun.config import config_from_dict, load_config_file
from kredun.errors import ConfigError, KredunError, TaskOptionError
from kredun.executors import register_executor_type
from kredun.options import known_task_options
from kredun_operator.errors import SettingsError
from kredun_operator.settings import settings_from_dict

REPO = Path(__file__).resolve().parents[2]
kredun_namespace = "options_test"


@task()
def inc(x: int) -> int:
    return x + 1


def test_a_misspelt_option_fails_at_decoration_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(TaskOptionError) as raised:

        @task(retires=3)
        def typo(x):
            return x

    message = str(raised.value)
    assert "task options_test.typo: unknown option 'retires'" in message
    # Core options and each executor's own options are listed.
    for name in ("retries", "cache", "executor", "node_selector", "fallback", "job_queue"):
        assert name in message
    assert isinstance(raised.value, KredunError) and isinstance(raised.value, TypeError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limits": [3]}, "option limits=[3] must be a list of limit names"),
        ({"cache_scope": "ALL"}, "option cache_scope='ALL' must be CacheScope"),
        ({"hash_includes": 3}, "option hash_includes=3 must be a list"),
        ({"script": "yes"}, "option script='yes' must be True or False"),
        ({"tags": [("a", [1])]}, "option tags=[('a', [1])] the value of tag 'a'"),
        ({"retries": -1}, "option retries=-1 must be a whole number >= 0"),
        ({"retries": "2"}, "option retries='2' must be a whole number"),
        ({"cache": "no"}, "option cache='no' must be True or False"),
        ({"executor": ""}, "option executor='' must name an executor"),
        ({"nout": -2}, "option nout=-2"),
        ({"check_valid": "deep"}, "must be 'full' or 'shallow'"),
    ],
)
def test_options_redun_has_but_kredun_does_not_and_bad_values(options, message) -> None:
    with pytest.raises(TaskOptionError, match=re.escape(message)):
        task(**options)(lambda_free_function)


def lambda_free_function(x):
    return x


def test_executor_specific_options_are_accepted() -> None:
    pods = task(memory="4Gi", cpus=2, node_selector={"a": "b"}, fallback="batch")(
        lambda_free_function
    )
    batch = task(executor="batch", job_queue="q", vcpus=2)(lambda_free_function)
    assert pods.get_option("memory") == "4Gi" and batch.get_option("job_queue") == "q"


def test_options_given_at_call_time_are_checked_too() -> None:
    with pytest.raises(TaskOptionError, match="unknown option 'executer'"):
        inc.options(executer="process")
    with pytest.raises(TaskOptionError, match="unknown option 'retires'"):
        subrun(inc(1), executor="process", retires=2)


def test_a_registered_executor_type_declares_its_options(monkeypatch) -> None:
    import kredun.executor_types as catalogue
    import kredun.options as registry

    for module, name in [(catalogue, "EXECUTOR_TYPES"), (catalogue, "CONFIG_KEYS"),
                         (registry, "_EXECUTOR_OPTIONS")]:  # fmt: skip
        monkeypatch.setattr(module, name, dict(getattr(module, name)))
    monkeypatch.setattr(registry, "_known", None)
    with pytest.raises(TaskOptionError, match="unknown option 'queue_priority'"):
        task(queue_priority=3)(lambda_free_function)
    register_executor_type(
        "options-test", "kredun.executors.local:LocalExecutor",
        config_keys=("max_workers", "colour"), task_options=("queue_priority",),
    )  # fmt: skip
    assert task(queue_priority=3)(lambda_free_function).get_option("queue_priority") == 3
    config = config_from_dict({"executors": {"x": {"type": "options-test", "colour": "red"}}})
    assert config.executors["x"]["colour"] == "red"
    with pytest.raises(ConfigError, match=r"unknown key executors\.x\.shade"):
        config_from_dict({"executors": {"x": {"type": "options-test", "shade": "red"}}})


def test_every_option_the_code_reads_is_registered() -> None:
    """The registry is the list users see; an option read but not listed could not be set."""
    read: set[str] = set()
    for path in [*(REPO / "sdk" / "kredun").rglob("*.py"),
                 *(REPO / "operator" / "kredun_operator").rglob("*.py")]:  # fmt: skip
        read.update(re.findall(r"get_option\(\s*\"(\w+)\"", path.read_text()))
    # The Pod manifest and the resource parser read the task's options directly.
    for path in [REPO / "operator" / "kredun_operator" / "podspec.py",
                 REPO / "sdk" / "kredun" / "resources.py"]:  # fmt: skip
        read.update(re.findall(r"\boptions\.get\(\"(\w+)\"", path.read_text()))
    assert {"cache", "executor", "retries", "memory", "fallback"} <= read
    assert read - known_task_options() == set()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[databse]\nuri = "x"\n', "unknown section databse (valid: database, value_store"),
        ('[database]\nurl = "x"\n', "unknown key database.url (valid: uri)"),
        (
            '[executors.default]\ntype = "proces"\n',
            # Sorted; types other tests register in this process may follow.
            "executors.default.type = 'proces' is not an executor type (valid: batch, k8s, "
            "local, process",
        ),
        (
            '[executors.default]\ntype = "local"\nmax_worker = 2\n',
            "unknown key executors.default.max_worker (valid: type, max_workers)",
        ),
        (
            '[executors.p]\ntype = "process"\nstart = "fork"\n',
            "unknown key executors.p.start (valid: type, max_workers, start_method)",
        ),
        ('[executors.b]\ntype = "batch"\njob_qeue = "q"\n', "unknown key executors.b.job_qeue"),
        (
            '[executors.k]\ntype = "k8s"\nfalback = "batch"\n',
            "unknown key executors.k.falback (valid: type, fallback, fallback_after, max_cpus",
        ),
    ],
)
def test_config_file_typos_name_the_file_the_key_and_the_choices(tmp_path, toml, message):
    path = tmp_path / "kredun.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_config_dicts_are_checked_by_scheduler_and_subrun() -> None:
    with pytest.raises(ConfigError, match=r"unknown key executors\.default\.max_worker"):
        Scheduler(config={"executors": {"default": {"type": "local", "max_worker": 1}}})
    with pytest.raises(ConfigError, match=r"subrun config: .*'proces' is not an executor type"):
        subrun(inc(1), config={"executors": {"default": {"type": "proces"}}})


def test_operator_settings_check_executor_keys_too() -> None:
    stores = {"database": {"uri": "sqlite:////x.db"}, "value_store": {"uri": "file:///v"}}
    with pytest.raises(SettingsError, match=r"unknown key executors\.batch\.job_qeue"):
        settings_from_dict({**stores, "executors": {"batch": {"type": "batch", "job_qeue": "q"}}})


def test_examples_config_reads_cleanly() -> None:
    config = load_config_file(REPO / "examples" / "batch.toml")
    assert config.executors["batch"]["type"] == "batch"
