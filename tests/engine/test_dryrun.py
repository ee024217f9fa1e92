"""Dry runs: report which jobs would run and which would replay, running and recording
nothing; each branch stops at its first job that would have to run (redun's semantics)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kredun import Scheduler, task
from kredun.errors import DryRunResult

from tests.support.modes import MODES, PROCESS, run_in
from tests.support.tasks import calls, note, restored_registry  # noqa: F401

kredun_namespace = "dryrun_test"


@task()
def child(log: str, x: int) -> int:
    note(log, "child")
    return x + 1


@task()
def main(log: str, x: int):
    note(log, "main")
    return [child(log, x), child(log, x + 1)]


@task()
def explode(log: str) -> int:
    note(log, "explode")
    raise ValueError("boom")


@pytest.mark.parametrize("mode", MODES)
def test_dryrun_runs_nothing(mode, tmp_path):
    log = str(tmp_path / "log")
    with pytest.raises(DryRunResult) as report:
        run_in(mode, [main(log, 1), explode(log), child(log, 5)], dryrun=True)
    if mode == "subrun":  # the subrun job itself is what would run
        assert [call.split("(")[0] for call in report.value.would_run] == ["kredun.subrun"]
    else:
        assert report.value.would_run == [
            f"dryrun_test.main(log={log!r}, x=1)",
            f"dryrun_test.explode(log={log!r})",
            f"dryrun_test.child(log={log!r}, x=5)",
        ]
    assert report.value.cached == []
    assert calls(tmp_path / "log") == []


@pytest.mark.parametrize("process", [False, True], ids=["threads", "process"])
@pytest.mark.usefixtures("restored_registry")
def test_dryrun_replays_the_cache_and_stops_at_what_changed(tmp_path, process):
    log = str(tmp_path / "log")
    scheduler = Scheduler(
        db_uri=f"sqlite:///{tmp_path / 'db'}", config=PROCESS if process else None
    )
    with pytest.raises(DryRunResult):
        scheduler.run(main(log, 1), dryrun=True)
    assert scheduler.store.recent_executions() == []  # a dry run records nothing
    assert scheduler.run(main(log, 1)) == [2, 3]
    assert scheduler.run(main(log, 1), dryrun=True) == [2, 3]  # all cached: the value
    assert calls(tmp_path / "log") == ["main", "child", "child"]

    @task(namespace="dryrun_test", name="child")
    def edited(log: str, x: int) -> int:
        note(log, "edited")
        return x + 100

    with pytest.raises(DryRunResult) as report:
        scheduler.run(main(log, 1), dryrun=True)
    assert report.value.cached == [f"dryrun_test.main(log={log!r}, x=1)"]
    assert report.value.would_run == [
        f"dryrun_test.child(log={log!r}, x=1)", f"dryrun_test.child(log={log!r}, x=2)"
    ]  # fmt: skip
    assert calls(tmp_path / "log") == ["main", "child", "child"]
    assert len(scheduler.store.recent_executions()) == 1  # the real run only
    assert scheduler.run(main(log, 1)) == [101, 102]  # a real run after a dry one records
    scheduler.close()


def test_cli_dryrun(tmp_path):
    (tmp_path / "wf.py").write_text(
        "from kredun import task\n\n\n"
        "@task()\ndef inc(x: int) -> int:\n    return x + 1\n\n\n"
        "@task()\ndef main(x: int = 1) -> list:\n    return [inc(x), inc(x + 1)]\n"
    )

    def kredun(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kredun", "run", *args], cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip

    dry = kredun("--dryrun", "wf.py", "main")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == ["Dry run: 1 job(s) would run, 0 would replay.",
                                       "  run     main(x=1)"]  # fmt: skip
    assert kredun("wf.py", "main").stdout.strip() == "[2, 3]"
    (tmp_path / "wf.py").write_text((tmp_path / "wf.py").read_text().replace("x + 1\n", "x + 2\n"))
    dry = kredun("--dryrun", "wf.py", "main")
    assert dry.stdout.splitlines() == [
        "Dry run: 2 job(s) would run, 1 would replay.",
        "  run     inc(x=1)",
        "  run     inc(x=2)",
        "  cached  main(x=1)",
    ]
    (tmp_path / "wf.py").write_text((tmp_path / "wf.py").read_text().replace("x + 2\n", "x + 1\n"))
    dry = kredun("--dryrun", "wf.py", "main")
    assert dry.stdout.splitlines()[-1] == "[2, 3]"
