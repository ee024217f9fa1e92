"""`kredun log`, `kredun log --why`, `kredun log --file` and `kredun tag`, run as users run
them: separate processes in a working directory with its own SQLite database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

KREDUN = [sys.executable, "-m", "kredun"]

WORKFLOW = """
from kredun import File, task


@task()
def count(source: File) -> int:
    return len(source.read())


@task()
def double(n: int) -> int:
    return n * 2


@task(cache=False)
def fresh(n: int) -> int:
    return n


@task()
def report(total: int, path: str) -> File:
    out = File(path)
    out.write(f"total {total}")
    return out


@task(tags={"team": "t1"})
def main(src: str, k: int = 1) -> list:
    counted = double(count(File(src)))
    return [counted, double(k), fresh(k), report(counted, "report.txt")]
"""


def kredun(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*KREDUN, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KREDUN_DATABASE_URI": f"sqlite:///{cwd}/p.db"},
    )  # fmt: skip
    return done


def ok(cwd: Path, *args: str) -> str:
    done = kredun(cwd, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def newest(cwd: Path, task_name: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = json.loads(
        ok(cwd, "log", "--task", task_name, "--format", "json", "--limit", "1")
    )
    return jobs[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "wf.py").write_text(WORKFLOW)
    (tmp_path / "in.txt").write_text("abc")
    ok(tmp_path, "run", "--tag", "project=p1", "wf.py", "main", "--src", "in.txt")
    return tmp_path


def test_why_names_what_changed_since_the_closest_earlier_call(workdir: Path) -> None:
    ok(workdir, "run", "wf.py", "main", "--src", "in.txt")
    why = ok(workdir, "log", "--why", newest(workdir, "main")["id"])
    first = json.loads(ok(workdir, "log", "--format", "json"))[-1]
    assert "replayed the cached result" in why and first["id"] in why

    ok(workdir, "run", "wf.py", "main", "--src", "in.txt", "--k", "2")
    why = ok(workdir, "log", "--why", newest(workdir, "main")["id"])
    assert "argument 'k' changed: 1 -> 2" in why

    (workdir / "in.txt").write_text("abcdef")
    ok(workdir, "run", "wf.py", "main", "--src", "in.txt", "--k", "2")
    count_job = newest(workdir, "count")
    assert count_job["status"] == "DONE"
    why = ok(workdir, "log", "--why", count_job["id"])
    assert "argument 'source': input File" in why and "in.txt changed" in why

    (workdir / "wf.py").write_text(WORKFLOW.replace("return n * 2", "return n + n"))
    ok(workdir, "run", "wf.py", "main", "--src", "in.txt", "--k", "2")
    why = ok(workdir, "log", "--why", newest(workdir, "double")["id"])
    assert "the code of task double changed" in why
    assert "-    return n * 2" in why and "+    return n + n" in why

    why = ok(workdir, "log", "--why", newest(workdir, "fresh")["id"])
    assert "cache=False" in why
    ok(workdir, "run", "--no-cache", "wf.py", "main", "--src", "in.txt", "--k", "2")
    assert "--no-cache" in ok(workdir, "log", "--why", newest(workdir, "main")["id"])


NESTED = """
from kredun import task


@task()
def leaf(n: int) -> int:
    return n + 1


@task()
def twice(n: int) -> int:
    return 2 * n


@task()
def middle(n: int) -> int:
    return leaf(n)


@task(check_valid="CHECK")
def main(n: int = 1) -> list:
    return [middle(n), middle(n + 1)]
"""


@pytest.mark.parametrize("check_valid", ["full", "shallow"])
def test_why_names_the_task_that_changed_under_a_replayed_call(
    tmp_path: Path, check_valid: str
) -> None:
    workflow = NESTED.replace("CHECK", check_valid)
    (tmp_path / "nested.py").write_text(workflow)
    ok(tmp_path, "run", "nested.py", "main")
    first = newest(tmp_path, "main")
    # Unchanged: with check_valid="shallow" main reuses its final value and no job runs
    # under it, so the tasks under it are those of the run that recorded that value.
    ok(tmp_path, "run", "nested.py", "main")
    unchanged = newest(tmp_path, "main")
    assert "tasks under it changed" not in ok(tmp_path, "log", "--why", unchanged["id"])
    compared = unchanged if check_valid == "full" else first
    old_leaf = newest(tmp_path, "leaf")["task_hash"]

    (tmp_path / "nested.py").write_text(workflow.replace("return n + 1", "return n + 3"))
    ok(tmp_path, "run", "nested.py", "main")
    parent, leaf = newest(tmp_path, "main"), newest(tmp_path, "leaf")
    assert parent["status"] == "CACHED" and leaf["status"] == "DONE"
    leaf_jobs = json.loads(ok(tmp_path, "log", "--task", "leaf", "--format", "json"))[:2]
    assert newest(tmp_path, "middle")["status"] == "CACHED"
    why = ok(tmp_path, "log", "--why", parent["id"])
    assert "main replayed the cached result of job" in why
    assert f"changed since job {compared['id'][:8]}" in why
    assert f"task leaf changed: {old_leaf[:8]} -> {leaf['task_hash'][:8]}" in why
    assert (
        "ran under it: " + ", ".join(f"leaf (job {job['id'][:8]})" for job in reversed(leaf_jobs))
        in why
    )
    assert "task middle" not in why and "task main" not in why
    answer = json.loads(ok(tmp_path, "log", "--why", parent["id"], "--format", "json"))
    assert answer["compared_with"] == compared["id"]
    assert answer["task_changes"] == [
        {"task": "leaf", "old": [old_leaf], "new": [leaf["task_hash"]]}
    ]
    assert answer["explanation"] == why.splitlines()

    # middle now calls a task it did not, and no longer calls leaf.
    old_middle = newest(tmp_path, "middle")["task_hash"]
    (tmp_path / "nested.py").write_text(workflow.replace("return leaf(n)", "return twice(n)"))
    ok(tmp_path, "run", "nested.py", "main")
    parent, middle = newest(tmp_path, "main"), newest(tmp_path, "middle")
    answer = json.loads(ok(tmp_path, "log", "--why", parent["id"], "--format", "json"))
    twice = newest(tmp_path, "twice")["task_hash"]
    assert answer["task_changes"] == [
        {"task": "leaf", "old": [leaf["task_hash"]], "new": []},
        {"task": "middle", "old": [old_middle], "new": [middle["task_hash"]]},
        {"task": "twice", "old": [], "new": [twice]},
    ]
    why = "\n".join(answer["explanation"])
    assert f"task leaf gone ({leaf['task_hash'][:8]})" in why
    assert f"task twice added ({twice[:8]})" in why
    assert "ran under it: middle (job" in why and ", twice (job" in why

    # main's own code changes too: it ran, and its diff comes before the tasks under it.
    edited = workflow.replace("return leaf(n)", "return twice(n)")
    edited = edited.replace("return 2 * n", "return n * 2").replace("[middle(n),", "[middle(n) ,")
    (tmp_path / "nested.py").write_text(edited)
    ok(tmp_path, "run", "nested.py", "main")
    earlier_parent = parent
    parent = newest(tmp_path, "main")
    assert parent["status"] == "DONE"
    why = ok(tmp_path, "log", "--why", parent["id"])
    assert "the code of task main changed:" in why and "+    return [middle(n) ," in why
    new_twice = newest(tmp_path, "twice")["task_hash"]
    assert (
        f"  tasks under it changed since job {earlier_parent['id'][:8]}" in why
        and f"    task twice changed: {twice[:8]} -> {new_twice[:8]}" in why
    )
    assert "    task main" not in why and "task middle" not in why
    assert why.index("the code of task main changed") < why.index("tasks under it changed")


def test_a_job_by_dashed_id_shows_arguments_result_edges_files_and_source(
    workdir: Path,
) -> None:
    job = newest(workdir, "report")
    shown = ok(workdir, "log", str(uuid.UUID(job["id"]))[:13])
    assert shown.startswith(f"Job {job['id']}  DONE  report")
    double_jobs = json.loads(ok(workdir, "log", "--task", "double", "--format", "json"))
    producer = next(j for j in double_jobs if f"[{j['result_hash'][:8]}]" in shown)
    assert "total = 6  [" in shown and f"<- job {producer['id'][:8]}" in shown
    assert "path = 'report.txt'" in shown
    assert f"output: File {workdir / 'report.txt'}" in shown
    assert "result: File(path=" in shown
    assert "def report(total: int, path: str) -> File:" in shown
    details = json.loads(ok(workdir, "log", job["id"], "--format", "json"))
    assert [a["name"] for a in details["arguments"]] == ["total", "path"]
    assert details["files"][0]["role"] == "output"


def test_file_says_which_job_wrote_it_from_which_inputs(workdir: Path) -> None:
    answer = ok(workdir, "log", "--file", "report.txt")
    assert "written by job" in answer and " report " in answer
    assert "with total = 6" in answer
    # Its lineage: report's total came from double, fed by count, which read in.txt.
    counter = newest(workdir, "count")
    assert (
        f"derived from File {workdir / 'in.txt'}  [" in answer
        and f"(read by job {counter['id'][:8]} count)" in answer
    )
    [written] = json.loads(ok(workdir, "log", "--file", "report.txt", "--format", "json"))
    assert [(u["file"]["path"], u["job_id"]) for u in written["upstream"]] == [
        (str(workdir / "in.txt"), counter["id"])
    ]
    source = ok(workdir, "log", "--file", str(workdir / "in.txt"))
    assert "read by job" in source and " count " in source
    missing = kredun(workdir, "log", "--file", "nowhere.txt")
    assert missing.returncode == 2 and "no job recorded" in missing.stderr


GATHER = """
from kredun import task


@task()
def double(n: int) -> int:
    return n * 2


@task()
def total(values: list) -> int:
    return sum(values)


@task()
def main() -> int:
    return total([double(1), double(2)])
"""


def test_an_argument_gathered_from_several_jobs_names_each(tmp_path: Path) -> None:
    (tmp_path / "wf.py").write_text(GATHER)
    ok(tmp_path, "run", "wf.py", "main")
    doubles = json.loads(ok(tmp_path, "log", "--task", "double", "--format", "json"))
    shown = ok(tmp_path, "log", newest(tmp_path, "total")["id"])
    fed_by = sorted(job["id"][:8] for job in doubles)
    assert "values = [2, 4]  [" in shown and len(fed_by) == 2
    assert shown.count("<- jobs ") == 1 and all(short in shown for short in fed_by)


def test_failed_job_shows_traceback_and_status_filter(workdir: Path) -> None:
    (workdir / "bad.py").write_text(
        "from kredun import task\n\n@task()\ndef boom(n: int) -> int:\n"
        "    raise ValueError(f'boom {n}')\n"
    )
    assert kredun(workdir, "run", "bad.py", "boom", "--n", "3").returncode == 1
    failed = json.loads(ok(workdir, "log", "--jobs", "--status", "failed", "--format", "json"))
    assert [job["task_name"] for job in failed] == ["boom"]
    shown = ok(workdir, "log", failed[0]["id"][:10])
    assert "error: ValueError: boom 3" in shown and "traceback:" in shown
    assert "raise ValueError" in shown
    executions = ok(workdir, "log", "--status", "FAILED")
    assert len(executions.splitlines()) == 1 and "bad.py boom" in executions
    bad = kredun(workdir, "log", "--status", "LOST")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_tags_filter_log_and_kredun_tag_changes_them(workdir: Path) -> None:
    assert "job " in ok(workdir, "log", "--tag", "team=t1")
    assert len(ok(workdir, "log", "--tag", "project=p1", "--status", "DONE").splitlines()) == 1
    execution = json.loads(ok(workdir, "log", "--format", "json"))[0]["id"]
    assert "Tagged execution" in ok(workdir, "tag", "add", execution[:8], "owner=ana", "x=1")
    assert ok(workdir, "tag", "list", execution[:8]).splitlines()[1:] == [
        "owner=ana", "project=p1", "x=1",
    ]  # fmt: skip
    assert "owner=ana  (1)" in ok(workdir, "tag", "list")
    assert "Removed 1" in ok(workdir, "tag", "rm", execution[:8], "owner")
    assert ok(workdir, "log", "--tag", "owner") == "Nothing carries that tag.\n"
    bad = kredun(workdir, "tag", "add", execution[:8], "novalue")
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr


def test_values_and_tasks_are_found_too(workdir: Path) -> None:
    job = newest(workdir, "double")
    value = ok(workdir, "log", job["result_hash"][:10])
    assert value.startswith(f"Value {job['result_hash']}  builtins.int")
    task = ok(workdir, "log", "double")
    assert task.startswith("Task double") and "def double(n: int)" in task


def test_no_broken_pipe_traceback_under_head(workdir: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m kredun log --jobs --limit 200 | head -1",
        shell=True, cwd=workdir, capture_output=True, text=True, timeout=60,
        env={**os.environ, "KREDUN_DATABASE_URI": f"sqlite:///{workdir}/p.db"},
    )  # fmt: skip
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


SUBRUN = """
from kredun import subrun, task


@task()
def leaf(n: int) -> int:
    return n + 1


@task()
def other(n: int) -> int:
    return n * 2


@task()
def inner(n: int) -> list:
    return [leaf(i) for i in range(n)] + [other(n)]


@task()
def main(n: int = 12) -> list:
    return subrun(inner(n), executor="EXECUTOR")
"""


@pytest.mark.parametrize("executor", ["default", "procs"])
def test_why_on_a_subrun_job_lists_the_inner_calls_that_ran_and_why(
    tmp_path: Path, executor: str
) -> None:
    (tmp_path / ".kredun").mkdir()
    (tmp_path / ".kredun" / "kredun.toml").write_text('[executors.procs]\ntype = "process"\n')
    workflow = SUBRUN.replace("EXECUTOR", executor)
    (tmp_path / "sub.py").write_text(workflow)
    ok(tmp_path, "run", "sub.py", "main", "--n", "2")
    (tmp_path / "sub.py").write_text(workflow.replace("return n + 1", "return n + 2"))
    ok(tmp_path, "run", "sub.py", "main", "--n", "2")
    job = newest(tmp_path, "kredun.subrun")
    (nested,) = json.loads(ok(tmp_path, "log", "--format", "json"))[:1]
    assert nested["parent_job_id"] == job["id"]
    leaves = json.loads(ok(tmp_path, "log", "--task", "leaf", "--format", "json", "--limit", "2"))
    why = ok(tmp_path, "log", "--why", job["id"]).splitlines()
    assert why == [
        "kredun.subrun ran because the task has cache=False: it never replays.",
        f"  it ran a subrun: its nested execution {nested['id'][:8]} (4 jobs) replays call "
        "by call; 2 ran:",
        *(f"    leaf (job {leaf['id'][:8]}): the code of task leaf changed"
          for leaf in reversed(leaves)),
    ]  # fmt: skip
    answer = json.loads(ok(tmp_path, "log", "--why", job["id"], "--format", "json"))
    assert answer["explanation"] == why
    (subrun,) = answer["subruns"]
    assert subrun["execution_id"] == nested["id"] and subrun["jobs"] == 4
    assert [(inner["job_id"], inner["task"]) for inner in subrun["ran"]] == [
        (leaf["id"], "leaf") for leaf in reversed(leaves)
    ]
    assert subrun["more"] == 0
    if executor != "default":
        return  # the cap below does not depend on where the subrun ran

    # More inner calls ran than are listed (inner, leaf 2..11 and other; leaf 0 and 1
    # replayed): the rest are counted.
    ok(tmp_path, "run", "sub.py", "main")
    answer = json.loads(
        ok(tmp_path, "log", "--why", newest(tmp_path, "kredun.subrun")["id"], "--format", "json")
    )
    (subrun,) = answer["subruns"]
    assert subrun["jobs"] == 14 and len(subrun["ran"]) == 10 and subrun["more"] == 2
    assert subrun["ran"][0]["task"] == "inner"
    assert subrun["ran"][0]["reason"] == "argument 'n' changed: 2 -> 12"
    assert answer["explanation"][1].endswith("; 12 ran:")
    assert answer["explanation"][-1] == "    and 2 more"


def test_values_are_read_in_the_scope_asked_for(tmp_path: Path) -> None:
    """On a cluster's database values are recorded in their namespace's scope: `--scope`
    (or the configuration's tenancy.cache_scope) reads them; a malformed scope is one line."""
    (tmp_path / "wf.py").write_text(GATHER)
    (tmp_path / "team.toml").write_text('[tenancy]\ncache_scope = "ns/team-a"\n')
    done = subprocess.run(
        [*KREDUN, "run", "wf.py", "main"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**os.environ, "KREDUN_DATABASE_URI": f"sqlite:///{tmp_path}/p.db",
                          "KREDUN_CONFIG": str(tmp_path / "team.toml")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = newest(tmp_path, "total")["id"]
    assert "result:" not in ok(tmp_path, "log", job)  # the default scope holds no values
    assert "result: 6  [" in ok(tmp_path, "log", "--scope", "ns/team-a", job)
    wrong = kredun(tmp_path, "log", "--scope", "team-a", job)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "--scope must be" in wrong.stderr
