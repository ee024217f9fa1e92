"""Provenance and processes stay true when the scheduler dies: `process` workers of a
scheduler killed with SIGKILL exit instead of running on as orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.kube.testing import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]


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
