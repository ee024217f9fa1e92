"""The `kredun` command, run as users run it: a separate process in a working directory."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KREDUN = [sys.executable, "-m", "kredun"]

WORKFLOW = """
from kredun import task

kredun_namespace = "wf"


@task()
def scaled(n: int, scale: float = 1.0, loud: bool = False, tags: list = None) -> dict:
    return {"n": n * scale, "loud": loud, "tags": tags or []}


@task()
def explode(message: str) -> str:
    raise RuntimeError(message)


@task(executor="many")
def where() -> str:
    import os
    return f"pid={os.getpid()}"


@task()
def process_name() -> str:
    import multiprocessing
    return multiprocessing.current_process().name


@task()
def unpicklable_argument() -> object:
    import threading
    return scaled(threading.Lock())


@task()
def main(n: int = 3) -> list:
    return [scaled(i) for i in range(n)]
"""


def kredun(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*KREDUN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "wf.py").write_text(WORKFLOW)
    return tmp_path


def test_run_prints_result_and_logs_jobs(workdir):
    done = kredun(workdir, "run", "wf.py", "main", "--n", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "[{'loud': False, 'n': 0.0, 'tags': []}, {'loud': False, 'n': 1.0, 'tags': []}]"
    )
    assert "Run    Job" in done.stderr and "wf.main(n=2) on default" in done.stderr
    assert "| ALL " in done.stderr
    assert (workdir / ".kredun" / "kredun.db").exists()
    again = kredun(workdir, "run", "wf.py", "main", "--n", "2")
    assert again.stdout == done.stdout
    assert "Cached Job" in again.stderr and "Run    Job" not in again.stderr
    fresh = kredun(workdir, "run", "--no-cache", "wf.py", "main", "--n", "2")
    assert "Cached Job" not in fresh.stderr and "Run    Job" in fresh.stderr


def test_parameters_are_typed_from_hints(workdir):
    done = kredun(
        workdir, "run", "wf.py", "scaled", "--n", "4", "--scale=0.5", "--loud", "--tags", '["a"]'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'loud': True, 'n': 2.0, 'tags': ['a']}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.py", "main"], "workflow file not found: missing.py"),
        (["run", "wf.py", "nope"], "no task 'nope' in"),
        (["run", "wf.py", "scaled", "--n", "x"], "parameter --n: expected int, got 'x'"),
        (["run", "wf.py", "scaled", "--m", "1"], "unknown parameter --m for task wf.scaled"),
        (["run", "wf.py", "scaled"], "missing required parameter(s) for wf.scaled: --n"),
        (["run", "--database", "nosuchdb://x", "wf.py", "main"], "nosuchdb://x"),
        (["run", "--executor", "warp", "wf.py", "main"], "unknown executor 'warp'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(workdir, args, message):
    done = kredun(workdir, *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kredun: error: "), done.stderr
    assert message in lines[0]


def test_unserializable_argument_is_one_error_line_without_traceback(workdir):
    done = kredun(workdir, "run", "wf.py", "unpicklable_argument")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kredun: error: argument of wf.scaled: cannot serialize lock value")
    assert "Traceback" not in done.stderr


def test_task_exception_shows_task_traceback_and_fails(workdir):
    done = kredun(workdir, "run", "wf.py", "explode", "--message", "kaput")
    assert done.returncode == 1
    assert "RuntimeError: kaput" in done.stderr
    assert 'wf.py", line' in done.stderr and "raise RuntimeError(message)" in done.stderr
    log = kredun(workdir, "log")
    assert "FAILED" in log.stdout.splitlines()[0]
    tree = kredun(workdir, "log", log.stdout.split()[0])
    assert "wf.explode" in tree.stdout and "!! RuntimeError: kaput" in tree.stdout


def test_log_lists_executions_and_shows_job_tree(workdir):
    kredun(workdir, "run", "wf.py", "main", "--n", "2")
    listing = kredun(workdir, "log")
    assert listing.returncode == 0
    (line,) = listing.stdout.strip().splitlines()
    assert "DONE" in line and "kredun run wf.py main --n 2" in line
    tree = kredun(workdir, "log", line.split()[0])
    lines = tree.stdout.strip().splitlines()
    assert lines[0].startswith("Execution ") and "DONE" in lines[0]
    assert any(row.startswith("  result: ") for row in lines)
    jobs = [row for row in lines if "wf." in row and not row.startswith("Execution")]
    assert jobs[0].split()[-1] == "wf.main"  # the root, not indented
    assert all(row.startswith("  ") and row.split()[-1] == "wf.scaled" for row in jobs[1:])
    assert kredun(workdir, "log", "ffffffff").returncode == 2


def test_db_upgrade(workdir):
    first = kredun(workdir, "db", "upgrade")
    assert first.returncode == 0 and "Upgraded database from revision none" in first.stdout
    second = kredun(workdir, "db", "upgrade")
    assert "up to date" in second.stdout


def test_named_executor_from_config_file(workdir):
    (workdir / ".kredun").mkdir()
    (workdir / ".kredun" / "kredun.toml").write_text(
        textwrap.dedent(
            """
            [executors.many]
            type = "process"
            max_workers = 2
            """
        )
    )
    done = kredun(workdir, "run", "wf.py", "where")
    assert done.returncode == 0, done.stderr
    assert "on many" in done.stderr
    assert done.stdout.strip().startswith("'pid=")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[executors.x]\nmax_workers = 2\n", "[executors.x] needs a 'type'"),
        (
            '[executors.x]\ntype = "local"\nmax_worker = 2\n',
            "unknown key executors.x.max_worker (valid: type, max_workers)",
        ),
        (
            '[executors.default]\ntype = "proces"\n',
            "executors.default.type = 'proces' is not an executor type "
            "(valid: batch, k8s, local, process",
        ),
        ('[databse]\nuri = "sqlite://"\n', "unknown section databse (valid: database,"),
    ],
)
def test_bad_config_file_is_a_clear_error(workdir, toml, message):
    (workdir / ".kredun").mkdir()
    (workdir / ".kredun" / "kredun.toml").write_text(toml)
    done = kredun(workdir, "run", "wf.py", "main")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "kredun.toml" in lines[0]  # the file is named


def test_process_executor_from_command_line(workdir):
    here = kredun(workdir, "run", "wf.py", "process_name")
    assert here.stdout.strip() == "'MainProcess'"
    done = kredun(workdir, "run", "--executor", "process", "--no-cache", "wf.py", "process_name")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("'SpawnProcess-")


def test_terminal_shows_live_progress_not_job_lines(workdir):
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*KREDUN, "run", "wf.py", "main"],
        cwd=workdir,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout, _ = process.communicate(timeout=60)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0
    assert "Run    Job" not in terminal  # per-job lines are replaced by the live table
    assert "| ALL " in terminal  # the final status table is still printed
    assert b"'n': 2.0" in stdout


def test_hello_example_runs():
    done = subprocess.run(
        ["kredun", "run", "examples/hello.py", "main", "--name", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KREDUN_DATABASE_URI": "sqlite://", "KREDUN_VALUE_STORE": "memory://"},
    )
    assert done.returncode == 0, done.stderr
    assert "'greeting': 'Hello, tests!'" in done.stdout
