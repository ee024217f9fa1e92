"""Job outcomes: what a worker reports when its task has run, parsed strictly on the
receiving side, and the worker that produces them without ever opening a database."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kredun import File, Scheduler, task
from kredun.config import Config
from kredun.domains import ResultNotes
from kredun.errors import OutcomeError
from kredun.executors.remote import RemoteExecutor
from kredun.hashing import hash_bytes, hash_value
from kredun.jobspec import SPEC_VERSION
from kredun.outcome import (
    MAX_OUTCOME_BYTES,
    FragmentRef,
    Outcome,
    TaskFailure,
    outcome_key,
    parse,
)
from kredun.plan import TaskRef, loads_plan
from kredun.refs import ValueRef
from kredun.serialize import dumps, ship
from kredun.stores import Stores
from kredun.trusted_values import TrustedValues
from kredun.valuestore import DirectoryValueStore, MemoryValueStore
from kredun.worker import report_outcome, run_job

from tests.support.worker_executor import UNREACHABLE_DATABASE

kredun_namespace = "outcometest"
HASH = "a" * 40


@task()
def halve(x: int) -> int:
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x // 2


@task()
def halve_twice(x: int) -> Any:
    return halve(halve(x))


class Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("not this one")


@task()
def fails_oddly() -> None:
    raise Unpicklable("\x1b[31mred\nline")


# -- the format ---------------------------------------------------------------------------


def value_outcome(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "kind": "value", "hash": HASH, "size": 3, "type": "builtins.int",
            "preview": "42", "truth": True} | fields  # fmt: skip


def error_outcome(**fields: Any) -> dict[str, Any]:
    error = {"classes": ["builtins.ValueError"], "message": "boom", "hash": None} | fields
    return {"version": 1, "error": error}


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(kind="value", hash=HASH, size=3, type="builtins.int", preview="42", truth=True),
        Outcome(kind="value", hash=HASH, size=9, type="kredun.File", preview="f", files=True),
        Outcome(kind="plan", hash=HASH, size=900, type="kredun.plan", preview="<plan>"),
        Outcome(error=TaskFailure(("builtins.KeyError", "builtins.LookupError"), "'k'", HASH)),
        Outcome(error=TaskFailure(("x.Unpicklable",), "no pickle", None)),
        Outcome(
            kind="value",
            hash=HASH,
            size=1,
            type="t",
            preview="p",
            provenance=FragmentRef(HASH, 1234),
        ),
        Outcome(
            error=TaskFailure(("builtins.ValueError",), "v", None), provenance=FragmentRef(HASH, 5)
        ),
        Outcome(kind="value", hash=HASH, size=1, type="t", preview="p", provenance_dropped=7),
    ],
)
def test_outcomes_survive_their_json(outcome: Outcome) -> None:
    assert parse(outcome.to_json()) == outcome
    assert parse(outcome.to_json().encode()) == outcome


def test_free_text_is_shortened_to_fit_a_termination_message() -> None:
    # Control characters take six bytes each in JSON: the caps alone would not fit.
    text = "\x00" * 5000
    value = Outcome(kind="value", hash=HASH, size=1, type=text, preview=text, truth=None)
    failure = Outcome(error=TaskFailure(tuple([text] * 40), text, None))
    for outcome in (value, failure):
        encoded = outcome.to_json()
        assert len(encoded.encode()) <= MAX_OUTCOME_BYTES
        parsed = parse(encoded)
        assert (parsed.error or parsed).hash == (outcome.error or outcome).hash


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (value_outcome(version=2), "'version'"),
        (value_outcome(version=True), "'version'"),
        (value_outcome(kind="pickle"), "'kind'"),
        (value_outcome(hash="../../etc/passwd"), "'hash'"),
        (value_outcome(hash="A" * 40), "'hash'"),
        (value_outcome(hash=None), "'hash'"),
        (value_outcome(size=-1), "'size'"),
        (value_outcome(size=1.5), "'size'"),
        (value_outcome(size=True), "'size'"),
        (value_outcome(type=7), "'type'"),
        (value_outcome(type="t" * 201), "'type'"),
        (value_outcome(preview=["x"]), "'preview'"),
        (value_outcome(preview="p" * 201), "'preview'"),
        (value_outcome(truth="yes"), "'truth'"),
        (value_outcome(files=None), "'files'"),
        (value_outcome(files=1), "'files'"),
        (value_outcome(extra=1), "extra"),
        ({k: v for k, v in value_outcome().items() if k != "size"}, "size"),
        (error_outcome(classes="builtins.ValueError"), "'error.classes'"),
        (error_outcome(classes=["a"] * 33), "'error.classes'"),
        (error_outcome(classes=[1]), "'error.classes'"),
        (error_outcome(message=None), "'error.message'"),
        (error_outcome(message="m" * 1001), "'error.message'"),
        (error_outcome(hash="xyz"), "'error.hash'"),
        (error_outcome(trace="..."), "error.trace"),
        ({"version": 1, "error": "boom"}, "'error'"),
        ({**error_outcome(), "kind": "value"}, "kind"),
        (value_outcome(provenance="x"), "'provenance'"),
        (value_outcome(provenance={"hash": HASH}), "provenance.size"),
        (value_outcome(provenance={"hash": HASH, "size": 1, "scope": "x"}), "provenance.scope"),
        (value_outcome(provenance={"hash": "../x", "size": 1}), "'provenance.hash'"),
        (value_outcome(provenance={"hash": HASH, "size": -1}), "'provenance.size'"),
        (value_outcome(provenance_dropped="many"), "'provenance_dropped'"),
        ({**error_outcome(), "provenance_dropped": True}, "'provenance_dropped'"),
        ({**error_outcome(), "provenance": []}, "'provenance'"),
    ],
)
def test_malformed_outcomes_are_refused_naming_the_field(document: dict, field: str) -> None:
    with pytest.raises(OutcomeError, match=f"field.*{field}|{field}.*field"):
        parse(json.dumps(document))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        ("{nope", "not valid JSON"),
        ("[" * 3000 + "]" * 3000, "over the limit"),
        ("[" * 2000 + "]" * 2000, "not valid JSON"),  # deeper than the parser recurses
        ('{"version": 1, "version": 1}', "appears twice"),
        (json.dumps(value_outcome(preview="p" * 4100)), "over the limit of 4096"),
    ],
)
def test_outcomes_that_are_not_outcomes(text: str, message: str) -> None:
    with pytest.raises(OutcomeError, match=message):
        parse(text)


def test_an_outcome_without_files_says_the_value_holds_none() -> None:
    # Workers older than the field omit it: their values are replayed as before.
    assert parse(json.dumps(value_outcome())).files is False
    assert parse(json.dumps(value_outcome(files=True))).files is True


def test_outcome_keys_are_value_store_keys() -> None:
    key = outcome_key("0f1e2d3c-aaaa:7")
    assert len(key) == 40 and key == outcome_key("0f1e2d3c-aaaa:7") != outcome_key("other")
    MemoryValueStore().put(key, b"{}")  # a valid key: the store checks


# -- the worker -----------------------------------------------------------------------------


def spec_for(store: Any, called: Any, *args: Any) -> dict[str, Any]:
    """A job spec calling `called` on `args`, its code shipped into `store`."""
    code = ship(called)
    store.put(hash_bytes(code), code)
    ref = TaskRef(called.fullname, called.hash, called.func.__module__, called.parameters,
                  ValueRef(hash_bytes(code)))  # fmt: skip
    return {
        "version": SPEC_VERSION, "job_id": "job-1", "execution_id": "exec-1",
        "eval_hash": HASH, "args_hash": HASH, "task_hash": called.hash, "task": ref.to_json(),
        "args": [ValueRef(hash_value(arg), dumps(arg)).to_json() for arg in args], "kwargs": {},
    }  # fmt: skip


def test_a_value_is_stored_under_the_sha1_of_its_bytes() -> None:
    store = MemoryValueStore()
    outcome, error = run_job(spec_for(store, halve, 84), store)
    assert error is None
    data = store.get(outcome.hash)
    assert hash_bytes(data) == outcome.hash and len(data) == outcome.size
    assert pickle.loads(data) == 42
    assert (outcome.kind, outcome.type, outcome.preview, outcome.truth) == (
        "value", "builtins.int", "42", True
    )  # fmt: skip
    zero, _ = run_job(spec_for(store, halve, 0), store)
    assert zero.truth is False


@task()
def file_pair(path: str) -> Any:
    return {"out": [File(path)], "n": 1}


def test_a_value_holding_files_is_reported_as_such(tmp_path: Path) -> None:
    store = MemoryValueStore()
    target = tmp_path / "out.txt"
    target.write_text("x")
    outcome, error = run_job(spec_for(store, file_pair, str(target)), store)
    assert error is None and outcome.files is True
    plain, _ = run_job(spec_for(store, halve, 84), store)
    assert plain.files is False


def test_returned_expressions_are_stored_as_a_plan_fragment() -> None:
    store = MemoryValueStore()
    outcome, error = run_job(spec_for(store, halve_twice, 8), store)
    assert error is None and outcome.kind == "plan" and outcome.truth is None
    data = store.get(outcome.hash)
    assert hash_bytes(data) == outcome.hash and len(data) == outcome.size
    plan = loads_plan(data)
    assert [node.get("call") for node in plan["nodes"]].count(halve.hash) == 2
    assert outcome.preview == f"<plan of {len(plan['nodes'])} nodes>"


def test_a_task_error_is_reported_with_its_classes_and_pickle() -> None:
    store = MemoryValueStore()
    outcome, error = run_job(spec_for(store, halve, 3), store)
    assert isinstance(error, ValueError)
    failure = outcome.error
    assert failure is not None and failure.message == "ValueError: 3 is odd"
    assert failure.classes == (
        "builtins.ValueError", "builtins.Exception", "builtins.BaseException"
    )  # fmt: skip
    assert failure.hash is not None and str(pickle.loads(store.get(failure.hash))) == "3 is odd"

    unpicklable, _ = run_job(spec_for(store, fails_oddly), store)
    assert unpicklable.error is not None and unpicklable.error.hash is None
    assert unpicklable.error.classes[0] == f"{__name__}.Unpicklable"
    assert parse(unpicklable.to_json()) == unpicklable  # control characters travel escaped


def test_the_outcome_goes_to_the_store_for_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryValueStore()
    outcome = Outcome(kind="value", hash=HASH, size=1, type="t", preview="p", truth=None)
    monkeypatch.delenv("KREDUN_OUTCOME_PATH", raising=False)
    monkeypatch.setenv("KREDUN_OUTCOME_TO_STORE", "1")
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "batch-job-1:3")
    report_outcome(outcome, store)
    report_outcome(outcome, store)  # a retried attempt replaces the outcome it left
    assert parse(store.get(outcome_key("batch-job-1:3"))) == outcome


def worker(tmp_path: Path, spec: dict[str, Any], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KREDUN_")}
    environment |= {"KREDUN_DATABASE_URI": UNREACHABLE_DATABASE,
                    "KREDUN_VALUE_STORE": f"file://{tmp_path / 'values'}", **env}  # fmt: skip
    command = [sys.executable, "-m", "kredun", "worker", "--spec-json", json.dumps(spec)]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)


def test_the_worker_command_never_opens_the_database(tmp_path: Path) -> None:
    store = DirectoryValueStore(tmp_path / "values")
    done = worker(tmp_path, spec_for(store, halve, 10))
    assert done.returncode == 0, done.stderr
    outcome = parse(done.stdout.splitlines()[-1])  # no KREDUN_OUTCOME_PATH: standard output
    assert pickle.loads(store.get(outcome.hash)) == 5

    path = tmp_path / "termination-log"
    done = worker(tmp_path, spec_for(store, halve, 7), KREDUN_OUTCOME_PATH=str(path))
    assert done.returncode == 1
    assert "ValueError: 7 is odd" in done.stderr
    failed = parse(path.read_text())
    assert failed.error is not None and failed.error.message == "ValueError: 7 is odd"
    assert UNREACHABLE_DATABASE not in done.stdout + done.stderr


# -- the receiving side ---------------------------------------------------------------------


class Receiver(RemoteExecutor):
    def launch(self, *args: Any) -> None:
        raise AssertionError("not launched here")

    def shutdown(self) -> None:
        pass


def received(outcome: Outcome | None, blob: bytes | None, references: bool = True,
             error: BaseException | None = None) -> Any:  # fmt: skip
    """What a remote executor reports for a job that ended with `outcome`, its result blob
    (stored under the outcome's hash) in the value store."""
    scheduler = Scheduler()
    receiver = Receiver("remote", {})
    receiver.bind(scheduler.host)
    if blob is not None and outcome is not None:
        scheduler.value_store.put(outcome.hash, blob)
    job = SimpleNamespace(id="0123456789", task=SimpleNamespace(fullname="ns.job"),
                          references=references)  # fmt: skip
    reports: list[Any] = []
    receiver.finished(job, reports.append, error, "log tail", outcome)
    (report,) = reports
    return report


def test_a_verified_result_is_reported_with_its_bytes() -> None:
    data = dumps([1, 2])
    outcome = Outcome(kind="value", hash=hash_bytes(data), size=len(data), type="builtins.list",
                      preview="[1, 2]", truth=True)  # fmt: skip
    report = received(outcome, data)
    assert (report.error, report.result, report.data, report.truth) == (None, outcome, data, True)
    assert report.value is None  # the executor never unpickles it
    laptop = received(outcome, data, references=False)
    assert laptop.data == data  # a laptop run's value domain loads the value from the bytes
    stores = Stores(Config("memory://", "memory://"))
    result, recorded = TrustedValues(stores, ResultNotes()).job_result(laptop)
    assert (result, recorded) == (("value", [1, 2], outcome.hash), data)

    large = dumps(b"z" * 100_000)  # over what a provenance row keeps inline
    outcome = Outcome(kind="value", hash=hash_bytes(large), size=len(large), type="bytes",
                      preview="b'zz...'", truth=True)  # fmt: skip
    report = received(outcome, large)
    assert (report.error, report.result, report.data) == (None, outcome, None)  # hashed, not held


@pytest.mark.parametrize(
    ("size", "blob", "message"),
    [
        (5, b"other", "hash mismatch"),  # bytes that are not the claimed ones
        (4, b"12345", "hash mismatch"),  # a size that is not theirs
        (17 * 1024**3, b"x", "over the limit"),  # claimed larger than a receiver hashes
        (100_000, b"y" * 100_000, "hash mismatch"),  # too large to read: hashed where it is
        (5, None, "is not in"),  # nothing stored
    ],
)
def test_a_result_that_is_not_what_the_outcome_says_fails_the_job(
    size: int, blob: bytes | None, message: str
) -> None:
    claimed = hash_bytes(b"12345")
    outcome = Outcome(kind="value", hash=claimed, size=size, type="t", preview="p", truth=None)
    report = received(outcome, blob)
    assert report.result is None and message in str(report.error)
    if message == "hash mismatch":
        assert claimed in str(report.error)


def test_a_failed_job_reports_what_its_task_raised() -> None:
    failure = TaskFailure(("builtins.KeyError", "builtins.LookupError"), "KeyError: 'k'", HASH)
    report = received(Outcome(error=failure), None, error=RuntimeError("pod failed"))
    assert str(report.error) == "pod failed" and report.traceback == "log tail"
    assert (report.error_classes, report.error_hash) == (failure.classes, HASH)
    # A job that exited successfully but reported a failure, or nothing, did not succeed.
    assert "without reporting a result" in str(received(Outcome(error=failure), None).error)
    assert "without reporting a result" in str(received(None, None).error)
