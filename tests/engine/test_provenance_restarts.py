"""Provenance and processes stay true when the scheduler dies: `process` workers of a
scheduler killed with SIGKILL exit instead of running on as orphans, and the next `kredun
run` against the database marks a killed run's execution and jobs as interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.kube.testing import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running (a zombie left for a reaper that never comes counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_process_workers_exit_when_the_scheduler_is_killed(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from kredun import task
        from kredun.scheduler import Scheduler

        @task(executor="procs")
        def nap(i: int) -> int:
            import os, time
            open(os.path.join({str(marks)!r}, str(os.getpid())), "w").close()
            time.sleep(120)
            return i

        if __name__ == "__main__":  # spawned workers import this file again
            config = {{"executors": {{"procs": {{"type": "process", "max_workers": 2}}}}}}
            Scheduler(config=config).run([nap(1), nap(2)])
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    scheduler = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path)
    try:
        wait_for(lambda: len(list(marks.iterdir())) == 2, timeout=60, message="two workers")
        workers = [int(path.name) for path in marks.iterdir()]
        assert all(alive(pid) for pid in workers)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10,
                 message="the orphaned workers to exit")  # fmt: skip
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
        for path in marks.iterdir():
            if alive(int(path.name)):
                os.kill(int(path.name), signal.SIGKILL)


SLEEPY_WORKFLOW = """
import time
from kredun import task

@task()
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

@task()
def main(seconds: float = 0.0) -> float:
    return nap(seconds)
"""


def test_an_interrupted_kredun_run_is_marked_on_the_next_run(tmp_path: Path) -> None:
    from kredun.errors import StoreError
    from kredun.provenance.store import ProvenanceStore

    (tmp_path / "wf.py").write_text(SLEEPY_WORKFLOW)
    database = f"sqlite:///{tmp_path / 'kredun.db'}"
    kredun = [str(Path(sys.executable).parent / "kredun"), "run", "--database", database]
    env = {**os.environ, "KREDUN_STATE_DIR": str(tmp_path / "state")}
    killed = subprocess.Popen([*kredun, "wf.py", "main", "--seconds", "120"], cwd=tmp_path,
                              env=env, stderr=subprocess.DEVNULL)  # fmt: skip

    def running_job() -> str | None:
        if not (tmp_path / "kredun.db").exists():
            return None
        with ProvenanceStore(database) as store:
            try:
                for execution in store.recent_executions():
                    if any(job.task_name == "nap" for job in store.jobs_of(execution.id)):
                        return execution.id
            except StoreError:  # the schema is being created
                pass
        return None

    try:
        first = wait_for(running_job, timeout=60, message="the nap job recorded")
    finally:
        killed.kill()
        killed.wait(timeout=10)
    with ProvenanceStore(database) as store:
        assert store.find_execution(first).status == "RUNNING"
    done = subprocess.run([*kredun, "wf.py", "main"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Execution {first} was interrupted" in done.stderr
    with ProvenanceStore(database) as store:
        execution = store.find_execution(first)
        jobs = store.jobs_of(first)
        latest = store.recent_executions(1)[0]
    assert execution.status == "CANCELLED" and "interrupted" in (execution.error or "")
    assert execution.end_time is not None
    assert jobs and all(job.status not in ("PENDING", "RUNNING") for job in jobs)
    assert latest.id != first and latest.status == "DONE"
    assert list((tmp_path / "state" / "runs").iterdir()) == []  # both markers gone


def test_a_live_run_is_not_marked(tmp_path: Path, monkeypatch) -> None:
    from kredun.cli.runs import RunMarkers

    monkeypatch.setenv("KREDUN_STATE_DIR", str(tmp_path))
    runs = RunMarkers("sqlite:///x.db")
    mine = runs.begin("a" * 32)
    assert mine is not None and runs.dead() == []
    mine.write_text('{"pid": 999999999, "started": "1"}')  # no such process
    assert runs.dead() == [mine]
    assert RunMarkers("sqlite:///other.db").dead() == []  # another database's runs
