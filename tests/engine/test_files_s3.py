"""File and Dir on `s3://` paths: real boto3 over HTTP against moto's server."""

from __future__ import annotations

import pickle

import pytest
from kredun import Dir, File, Scheduler, glob_file, script, task
from kredun.errors import FileError
from kredun.serialize import dumps
from kredun.validity import checking_staleness

from tests.support.aws import moto_batch, moto_batch_environ  # noqa: F401  (fixtures)


@pytest.fixture
def bucket(moto_batch_environ):  # noqa: F811
    moto_batch_environ.create_bucket("data")
    return moto_batch_environ.client("s3")


def test_s3_file_operations_and_etag_hashing(bucket, tmp_path):
    item = File("s3://data/in/a.txt")
    assert not item.exists()
    missing = item.hash
    item.write("hello")
    assert item.exists() and item.read() == "hello" and item.size() == 5
    etag = bucket.head_object(Bucket="data", Key="in/a.txt")["ETag"]
    assert item.hash != missing and File(item.path).hash == item.hash
    with item.open("a") as stream:
        stream.write(" world")
    assert item.read("rb") == b"hello world"
    assert bucket.head_object(Bucket="data", Key="in/a.txt")["ETag"] != etag
    assert item.hash == File(item.path).hash  # rehashed when the stream closed

    copied = item.copy_to("s3://data/copy/a.txt")
    downloaded = copied.copy_to(str(tmp_path / "local" / "a.txt"))
    uploaded = downloaded.copy_to("s3://data/up/a.txt")
    assert uploaded.read() == downloaded.read() == "hello world"

    item.remove()
    assert not item.exists() and item.hash == missing
    with pytest.raises(FileNotFoundError, match=r"no such S3 object: s3://data/in/a\.txt"):
        item.read()


def test_s3_dir_listing_hash_glob_and_staging(bucket, tmp_path):
    for key in ("run/x.txt", "run/sub/y.txt", "run/z.csv", "other/w.txt"):
        File(f"s3://data/{key}").write(key)
    directory = Dir("s3://data/run/")
    assert [item.path for item in directory] == [
        "s3://data/run/sub/y.txt", "s3://data/run/x.txt", "s3://data/run/z.csv",
    ]  # fmt: skip
    assert directory.exists() and not Dir("s3://data/none").exists()
    assert directory.file("sub/y.txt").read() == "run/sub/y.txt"
    assert glob_file("s3://data/run/**/*.txt") == ["s3://data/run/sub/y.txt", "s3://data/run/x.txt"]
    before = Dir(directory.path).hash
    File("s3://data/run/new.txt").write("new")
    assert Dir(directory.path).hash != before

    staged = Dir("s3://data/run").stage(str(tmp_path / "local")).stage()
    assert (tmp_path / "local" / "sub" / "y.txt").read_text() == "run/sub/y.txt"
    (tmp_path / "local" / "result.txt").write_text("done")
    File("s3://data/results/result.txt").stage(str(tmp_path / "local" / "result.txt")).unstage()
    assert File("s3://data/results/result.txt").read() == "done" and staged.exists()


def test_restored_s3_file_is_stale_once_the_object_changes(bucket):
    item = File("s3://data/k.txt")
    item.write("v1")
    data = dumps(item)
    with checking_staleness() as problems:
        pickle.loads(data)
    assert problems == []
    bucket.put_object(Bucket="data", Key="k.txt", Body=b"v2")
    with checking_staleness() as problems:
        pickle.loads(data)
    assert problems == ["file s3://data/k.txt changed since it was cached"]


def test_s3_errors_name_the_path(moto_batch_environ):  # noqa: F811
    with pytest.raises(FileError, match=r"S3 request for s3://no-such-bucket/k failed"):
        File("s3://no-such-bucket/k").write("x")


@task(namespace="files_s3")
def shout(item: File) -> File:
    output = File(item.path.replace("/in/", "/out/"))
    output.write(item.read().upper())
    return output


@task(namespace="files_s3")
def pipeline(names: list) -> list:
    return [shout(File(f"s3://data/in/{name}")) for name in names]


def test_s3_pipeline_reruns_edited_inputs_and_missing_outputs(bucket, tmp_path):
    for name in ("a", "b"):
        File(f"s3://data/in/{name}").write(name)
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"

    def run() -> tuple[list[str], int]:
        scheduler = Scheduler(db_uri=database)
        try:
            outputs = scheduler.run(pipeline(["a", "b"]))
            execution = scheduler.store.recent_executions(1)[0]
            jobs = scheduler.store.jobs_of(execution.id)
        finally:
            scheduler.close()
        shouts = [job for job in jobs if job.task_name == "files_s3.shout"]
        return [output.read() for output in outputs], sum(job.status == "DONE" for job in shouts)

    assert run() == (["A", "B"], 2)
    assert run() == (["A", "B"], 0)
    File("s3://data/in/b").write("bee")  # an edited input: its call runs again
    assert run() == (["A", "BEE"], 1)
    bucket.delete_object(Bucket="data", Key="out/a")  # a deleted output: its job runs again
    assert run() == (["A", "BEE"], 1)


def test_script_stages_s3_inputs_and_outputs(bucket, tmp_path):
    File("s3://data/in/words.txt").write("b\na\nc\n")
    expr = script(
        "sort words.txt > sorted.txt && wc -l < words.txt",
        inputs=[File("s3://data/in/words.txt").stage("words.txt")],
        outputs={
            "sorted": File("s3://data/out/sorted.txt").stage("sorted.txt"),
            "count": File("-"),
        },
        tempdir=True,
    )
    result = Scheduler().run(expr)
    assert result["sorted"] == File("s3://data/out/sorted.txt")
    assert result["sorted"].read() == "a\nb\nc\n" and result["count"].strip() == b"3"
