"""User-defined value types (kredun.value.Value): their own identity and validity.

A cached result holding a value whose `is_valid()` is now False is not replayed: the call
runs again (redun's rule), across `kredun run`s on one database, on threads and processes,
and for results one Scheduler keeps in memory; a value shared within one run is not asked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kredun import Scheduler, task
from kredun.hashing import hash_value
from kredun.serialize import dumps
from kredun.validity import checking_staleness
from kredun.value import Value

WORKFLOW = """
import os
from pathlib import Path
from kredun import task
from kredun.value import Value

kredun_namespace = "cval"
EXECUTOR = os.environ.get("CVAL_EXECUTOR", "default")


class Table(Value):
    # A handle on outside state: valid while the marker file still holds its version.
    def __init__(self, version: str) -> None:
        self.version = version

    def is_valid(self) -> bool:
        marker = Path("marker")
        return marker.exists() and marker.read_text() == self.version


@task(executor=EXECUTOR)
def build() -> Table:
    version = Path("marker").read_text()
    return Table(version)


@task(executor=EXECUTOR)
def describe(table: Table) -> str:
    return "table " + table.version


@task(executor=EXECUTOR)
def main() -> str:
    return describe(build())
"""

JOB_LINE = re.compile(r"(Run|Cached) +Job \w+:  cval\.(\w+)\(")


def run_workflow(directory: Path, database: str, executor: str) -> tuple[str, dict[str, list]]:
    done = subprocess.run(
        [sys.executable, "-m", "kredun", "run", "--database", database, "wf.py", "main"],
        cwd=directory, capture_output=True, text=True, timeout=180,
        env={**os.environ, "CVAL_EXECUTOR": executor},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    jobs: dict[str, list[str]] = {"Run": [], "Cached": []}
    for action, name in JOB_LINE.findall(done.stderr):
        jobs[action].append(name)
    return done.stdout.strip(), {action: sorted(names) for action, names in jobs.items()}


@pytest.mark.parametrize("executor", ["default", "process"])
def test_an_invalid_cached_value_reruns_the_call_that_made_it(tmp_path, executor):
    (tmp_path / "wf.py").write_text(WORKFLOW)
    (tmp_path / "marker").write_text("v1")
    database = f"sqlite:///{tmp_path / 'kredun.db'}"
    everything = ["build", "describe", "main"]
    first = run_workflow(tmp_path, database, executor)
    assert first == ("'table v1'", {"Run": everything, "Cached": []})
    again = run_workflow(tmp_path, database, executor)
    assert again == ("'table v1'", {"Run": [], "Cached": everything})
    # The outside state moved on: the value build returned is no longer valid, so build
    # runs again; its new value is a new argument for describe.
    (tmp_path / "marker").write_text("v2")
    assert run_workflow(tmp_path, database, executor) == (
        "'table v2'", {"Run": ["build", "describe"], "Cached": ["main"]}
    )  # fmt: skip


class Switch(Value):
    def __init__(self, name: str) -> None:
        self.name = name

    def is_valid(self) -> bool:
        return VALID.get(self.name, True)


VALID: dict[str, bool] = {}
CALLS: list[str] = []


@task(namespace="cval_unit")
def make_switch(name: str) -> Switch:
    CALLS.append(name)
    return Switch(name)


@task(namespace="cval_unit")
def again(first: Switch) -> Switch:
    # The same call as the one that made `first`, made once that one has finished.
    return make_switch(first.name)


def test_one_scheduler_asks_results_it_kept_in_memory_but_not_within_a_run():
    scheduler = Scheduler()
    VALID.clear()
    CALLS.clear()
    scheduler.run(make_switch("a"))
    scheduler.run(make_switch("a"))
    assert CALLS == ["a"]  # replayed
    VALID["a"] = False
    scheduler.run(make_switch("a"))
    assert CALLS == ["a", "a"]  # no longer valid: ran again
    CALLS.clear()
    # Within one run an identical later call shares the first's value unchecked, as in
    # redun: a call is evaluated once per run.
    VALID["b"] = False
    assert scheduler.run(again(make_switch("b"))).name == "b"
    assert CALLS == ["b"]


class Named(Value):
    """Identified by its name only, whatever else it carries."""

    def __init__(self, name: str, payload: bytes) -> None:
        self.name = name
        self.payload = payload

    def get_hash(self, data: bytes | None = None) -> str:
        return hash_value(("Named", self.name))


def test_get_hash_is_the_value_identity_and_state_round_trips():
    assert hash_value(Named("x", b"1")) == hash_value(Named("x", b"2"))
    assert hash_value(Named("x", b"1")) != hash_value(Named("y", b"1"))
    # The default identity follows the pickled state.
    assert hash_value(Switch("a")) == hash_value(Switch("a")) != hash_value(Switch("b"))
    import pickle

    restored = pickle.loads(dumps(Named("x", b"payload")))
    assert (restored.name, restored.payload) == ("x", b"payload")


def test_only_values_that_define_is_valid_are_checked_when_restored():
    VALID["c"] = False
    with checking_staleness() as problems:
        import pickle

        pickle.loads(dumps([Named("x", b""), Switch("c")]))
    assert problems == [
        "tests.engine.test_custom_values.Switch value is no longer valid (its is_valid() is False)"
    ]
