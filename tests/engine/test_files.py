"""File and Dir values: hashing, staleness, and input/output edits between `kredun run`s.

The scenarios edit, add and remove input files and change or delete the report between
`kredun run`s on one database, as a user would, and check the result and which jobs ran
again (redun's semantics: a File's hash is part of every call it is passed to; a cached
result holding a File whose path changed since is not reused).
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kredun import ContentFile, Dir, File, Scheduler, glob_file, task
from kredun.errors import FileError
from kredun.serialize import dumps
from kredun.validity import checking_staleness

from tests.support.postgres import store_uri  # noqa: F401

REPO = Path(__file__).resolve().parents[2]

WORKFLOW = """
import os
from kredun import Dir, File, task

kredun_namespace = "fv"
EXECUTOR = os.environ.get("FV_EXECUTOR", "default")


@task(executor=EXECUTOR)
def list_inputs(data: Dir) -> list:
    return [item for item in data if item.path.endswith(".txt")]


@task(executor=EXECUTOR)
def count_words(item: File) -> int:
    return len(item.read().split())


@task(executor=EXECUTOR)
def count_all(items: list) -> list:
    return [count_words(item) for item in items]


@task(executor=EXECUTOR)
def write_report(counts: list, out: str) -> File:
    report = File(out)
    report.write(" ".join(map(str, counts)) + "\\n")
    return report


@task(executor=EXECUTOR)
def main(data: str = "data", out: str = "out/report.txt") -> File:
    return write_report(count_all(list_inputs(Dir(data))), out)
"""

JOB_LINE = re.compile(r"(Run|Cached) +Job \w+:  fv\.(\w+)\((?:item=File\(path=data/(\w+))?")


class Pipeline:
    def __init__(self, directory: Path, database: str, executor: str) -> None:
        self.directory = directory
        self.database = database
        self.executor = executor
        (directory / "wf.py").write_text(WORKFLOW)
        (directory / "data").mkdir()
        for name, text in {"a": "one", "b": "two words", "c": "three more words"}.items():
            self.write(f"data/{name}.txt", text)

    def write(self, relative: str, text: str) -> None:
        (self.directory / relative).write_text(text + "\n")

    def run(self) -> tuple[str, dict[str, list[str]]]:
        done = subprocess.run(
            [sys.executable, "-m", "kredun", "run", "--database", self.database, "wf.py", "main"],
            cwd=self.directory, capture_output=True, text=True, timeout=180,
            env={**os.environ, "FV_EXECUTOR": self.executor},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        jobs: dict[str, list[str]] = {"Run": [], "Cached": []}
        for action, name, item in JOB_LINE.findall(done.stderr):
            jobs[action].append(f"{name}:{item}" if item else name)
        jobs = {action: sorted(names) for action, names in jobs.items()}
        assert "out/report.txt" in done.stdout
        return (self.directory / "out" / "report.txt").read_text().strip(), jobs


ALL_JOBS = ["count_all", "count_words:a", "count_words:b", "count_words:c", "list_inputs",
            "main", "write_report"]  # fmt: skip


@pytest.fixture(params=["default", "process"])
def pipeline(request, tmp_path, store_uri):  # noqa: F811
    return Pipeline(tmp_path, store_uri, request.param)


def test_input_and_output_edits_rerun_exactly_the_jobs_that_touch_them(pipeline):
    assert pipeline.run() == ("1 2 3", {"Run": ALL_JOBS, "Cached": []})
    assert pipeline.run() == ("1 2 3", {"Run": [], "Cached": ALL_JOBS})

    # An edited input: the listing changed (main's expression holds the old Dir), the call
    # reading it runs again; the counts are the same, so the report is replayed.
    pipeline.write("data/b.txt", "other words")
    assert pipeline.run() == ("1 2 3", {
        "Run": ["count_all", "count_words:b", "list_inputs", "main"],
        "Cached": ["count_words:a", "count_words:c", "write_report"],
    })  # fmt: skip

    # An added input runs only its own count; a removed one runs no count at all.
    pipeline.write("data/d.txt", "four words in here")
    assert pipeline.run() == ("1 2 3 4", {
        "Run": ["count_all", "count_words:d", "list_inputs", "main", "write_report"],
        "Cached": ["count_words:a", "count_words:b", "count_words:c"],
    })  # fmt: skip
    (pipeline.directory / "data" / "a.txt").unlink()
    assert pipeline.run() == ("2 3 4", {
        "Run": ["count_all", "list_inputs", "main", "write_report"],
        "Cached": ["count_words:b", "count_words:c", "count_words:d"],
    })  # fmt: skip

    # The output deleted, then changed by hand: only the job that wrote it runs again.
    others = ["count_all", "count_words:b", "count_words:c", "count_words:d", "list_inputs", "main"]
    (pipeline.directory / "out" / "report.txt").unlink()
    assert pipeline.run() == ("2 3 4", {"Run": ["write_report"], "Cached": others})
    pipeline.write("out/report.txt", "tampered")
    assert pipeline.run() == ("2 3 4", {"Run": ["write_report"], "Cached": others})
    assert pipeline.run() == ("2 3 4", {"Run": [], "Cached": [*others, "write_report"]})


# -- one scheduler, several runs: results kept in memory are checked too ----------------------


@task(namespace="files_unit")
def make_output(path: str, text: str) -> File:
    output = File(path)
    output.write(text)
    return output


@task(namespace="files_unit")
def file_size(item: File) -> int:
    return len(item.read())


def test_a_result_kept_in_memory_is_stale_once_its_file_changes(tmp_path):
    scheduler = Scheduler()
    target = str(tmp_path / "out.txt")
    first = scheduler.run(make_output(target, "hello"))
    assert scheduler.run(make_output(target, "hello")) == first  # replayed
    Path(target).unlink()
    again = scheduler.run(make_output(target, "hello"))
    assert Path(target).read_text() == "hello" and again.hash != first.hash


def test_an_input_file_is_part_of_the_call_identity(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("abc")
    scheduler = Scheduler()
    assert scheduler.run(file_size(File(str(source)))) == 3
    source.write_text("abcdef")
    assert scheduler.run(file_size(File(str(source)))) == 6


# -- the values themselves ---------------------------------------------------------------------


def test_file_operations_and_hash_updates(tmp_path):
    item = File(str(tmp_path / "sub" / "a.txt"))
    assert not item.exists()
    missing = item.hash
    item.write("hello")  # creates the directory; closing the stream rehashes
    assert item.exists() and item.read() == "hello" and item.hash != missing
    assert item.size() == 5 and item.basename() == "a.txt" and item.isfile()
    with item.open("a") as stream:
        stream.write(" world")
    assert item.readlines() == ["hello world"] and item.hash == File(item.path).hash
    copy = item.copy_to(str(tmp_path / "b.txt"))
    assert isinstance(copy, File) and copy.read() == "hello world"
    item.remove()
    assert not item.exists() and item.hash == missing
    item.remove()  # removing a missing file is not an error


def test_dir_lists_files_recursively_and_hashes_its_listing(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "x.txt").write_text("x")
    (tmp_path / "d" / "sub" / "y.txt").write_text("y")
    directory = Dir(str(tmp_path / "d") + "/")
    assert directory.path == str(tmp_path / "d")
    assert [item.path for item in directory] == [
        str(tmp_path / "d" / "sub" / "y.txt"), str(tmp_path / "d" / "x.txt"),
    ]  # fmt: skip
    assert directory.file("sub/y.txt").read() == "y"
    before = Dir(directory.path).hash
    (tmp_path / "d" / "z.txt").write_text("z")
    assert Dir(directory.path).hash != before
    copied = directory.copy_to(str(tmp_path / "copy"))
    assert sorted(copied.rel_path(item.path) for item in copied) == ["sub/y.txt", "x.txt", "z.txt"]
    assert glob_file(str(tmp_path / "**" / "*.txt")) == sorted(
        str(path) for path in tmp_path.rglob("*.txt")
    )


def test_dir_and_glob_list_what_redun_lists(tmp_path):
    """As redun: a Dir is what `path/**` matches (no hidden names, linked directories
    followed) and a local glob matches directories as well as files."""
    data = tmp_path / "data"
    for relative in ["a.txt", ".hidden", ".cache/c.txt", "sub/b.txt", "elsewhere/d.txt"]:
        target = (data if not relative.startswith("elsewhere") else tmp_path) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(relative)
    (data / "linked").symlink_to(tmp_path / "elsewhere")
    listed = [os.path.relpath(item.path, data) for item in Dir(str(data))]
    assert listed == ["a.txt", "linked/d.txt", "sub/b.txt"]
    before = Dir(str(data)).hash
    (data / ".hidden").write_text("changed, but not part of the Dir")
    assert Dir(str(data)).hash == before
    (tmp_path / "elsewhere" / "d.txt").write_text("changed through the link")
    assert Dir(str(data)).hash != before
    assert glob_file(str(data / "*")) == [str(data / name) for name in ["a.txt", "linked", "sub"]]


def test_default_hash_follows_mtime_content_hash_follows_bytes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("same")
    stamped, by_content = File(str(path)).hash, ContentFile(str(path)).hash
    os.utime(path, ns=(1, 1))  # touched, content unchanged
    assert File(str(path)).hash != stamped
    assert ContentFile(str(path)).hash == by_content
    path.write_text("diff")
    assert ContentFile(str(path)).hash != by_content


def test_restored_file_reports_stale_only_when_checked_and_changed(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("v1")
    data = dumps([File(str(path)), Dir(str(tmp_path))])
    with checking_staleness() as problems:
        restored = pickle.loads(data)
    assert problems == [] and restored[0].read() == "v1"
    path.write_text("version 2")
    assert pickle.loads(data)[0].hash == restored[0].hash  # outside a check: as pickled
    with checking_staleness() as problems:
        pickle.loads(data)
    assert problems == [
        f"file {path} changed since it was cached",
        f"directory {tmp_path} changed since it was cached",
    ]
    path.unlink()
    with checking_staleness() as problems:
        pickle.loads(data)
    assert problems[0] == f"file {path} was deleted since it was cached"


def test_bad_paths_are_one_clear_error():
    with pytest.raises(FileError, match=r"unsupported scheme gs:// \(valid: a local path"):
        File("gs://bucket/key")
    with pytest.raises(FileError, match="File path must be a non-empty string"):
        File("")
    with pytest.raises(FileError, match="an S3 path needs a bucket"):
        File("s3:///key").exists()


# -- process and remote workers ------------------------------------------------------------------


@task(namespace="files_unit")
def describe(item: File) -> tuple[str, str, str]:
    return item.path, item.hash, item.read()


def test_files_travel_to_process_and_remote_workers_and_hash_the_same(tmp_path):
    from tests.support.worker_executor import TYPE, WorkerProcessExecutor

    source = tmp_path / "in.txt"
    source.write_text("payload")
    item = File(str(source))
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    value_store = f"file://{tmp_path / 'values'}"
    config = {
        "database": {"uri": database},
        "value_store": {"uri": value_store},
        "executors": {
            "remote": {"type": TYPE, "value_store": value_store},
        },
    }
    scheduler = Scheduler(config=config)
    try:
        for executor in ("process", "remote"):
            WorkerProcessExecutor.launched.clear()
            path, value_hash, text = scheduler.run(
                describe.options(executor=executor, cache=False)(item)
            )
            assert (path, value_hash, text) == (item.path, item.hash, "payload"), executor
        assert WorkerProcessExecutor.launched == ["files_unit.describe"]
        # A File written by a remote job comes back with the hash taken there.
        output = scheduler.run(
            make_output.options(executor="remote")(str(tmp_path / "out.txt"), "from a worker")
        )
        assert output.hash == File(output.path).hash and output.read() == "from a worker"
    finally:
        scheduler.close()


def test_file_benchmark_workload_runs_and_checks_its_result():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "workloads.py"), "--engine", "kredun",
         "--workload", "files", "--n", "20", "--store", "sqlite"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"status": "ok"' in done.stdout and '"jobs": 21' in done.stdout
