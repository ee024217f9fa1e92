"""script() and @task(script=True): shell commands as tasks, with staged input and output files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from kredun import Dir, File, Scheduler, script, task
from kredun.errors import ScriptError, TaskOptionError

WORKFLOW = """
import os
from kredun import File, script, task

kredun_namespace = "sv"
EXECUTOR = os.environ.get("SV_EXECUTOR", "default")


@task(executor=EXECUTOR)
def count_lines(item: File) -> int:
    return len(item.read().splitlines())


@task(executor=EXECUTOR)
def main(source: str = "in.txt") -> int:
    upper = script(
        "tr a-z A-Z < in.txt > out.txt",
        inputs=[File(source).stage("in.txt")],
        outputs=File("result/upper.txt").stage("out.txt"),
        tempdir=True,
        executor=EXECUTOR,
    )
    return count_lines(upper)


@task(executor=EXECUTOR)
def broken() -> bytes:
    return script("echo starting; echo 'cannot open reads.fq' >&2; exit 7", executor=EXECUTOR)
"""

JOB_LINE = re.compile(r"(Run|Cached) +Job \w+:  (?:sv\.)?([\w.]+)\(")


def kredun_run(directory: Path, executor: str, task_name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kredun", "run", "--database", "sqlite:///db.sqlite",
         "wf.py", task_name],
        cwd=directory, capture_output=True, text=True, timeout=180,
        env={**os.environ, "SV_EXECUTOR": executor},
    )  # fmt: skip


def ran(done: subprocess.CompletedProcess) -> list[str]:
    assert done.returncode == 0, done.stderr
    return sorted(name for action, name in JOB_LINE.findall(done.stderr) if action == "Run")


@pytest.mark.parametrize("executor", ["default", "process"])
def test_script_pipeline_follows_input_and_output_edits(tmp_path, executor):
    (tmp_path / "wf.py").write_text(WORKFLOW)
    (tmp_path / "in.txt").write_text("a\nb\n")
    upper = tmp_path / "result" / "upper.txt"

    first = kredun_run(tmp_path, executor, "main")
    assert ran(first) == ["count_lines", "kredun.script", "main"] and first.stdout.strip() == "2"
    assert upper.read_text() == "A\nB\n"
    assert ran(kredun_run(tmp_path, executor, "main")) == []

    (tmp_path / "in.txt").write_text("a\nb\nc\n")  # an edited input re-runs the script
    edited = kredun_run(tmp_path, executor, "main")
    assert ran(edited) == ["count_lines", "kredun.script", "main"] and edited.stdout.strip() == "3"
    assert upper.read_text() == "A\nB\nC\n"

    upper.unlink()  # a deleted output re-runs the script, and what reads the new file
    assert ran(kredun_run(tmp_path, executor, "main")) == ["count_lines", "kredun.script"]
    assert upper.read_text() == "A\nB\nC\n"

    failed = kredun_run(tmp_path, executor, "broken")
    assert failed.returncode == 1
    assert (
        "ScriptError: script exited with status 7; stderr:\ncannot open reads.fq" in failed.stderr
    )


def test_outputs_shape_is_mirrored_and_tempdir_is_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Pair = namedtuple("Pair", "first second")
    result = Scheduler().run(
        script(
            """
            pwd > where.txt
            echo one > one.txt
            mkdir -p many && echo x > many/x.txt
            printf 'stdout'
            """,
            outputs={
                "files": [File("kept/one.txt").stage("one.txt"), Dir("kept/many").stage("many")],
                "pair": Pair(File("-"), File("kept/where.txt").stage("where.txt")),
                "label": "constant",
            },
            tempdir=True,
        )
    )
    one, many = result["files"]
    assert one == File("kept/one.txt") and one.read() == "one\n"
    assert isinstance(many, Dir) and [item.path for item in many] == ["kept/many/x.txt"]
    assert isinstance(result["pair"], Pair) and result["pair"].first == b"stdout"
    assert result["label"] == "constant"
    workdir = Path(result["pair"].second.read().strip())
    assert workdir != tmp_path and not workdir.exists()


def test_script_without_tempdir_writes_outputs_in_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("x")
    scheduler = Scheduler()
    expr = script(["cp", "in.txt", "copy.txt"], inputs=[File("in.txt")], outputs=File("copy.txt"))
    copied = scheduler.run(expr)
    assert copied == File("copy.txt") and copied.read() == "x"


def test_staged_dirs_carry_hidden_files_that_the_dir_hash_leaves_out(tmp_path, monkeypatch):
    """As redun's `cp -r`: a tool's hidden files travel with a staged Dir both ways, though
    a Dir (its iteration, its hash, a plain copy_to) leaves them out."""
    monkeypatch.chdir(tmp_path)
    Path("ref/.meta").mkdir(parents=True)
    Path("ref/genome.fa").write_text(">chr1")
    Path("ref/.meta/index").write_text("built")
    out = Scheduler().run(
        script(
            "mkdir result && cat work/.meta/index > result/.seen && cp work/genome.fa result/",
            inputs=[Dir("ref").stage("work")],
            outputs=Dir("kept").stage("result"),
            tempdir=True,
        )
    )
    assert Path("kept/.seen").read_text() == "built"
    assert [item.path for item in out] == ["kept/genome.fa"]
    assert [item.path for item in Dir("ref").copy_to("plain")] == ["plain/genome.fa"]
    assert not Path("plain/.meta").exists()


def test_argv_commands_are_quoted_and_interpreters_respected(tmp_path):
    scheduler = Scheduler()
    assert scheduler.run(script(["echo", "a b; exit 1"])) == b"a b; exit 1\n"
    python = f"#!{sys.executable}\nimport sys\nprint(sys.version_info[0])"
    assert scheduler.run(script(python)) == b"3\n"


def test_a_missing_output_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScriptError, match=r"the script did not write its output never\.txt"):
        Scheduler().run(script("true", outputs=[File("never.txt")]))


@task(namespace="script_unit", script=True)
def greet(name: str, times: int = 1) -> str:
    return f"for i in $(seq {times}); do echo hello {name}; done"


@task(namespace="script_unit", script=True)
def fail_loudly() -> str:
    return "echo 'disk full' >&2; false"


def test_script_tasks_run_their_command_on_threads_and_processes():
    scheduler = Scheduler()
    assert scheduler.run(greet("you", times=2)) == b"hello you\nhello you\n"
    assert scheduler.run(greet.options(executor="process")("there")) == b"hello there\n"
    assert greet.hash == greet.options(executor="process").hash
    with pytest.raises(ScriptError, match="status 1; stderr:\ndisk full") as raised:
        scheduler.run(fail_loudly.options(executor="process")())
    assert raised.value.stderr == "disk full\n" and raised.value.returncode == 1


def test_script_option_takes_a_boolean():
    with pytest.raises(TaskOptionError, match="option script='yes' must be True or False"):
        greet.options(script="yes")
