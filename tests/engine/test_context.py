"""Context: get_context defaults read the job's context; update_context, Scheduler.run,
the [context] config section and `kredun run --context` set it; the values read are part
of the call's hash, and calls under different contexts are never merged."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kredun import Scheduler, get_context, subrun, task
from kredun.context import get_context_value, merge_dicts, parse_context_updates
from kredun.errors import ConfigError, ParameterError

from tests.support.modes import MODES, run_in
from tests.support.tasks import calls, note

kredun_namespace = "context_test"


@task()
def add(a: int, b: int, offset: int = get_context("offset", 3)) -> int:
    return a + b + offset


@task()
def scaled(a: int, offset: int = get_context("offset", 0), mult: int = get_context("m.ult", 1)):
    return (a + offset) * mult


@task()
def main(a: int = 3):
    return add(a, 4)


@task()
def logged_add(log: str, a: int, offset: int = get_context("offset", 0)) -> int:
    note(log, "add")
    return a + offset


@task()
def foo(log: str):
    return logged_add(log, 1)


@task()
def two_contexts(log: str):
    # Identical calls of foo, but under different contexts: two jobs, not one.
    return [foo(log), foo.update_context(offset=10)(log)]


@task()
def nested_main(a: int = 1):
    return subrun(main(a), executor="process")


@task()
def fails(x: int) -> int:
    raise ValueError(f"bad {x}")


@task()
def with_failing_default(x: int = fails(1)) -> int:
    return x


def test_get_context_value_and_merge():
    context = {"a": {"b": {"c": 1}}, "list": [1], "s": "x"}
    assert get_context_value(context, "a.b.c") == 1
    assert get_context_value(context, "a.b.missing", 5) == 5
    assert get_context_value(context, "list.0", "no") == "no"
    assert get_context_value(context, "s.deeper") is None
    assert merge_dicts([{"a": {"x": 1}, "b": 1}, {"a": {"y": 2}, "b": {"z": 3}}]) == {
        "a": {"x": 1, "y": 2}, "b": {"z": 3}
    }  # fmt: skip
    assert parse_context_updates(["a.b=1", "a.c=x y", "d=[1, 2]", "e=true"]) == {
        "a": {"b": 1, "c": "x y"}, "d": [1, 2], "e": True
    }  # fmt: skip
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(ParameterError, match="expected KEY=VALUE"):
            parse_context_updates([bad])
    with pytest.raises(TypeError, match="dotted path"):
        get_context(3)


@pytest.mark.parametrize("mode", MODES)
def test_context_reaches_defaults_through_every_layer(mode):
    assert run_in(mode, add(1, 2)) == 6  # the default's default
    assert run_in(mode, add(1, 2), context={"offset": 10}) == 13
    assert run_in(mode, add.update_context({"offset": 4})(1, 2)) == 7
    assert run_in(mode, add.update_context(offset=4).update_context(offset=5)(1, 2)) == 8
    assert run_in(mode, add(1, 2, offset=0), context={"offset": 10}) == 3  # given: not read
    # A child job inherits its parent's context; update_context merges, nested keys too.
    assert run_in(mode, main.update_context(offset=10)()) == 17
    assert run_in(mode, scaled.update_context({"m": {"ult": 3}})(1), context={"offset": 1}) == 6
    assert run_in(mode, nested_main.update_context(offset=100)()) == 105


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_default_fails_the_call(mode):
    with pytest.raises(ValueError, match="bad 1"):
        run_in(mode, with_failing_default())
    assert run_in(mode, with_failing_default(7)) == 7  # given: the default is not evaluated


def test_context_values_read_are_part_of_the_cache_key(tmp_path):
    log = tmp_path / "log"
    scheduler = Scheduler(db_uri=f"sqlite:///{tmp_path / 'db'}")
    assert scheduler.run(logged_add(str(log), 1), context={"offset": 1}) == 2
    assert scheduler.run(logged_add(str(log), 1), context={"offset": 1, "unread": 5}) == 2
    assert calls(log) == ["add"]  # context the task does not read leaves the call cached
    assert scheduler.run(logged_add(str(log), 1), context={"offset": 2}) == 3
    assert calls(log) == ["add", "add"]
    scheduler.close()
    # Across schedulers sharing the database, too.
    again = Scheduler(db_uri=f"sqlite:///{tmp_path / 'db'}")
    assert again.run(logged_add.update_context(offset=2)(str(log), 1)) == 3
    assert calls(log) == ["add", "add"]
    again.close()


@pytest.mark.parametrize("mode", MODES)
def test_calls_under_different_contexts_are_not_merged(mode, tmp_path):
    log = tmp_path / "log"
    assert run_in(mode, two_contexts(str(log))) == [1, 11]
    assert calls(log) == ["add", "add"]


def test_config_context_section(tmp_path):
    scheduler = Scheduler(config={"context": {"offset": 20, "m": {"ult": 2}}})
    assert scheduler.run(add(1, 2)) == 23
    assert scheduler.run(scaled(1), context={"m": {"ult": 3}}) == 63  # run context merges
    with pytest.raises(ConfigError, match=r"\[context\] must be a table"):
        Scheduler(config={"context": 3})
    with pytest.raises(TypeError, match="must be a dict"):
        scheduler.run(add(1, 2), context=[1])


CLI_WORKFLOW = """
from kredun import get_context, task


@task()
def show(name: str = get_context("name", "nobody"), deep: int = get_context("a.b", 0)) -> str:
    return f"{name}:{deep}"
"""


def _kredun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kredun", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_cli_context_options_and_config_section(tmp_path):
    (tmp_path / "wf.py").write_text(CLI_WORKFLOW)
    assert _kredun(tmp_path, "run", "wf.py", "show").stdout.strip() == "'nobody:0'"
    done = _kredun(tmp_path, "run", "--context", "name=ann", "--context", "a.b=2", "wf.py", "show")
    assert done.stdout.strip() == "'ann:2'", done.stderr
    (tmp_path / "ctx.json").write_text(json.dumps({"name": "bo", "a": {"b": 1}}))
    done = _kredun(
        tmp_path, "run", "--context-file", "ctx.json", "--context", "a.b=5", "wf.py", "show"
    )
    assert done.stdout.strip() == "'bo:5'", done.stderr
    (tmp_path / ".kredun").mkdir(exist_ok=True)
    (tmp_path / ".kredun" / "kredun.toml").write_text(
        textwrap.dedent("""
        [context]
        name = "cy"
        a = { b = 7 }
        """)
    )
    assert _kredun(tmp_path, "run", "wf.py", "show").stdout.strip() == "'cy:7'"
    bad = _kredun(tmp_path, "run", "--context", "name", "wf.py", "show")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "kredun: error: --context 'name': expected KEY=VALUE (KEY may be dotted: a.b)"
    ]
    missing = _kredun(tmp_path, "run", "--context-file", "nope.json", "wf.py", "show")
    assert missing.returncode == 2 and "--context-file nope.json" in missing.stderr
