"""Contract tests of tests/support/aws.py: what kredun's AWS tests may rely on.

Every test talks to the moto server with real boto3 over HTTP, and every Batch job runs its
command as a real local process. When a moto upgrade changes the internals that
``tests/support/aws_moto_fixes.py`` patches, these tests are what fails.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.batch.models import Job

from tests.support.aws import (
    LOG_GROUP,
    BatchEnvironment,
    MotoBatch,
    job_log_messages,
    moto_batch,  # noqa: F401  (fixture)
    moto_batch_environ,  # noqa: F401  (fixture)
    register_job_definition,
    wait_for_jobs,
)
from tests.support.aws_local_docker import wait_for

pytestmark = pytest.mark.timeout(60)


@dataclass
class Batch:
    """One started MotoBatch with a queue, and shortcuts for submitting script jobs."""

    aws: MotoBatch
    env: BatchEnvironment
    client: Any

    def python_job(
        self,
        name: str,
        script: str,
        *,
        definition: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        **submit: Any,
    ) -> str:
        """Register a job definition running ``python -c script`` and submit it; the job id."""
        jd = register_job_definition(
            self.aws,
            name,
            ["python", "-c", textwrap.dedent(script)],
            environment=environment,
            **(definition or {}),
        )
        response = self.client.submit_job(
            jobName=name, jobQueue=self.env.job_queue_name, jobDefinition=jd, **submit
        )
        return str(response["jobId"])

    def wait(self, *job_ids: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        done = wait_for_jobs(self.client, job_ids, timeout=timeout)
        return [done[job_id] for job_id in job_ids]

    def describe(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.describe_jobs(jobs=[job_id])["jobs"][0])

    def wait_status(self, job_id: str, status: str, timeout: float = 10.0) -> None:
        assert wait_for(lambda: self.describe(job_id)["status"] == status, timeout), (
            f"{job_id} never {status}: {self.describe(job_id)}"
        )


@pytest.fixture
def batch(moto_batch: MotoBatch) -> Batch:  # noqa: F811  (fixture injection)
    return Batch(
        moto_batch, moto_batch.create_batch_environment("kredun"), moto_batch.client("batch")
    )


def _process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def test_hello_succeeds_and_its_output_is_in_cloudwatch_logs(batch: Batch) -> None:
    job_id = batch.python_job("hello", "print('hello')")

    [job] = batch.wait(job_id)

    assert job["status"] == "SUCCEEDED"
    assert job["container"]["exitCode"] == 0
    assert job["statusReason"] == "Essential container in task exited"
    events = batch.aws.client("logs").get_log_events(
        logGroupName=LOG_GROUP, logStreamName=job["container"]["logStreamName"], startFromHead=True
    )["events"]
    assert [event["message"] for event in events] == ["hello"]


def test_exit_code_3_fails_the_job_and_is_reported(batch: Batch) -> None:
    job_id = batch.python_job("exit-3", "import sys; print('bye', file=sys.stderr); sys.exit(3)")

    [job] = batch.wait(job_id)

    assert job["status"] == "FAILED"
    assert job["container"]["exitCode"] == 3
    assert job["statusReason"] == "Essential container in task exited"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3]
    assert job_log_messages(batch.aws, job) == ["bye"]


def test_missing_command_fails_like_docker_with_127(batch: Batch) -> None:
    jd = register_job_definition(batch.aws, "no-such", ["kredun-no-such-command", "x"])
    job_id = batch.client.submit_job(
        jobName="no-such", jobQueue=batch.env.job_queue_name, jobDefinition=jd
    )["jobId"]

    [job] = batch.wait(job_id)

    assert (job["status"], job["container"]["exitCode"]) == ("FAILED", 127)
    assert "cannot execute" in job_log_messages(batch.aws, job)[0]


def test_job_environment_reaches_the_process_and_points_at_moto(batch: Batch) -> None:
    """Job definition env, overrides, Batch's own variables and the client settings.

    The job itself uses boto3 with no arguments to write to S3, so the endpoint, credentials
    and region it was given demonstrably lead back to this server.
    """
    batch.aws.create_bucket("kredun-env")
    script = """
        import json, os, sys, boto3
        seen = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "KREDUN_"))}
        seen["sys.prefix"] = sys.prefix
        boto3.client("s3").put_object(Bucket="kredun-env", Key="env.json", Body=json.dumps(seen))
    """
    job_id = batch.python_job(
        "env",
        script,
        environment={"KREDUN_FROM_DEFINITION": "def", "KREDUN_OVERRIDDEN": "def"},
        containerOverrides={"environment": [{"name": "KREDUN_OVERRIDDEN", "value": "submit"}]},
    )

    [job] = batch.wait(job_id)
    assert job["status"] == "SUCCEEDED", job_log_messages(batch.aws, job)

    body = batch.aws.client("s3").get_object(Bucket="kredun-env", Key="env.json")["Body"]
    seen = json.loads(body.read())
    assert seen["KREDUN_FROM_DEFINITION"] == "def"
    assert seen["KREDUN_OVERRIDDEN"] == "submit"
    assert seen["AWS_BATCH_JOB_ID"] == job_id
    assert seen["AWS_BATCH_JQ_NAME"] == batch.env.job_queue_name
    assert seen["AWS_BATCH_CE_NAME"] == batch.env.compute_environment_name
    assert seen["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in seen
    assert {k: seen[k] for k in batch.aws.env} == batch.aws.env
    assert seen["sys.prefix"] == sys.prefix  # the test's virtualenv, found through PATH


def test_array_children_see_their_own_index_and_id(batch: Batch) -> None:
    # containerOverrides.environment matters: stock moto shares that list between children.
    script = """
        import os
        print(os.environ["AWS_BATCH_JOB_ARRAY_INDEX"], os.environ["AWS_BATCH_JOB_ID"])
    """
    parent_id = batch.python_job(
        "array",
        script,
        arrayProperties={"size": 3},
        containerOverrides={"environment": [{"name": "KREDUN_X", "value": "1"}]},
    )

    [parent] = batch.wait(parent_id)

    assert parent["status"] == "SUCCEEDED"
    assert parent["arrayProperties"]["size"] == 3
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    listed = batch.client.list_jobs(arrayJobId=parent_id)["jobSummaryList"]
    assert sorted(j["jobId"] for j in listed) == [f"{parent_id}:{i}" for i in range(3)]
    for index in range(3):
        child = batch.describe(f"{parent_id}:{index}")
        assert child["status"] == "SUCCEEDED"
        assert job_log_messages(batch.aws, child) == [f"{index} {parent_id}:{index}"]


def test_array_job_with_a_failing_child(batch: Batch) -> None:
    script = """
        import os, sys
        sys.exit(5 if os.environ["AWS_BATCH_JOB_ARRAY_INDEX"] == "1" else 0)
    """
    parent_id = batch.python_job("array-fail", script, arrayProperties={"size": 3})

    [parent] = batch.wait(parent_id)

    children = [batch.describe(f"{parent_id}:{i}") for i in range(3)]
    assert [c["status"] for c in children] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert children[1]["container"]["exitCode"] == 5
    summary = parent["arrayProperties"]["statusSummary"]
    assert (summary["FAILED"], summary["SUCCEEDED"]) == (1, 2)
    assert parent["status"] == "FAILED"  # stock moto: SUBMITTED forever


def test_job_depending_on_an_array_parent_runs_after_all_children(batch: Batch) -> None:
    parent_id = batch.python_job("fan-out", "pass", arrayProperties={"size": 2})
    # Stock moto only completes the parent while it is being described; nobody does here.
    after_id = batch.python_job("fan-in", "print('after')", dependsOn=[{"jobId": parent_id}])

    time.sleep(0.1)
    [after] = wait_for_jobs(batch.client, [after_id], timeout=20).values()

    assert after["status"] == "SUCCEEDED"
    children = [batch.describe(f"{parent_id}:{i}") for i in range(2)]
    assert all(after["startedAt"] >= child["stoppedAt"] for child in children)


def test_terminate_kills_the_whole_process_group(batch: Batch) -> None:
    script = """
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        open("pids.tmp", "w").write(f"{__import__('os').getpid()} {child.pid}")
        __import__('os').rename("pids.tmp", "pids")
        child.wait()
    """
    job_id = batch.python_job("sleeper", script)
    pids_file = batch.aws.workdir / "pids"
    assert wait_for(pids_file.exists, 10)
    pids = [int(pid) for pid in pids_file.read_text().split()]
    batch.wait_status(job_id, "RUNNING")

    batch.client.terminate_job(jobId=job_id, reason="kredun: cancelled by user")
    [job] = batch.wait(job_id)

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "kredun: cancelled by user"
    assert job["container"]["exitCode"] == 128 + 15  # SIGTERM, like `docker stop`
    assert wait_for(lambda: all(_process_gone(pid) for pid in pids), 5), pids


def test_attempt_timeout_stops_the_job(batch: Batch) -> None:
    script = "import time; print('working', flush=True); time.sleep(60)"
    job_id = batch.python_job("slow", script, timeout={"attemptDurationSeconds": 1})

    [job] = batch.wait(job_id)

    assert (job["status"], job["statusReason"]) == (
        "FAILED",
        "Job attempt duration exceeded timeout",
    )
    assert job_log_messages(batch.aws, job) == ["working"]
    assert wait_for(lambda: all(p.poll() is not None for p in batch.aws.processes), 5)


def test_cancel_before_start_never_runs_the_command(batch: Batch) -> None:
    blocker_id = batch.python_job("blocker", "import time; time.sleep(60)")
    waiting_id = batch.python_job(
        "waiting", "open('ran', 'w').close()", dependsOn=[{"jobId": blocker_id}]
    )

    batch.client.cancel_job(jobId=waiting_id, reason="not needed")
    batch.client.terminate_job(jobId=blocker_id, reason="done")
    waiting, blocker = batch.wait(waiting_id, blocker_id)

    assert (waiting["status"], waiting["statusReason"]) == ("FAILED", "not needed")
    assert blocker["status"] == "FAILED"
    assert not (batch.aws.workdir / "ran").exists()


def test_retry_strategy_of_the_definition_runs_every_attempt(batch: Batch) -> None:
    script = """
        import os, sys
        open("attempts", "a").write(os.environ["AWS_BATCH_JOB_ATTEMPT"] + "\\n")
        print("attempt", os.environ["AWS_BATCH_JOB_ATTEMPT"])
        sys.exit(1)
    """
    job_id = batch.python_job("retried", script, definition={"retryStrategy": {"attempts": 2}})

    [job] = batch.wait(job_id)

    assert job["status"] == "FAILED"
    assert (batch.aws.workdir / "attempts").read_text().split() == ["1", "2"]
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 1]
    streams = [a["container"]["logStreamName"] for a in job["attempts"]]
    assert len(set(streams)) == 2
    assert job["container"]["logStreamName"] == streams[-1]
    assert job_log_messages(batch.aws, job) == ["attempt 2"]


def test_retry_succeeds_on_a_later_attempt(batch: Batch) -> None:
    script = "import os, sys; sys.exit(0 if os.environ['AWS_BATCH_JOB_ATTEMPT'] == '2' else 1)"
    job_id = batch.python_job("flaky", script, retryStrategy={"attempts": 3})

    [job] = batch.wait(job_id)

    assert job["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 0]


def test_evaluate_on_exit_can_stop_retrying(batch: Batch) -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onExitCode": "3", "action": "EXIT"},
            {"onExitCode": "*", "action": "RETRY"},
        ],
    }
    job_id = batch.python_job("no-retry", "import sys; sys.exit(3)", retryStrategy=strategy)

    [job] = batch.wait(job_id)

    assert job["status"] == "FAILED"
    assert len(job["attempts"]) == 1


def test_log_lines_are_readable_while_the_job_runs(batch: Batch) -> None:
    script = """
        import os, time
        print("started", flush=True)
        while not os.path.exists("go"):
            time.sleep(0.05)
        print("finished")
    """
    job_id = batch.python_job("follow", script)

    assert wait_for(lambda: job_log_messages(batch.aws, batch.describe(job_id)) == ["started"], 10)
    assert batch.describe(job_id)["status"] == "RUNNING"
    (batch.aws.workdir / "go").touch()
    [job] = batch.wait(job_id)

    assert job_log_messages(batch.aws, job) == ["started", "finished"]


def test_one_character_job_names_are_accepted(batch: Batch) -> None:
    [job] = batch.wait(batch.python_job("x", "pass"))
    assert job["status"] == "SUCCEEDED"


def test_s3_put_and_get_on_the_same_server(moto_batch: MotoBatch) -> None:  # noqa: F811
    moto_batch.create_bucket("kredun-values")
    s3 = moto_batch.client("s3")

    s3.put_object(Bucket="kredun-values", Key="a/b", Body=b"\x00value")

    assert s3.get_object(Bucket="kredun-values", Key="a/b")["Body"].read() == b"\x00value"


def test_environ_fixture_lets_default_clients_reach_the_server(
    moto_batch_environ: MotoBatch,  # noqa: F811
) -> None:
    moto_batch_environ.create_bucket("kredun-environ")
    names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert names == ["kredun-environ"]


def test_stock_moto_mode_runs_commands_but_keeps_moto_gaps() -> None:
    """``fix_moto_gaps=False``: output arrives via moto's own upload, the gaps stay."""
    with MotoBatch(fix_moto_gaps=False) as aws:
        env = aws.create_batch_environment("stock")
        batch = Batch(aws, env, aws.client("batch"))
        ok_id = batch.python_job("hello", "print('hello')")
        fail_id = batch.python_job("exit-3", "import sys; sys.exit(3)")

        ok, failed = batch.wait(ok_id, fail_id)

        assert ok["status"] == "SUCCEEDED"
        assert job_log_messages(aws, ok) == ["hello"]
        assert failed["status"] == "FAILED"
        assert "exitCode" not in failed["container"]
        assert "statusReason" not in failed


def test_stopping_kills_running_jobs_and_restores_moto() -> None:
    stock_property = Job.__dict__.get("docker_client")
    with MotoBatch() as aws:
        batch = Batch(aws, aws.create_batch_environment(), aws.client("batch"))
        job_id = batch.python_job("forever", "import time; time.sleep(60)")
        batch.wait_status(job_id, "RUNNING")
        assert wait_for(lambda: len(aws.processes) == 1, 5)
        [process] = aws.processes
        with pytest.raises(RuntimeError, match="already running"):
            MotoBatch().start()

    assert process.poll() is not None
    assert Job.__dict__.get("docker_client") is stock_property


@pytest.fixture
def _no_leftover_jobs() -> Iterator[None]:
    yield
    assert wait_for(lambda: not any(isinstance(t, Job) for t in threading.enumerate()), 5)


def test_no_job_thread_outlives_its_moto_batch(_no_leftover_jobs: None) -> None:
    with MotoBatch() as aws:
        batch = Batch(aws, aws.create_batch_environment(), aws.client("batch"))
        batch.python_job("sleepy", "import time; time.sleep(60)", arrayProperties={"size": 2})
        assert wait_for(lambda: len(aws.processes) == 2, 10)
    assert all(p.poll() is not None for p in aws.processes)
    assert os.environ.get("AWS_ENDPOINT_URL") != aws.env["AWS_ENDPOINT_URL"]
