"""script() on AWS Batch (moto): the job stages its S3 input onto its disk and its output back."""

from __future__ import annotations

from typing import Any

from kredun import File, script

from tests.executors.test_batch import BUCKET, aws, config, database, run, top_level_jobs
from tests.support.aws import MotoBatch, moto_batch, moto_batch_environ  # noqa: F401

__all__ = ["aws", "config", "database"]  # fixtures: imported for pytest to find


def test_script_job_on_batch_stages_s3_files(aws: MotoBatch, config: dict[str, Any]) -> None:
    File(f"s3://{BUCKET}/data/in.txt").write("pear\napple\n")
    expr = script(
        "sort in.txt > out.txt",
        inputs=[File(f"s3://{BUCKET}/data/in.txt").stage("in.txt")],
        outputs=File(f"s3://{BUCKET}/data/sorted.txt").stage("out.txt"),
        tempdir=True,
        executor="batch",
    )
    result = run(config, expr)
    assert result == File(f"s3://{BUCKET}/data/sorted.txt")
    assert result.read() == "apple\npear\n"
    [job] = top_level_jobs(aws)
    assert job["status"] == "SUCCEEDED" and job["tags"]["kredun:task"] == "kredun.script"
