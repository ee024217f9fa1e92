"""The AWS Batch executor against moto over real HTTP: Batch jobs run `kredun worker` as local
processes (tests.support.aws), values go through S3 on the same server, and the jobs share
the scheduler's SQLite database file."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from kredun import Scheduler, subrun, task
from kredun.config import load_config_file
from kredun.errors import ConfigError
from kredun.executors.batch import (
    SHUTDOWN_REASON,
    AwsAccessDeniedError,
    AwsCredentialsError,
    BatchJobFailedError,
    BucketNotFoundError,
    JobDefinitionError,
    JobQueueNotFoundError,
    UnreachableStoreError,
    array_chunks,
)
from kredun.executors.batch_options import ExecutorSettings
from kredun.hashing import encode
from kredun.provenance.store import ProvenanceStore
from kredun.resources import Resources
from kredun.serialize import ship
from kredun.workflow import load_workflow_file

from tests.support.aws import MotoBatch, moto_batch, moto_batch_environ  # noqa: F401
from tests.support.aws_local_docker import wait_for
from tests.support.seed_results import check_subrun_example_groups

kredun_namespace = "batchtest"

REPO = Path(__file__).resolve().parents[2]
QUEUE = "kredun"
BUCKET = "kredun-values"
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


@task(executor="batch")
def add(a, b):
    return a + b


@task(executor="batch")
def total(values):
    return sum(values)


@task(executor="batch", vcpus=2, memory="1Gi")
def bigger(x):
    return x * 2


@task(executor="batch")
def double_then_add(a, b):
    return add(add(a, a), b)


@task(executor="batch")
def check_record(i):
    if i == 3:
        raise ValueError(f"record {i} is bad")
    return i * 10


@task(executor="batch", retries=1)
def flaky(x):
    attempt = os.environ["AWS_BATCH_JOB_ATTEMPT"]
    if attempt == "1":
        raise RuntimeError("the first attempt fails")
    return x, attempt


@task(executor="batch", retries=1)
def always_fails(x):
    raise RuntimeError(f"failing {x} every time")


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def aws(moto_batch_environ: MotoBatch, monkeypatch: pytest.MonkeyPatch) -> MotoBatch:  # noqa: F811
    # Jobs see the repository's examples/ package, as in the kredun image (images/Dockerfile).
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    moto_batch_environ.create_batch_environment(QUEUE)
    moto_batch_environ.create_bucket(BUCKET)
    return moto_batch_environ


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kredun.db'}"


def make_config(database: str | None, value_store: str = f"s3://{BUCKET}/run", **batch: Any):
    config: dict[str, Any] = {
        "value_store": {"uri": value_store},
        "executors": {
            "batch": {
                "type": "batch",
                "job_queue": QUEUE,
                "image": "kredun:test",
                "poll_interval": 0.1,
                "batch_window": 0.3,
                **batch,
            }
        },
    }
    if database is not None:
        config["database"] = {"uri": database}
    return config


@pytest.fixture
def config(aws: MotoBatch, database: str) -> dict[str, Any]:
    return make_config(database)


def run(config: dict[str, Any], expr: Any, **kwargs: Any) -> Any:
    scheduler = Scheduler(config=config)
    try:
        return scheduler.run(expr, **kwargs)
    finally:
        scheduler.close()


def top_level_jobs(aws: MotoBatch) -> list[dict[str, Any]]:
    """Every job in the queue but array children, described."""
    batch = aws.client("batch")
    ids = [
        summary["jobId"]
        for status in STATUSES
        for summary in batch.list_jobs(jobQueue=QUEUE, jobStatus=status)["jobSummaryList"]
        if ":" not in summary["jobId"]
    ]
    return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


def batch_logs(cwd: Path, *args: str) -> str:
    """The output of `kredun batch-logs ARGS` run where no .kredun/ configures the executor:
    it reaches moto through boto3's environment."""
    command = [sys.executable, "-m", "kredun", "batch-logs", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def stored_outcome(aws: MotoBatch, prefix: str, job_id: str) -> Any:
    """The outcome a Batch job's worker left in the value store."""
    from kredun.outcome import outcome_key, parse

    key = f"{prefix}/{outcome_key(job_id)}"
    return parse(aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def failed_jobs(database: str) -> list[Any]:
    with ProvenanceStore(database) as store:
        execution = store.recent_executions(1)[0]
        return [job for job in store.jobs_of(execution.id) if job.status == "FAILED"]


# --- laptop mode ---------------------------------------------------------------------------


def test_single_job_with_values_through_s3(aws: MotoBatch, config: dict[str, Any]) -> None:
    big = list(range(5000))  # over the inline limit: the argument goes to S3
    assert run(config, total(big)) == sum(big)

    keys = {item["Key"] for item in aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"run/{encode(big)[0]}" in keys
    [job] = top_level_jobs(aws)
    assert job["status"] == "SUCCEEDED"
    assert job["jobName"] == f"kredun-{job['tags']['kredun:eval-hash'][:12]}"
    assert job["tags"]["kredun:task"] == "batchtest.total"
    environment = {item["name"]: item["value"] for item in job["container"]["environment"]}
    assert environment["KREDUN_VALUE_STORE"] == f"s3://{BUCKET}/run"
    # No database for the job: it reported its outcome through the value store.
    assert not [name for name in environment if "DATABASE" in name]
    assert config["database"]["uri"] not in json.dumps(job)
    assert environment["KREDUN_OUTCOME_TO_STORE"] == "1"
    outcome = stored_outcome(aws, "run", job["jobId"])
    assert (outcome.kind, outcome.preview, outcome.truth) == ("value", str(sum(big)), True)
    assert f"run/{outcome.hash}" in keys  # the result blob, under the sha1 of its bytes
    assert job["container"]["command"][:3] == ["kredun", "worker", "--spec-json"]

    # Cached now: nothing more runs on Batch.
    assert run(config, total(big)) == sum(big)
    assert len(top_level_jobs(aws)) == 1


def test_large_job_spec_goes_through_the_value_store(aws: MotoBatch, config: dict[str, Any]):
    a, b = "a" * 3500, "b" * 3500  # inline in the spec, but together over the command limit
    assert run(config, add(a, b)) == a + b
    [job] = top_level_jobs(aws)
    assert job["container"]["command"][:3] == ["kredun", "worker", "--spec-hash"]


def test_job_definitions_are_registered_once_per_shape(
    aws: MotoBatch, config: dict[str, Any]
) -> None:
    assert run(config, [add(1, 2), bigger(4)]) == [3, 8]
    assert run(config, add(5, 6)) == 11  # a new scheduler finds the definition again
    batch = aws.client("batch")
    definitions = batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    assert len(definitions) == 2
    shapes = {
        tuple(
            sorted(
                (r["type"], r["value"]) for r in d["containerProperties"]["resourceRequirements"]
            )
        )
        for d in definitions
    }
    assert shapes == {(("MEMORY", "2048"), ("VCPU", "1")), (("MEMORY", "1024"), ("VCPU", "2"))}
    assert all(d["jobDefinitionName"].startswith("kredun-def-") for d in definitions)
    assert all(d["revision"] == 1 for d in definitions)


def test_task_returning_expressions(aws: MotoBatch, config: dict[str, Any]) -> None:
    assert run(config, double_then_add(2, 3)) == 7
    assert len(top_level_jobs(aws)) == 3


def test_ready_jobs_fan_out_as_one_array_job(aws: MotoBatch, config: dict[str, Any]) -> None:
    assert run(config, [add(i, 100) for i in range(8)]) == [i + 100 for i in range(8)]
    [parent] = top_level_jobs(aws)
    assert parent["arrayProperties"]["size"] == 8
    assert parent["container"]["command"][:3] == ["kredun", "worker", "--spec-list-hash"]
    assert parent["tags"]["kredun:spec-list"] == parent["container"]["command"][3]
    assert parent["jobName"].startswith("kredun-array-")


def test_array_with_a_failing_child(aws: MotoBatch, config: dict[str, Any], tmp_path: Path):
    with pytest.raises(BatchJobFailedError) as raised:
        run(config, [check_record(i) for i in range(5)])
    message = str(raised.value)
    [parent] = top_level_jobs(aws)
    batch = aws.client("batch")
    [child] = batch.list_jobs(arrayJobId=parent["jobId"], jobStatus="FAILED")["jobSummaryList"]
    assert child["jobId"] == f"{parent['jobId']}:3"
    assert f"AWS Batch job {child['jobId']} (batchtest.check_record) failed" in message
    assert "Essential container in task exited; exit code 1; log stream " in message
    assert message.endswith("last log line: kredun: task failed: ValueError: record 3 is bad")
    assert "Traceback (most recent call last)" in "\n".join(raised.value.__notes__)
    error = stored_outcome(aws, "run", child["jobId"]).error
    assert error.message == "ValueError: record 3 is bad"
    assert error.classes[:2] == ("builtins.ValueError", "builtins.Exception")
    assert error.hash is not None

    # The other children's results were recorded: running them again submits nothing.
    assert run(config, [check_record(i) for i in (0, 1, 2, 4)]) == [0, 10, 20, 40]
    assert len(top_level_jobs(aws)) == 1

    last = batch_logs(tmp_path, child["jobId"], "--tail", "1")
    assert last == "kredun: task failed: ValueError: record 3 is bad\n"
    # `kredun logs` takes a Batch job id too.
    command = [sys.executable, "-m", "kredun", "logs", child["jobId"]]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.endswith(last), done.stderr


def test_retries_are_made_by_batch(aws: MotoBatch, config: dict[str, Any], tmp_path: Path):
    assert run(config, flaky(1)) == (1, "2")
    [job] = top_level_jobs(aws)
    assert len(job["attempts"]) == 2
    first = batch_logs(tmp_path, job["jobId"], "--attempt", "1", "--tail", "1")
    assert first == "kredun: task failed: RuntimeError: the first attempt fails\n"

    with pytest.raises(BatchJobFailedError, match=r"failed after 2 attempts: .*failing 7"):
        run(config, always_fails(7))
    jobs = [job for job in top_level_jobs(aws) if job["tags"]["kredun:task"].endswith("fails")]
    assert len(jobs) == 1  # the scheduler did not submit it once more


def test_job_failed_on_batch_is_recorded(aws: MotoBatch, config: dict[str, Any], database: str):
    with pytest.raises(BatchJobFailedError) as raised:
        run(config, always_fails(3))
    [failed] = failed_jobs(database)
    assert failed.error == f"BatchJobFailedError: {raised.value}"
    assert "Traceback" in failed.traceback and failed.attempt == 1
    # The task's own frame reads like a local one: file, line and source.
    assert f'File "{__file__}", line' in failed.traceback
    assert 'raise RuntimeError(f"failing {x} every time")' in failed.traceback


# --- operator mode -------------------------------------------------------------------------


def test_operator_mode_reduces_a_plan_on_batch(aws: MotoBatch, database: str) -> None:
    from kredun.deserialize import resolve
    from kredun.domains import ReferencedValues
    from kredun.plan import dumps_plan, encode_plan, loads_plan
    from kredun.refs import CompositeRef
    from kredun.valuestore import open_value_store

    value_store = f"s3://{BUCKET}/operator"
    config = make_config(database, value_store)
    expr = {"nested": double_then_add(1, 2), "fan": [add(i, i) for i in range(3)]}
    plan = encode_plan(expr, open_value_store(value_store).put, ship)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the scheduler unpickled data while reducing a plan")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pickle, "loads", refuse)
        patch.setattr(pickle, "Unpickler", refuse)
        ref = run(config, loads_plan(dumps_plan(plan)), values=ReferencedValues)
    assert isinstance(ref, CompositeRef)
    fetch = Scheduler(db_uri=database, value_store=value_store).fetch_blob
    assert resolve(ref, fetch) == {"nested": 4, "fan": [0, 2, 4]}
    assert any(job.get("arrayProperties", {}).get("size") == 3 for job in top_level_jobs(aws))


# --- subrun --------------------------------------------------------------------------------


def test_seed_subrun_example_on_batch(
    aws: MotoBatch, config: dict[str, Any], database: str
) -> None:
    from examples.subrun import main

    result = run(config, main(executor="batch"))
    groups = result["results"]
    check_subrun_example_groups(groups)
    [parent] = top_level_jobs(aws)  # both subruns: one array job of two nested schedulers
    assert parent["arrayProperties"]["size"] == 2
    assert {process.pid for process in aws.processes} == {group["pid"] for group in groups}
    # Each Batch job brought its nested run's provenance back (it has no database).
    with ProvenanceStore(database) as store:
        subruns = store.find_jobs(task="kredun.subrun")
        inner = [store.find_executions(parent_job_id=job.id) for job in subruns]
        tasks = [sorted({j.task_name for j in store.jobs_of(e.id)}) for (e,) in inner]
        counts = [len(store.jobs_of(e.id)) for (e,) in inner]
    assert len(subruns) == 2
    assert tasks == [["examples.subrun.process_record", "examples.subrun.root_on_batch"]] * 2
    assert counts == [11, 11]  # root_on_batch and its ten records


def test_subrun_provenance_reaches_a_shared_database(
    aws: MotoBatch, config: dict[str, Any], database: str
) -> None:
    from examples.subrun import NESTED_CONFIG, root_on_batch

    nested = {**NESTED_CONFIG, "database": {"uri": database}}
    result = run(config, subrun(root_on_batch([1, 2]), executor="batch", vcpus=2, config=nested))
    assert [record["value"] for record in result["value"]] == [2, 3]
    [job] = top_level_jobs(aws)
    requirements = aws.client("batch").describe_job_definitions(
        jobDefinitions=[job["jobDefinition"]]
    )["jobDefinitions"][0]["containerProperties"]["resourceRequirements"]
    assert {"type": "VCPU", "value": "2"} in requirements
    with ProvenanceStore(database) as store:
        executions = store.recent_executions(5)
        assert len(executions) == 2 and all(e.status == "DONE" for e in executions)
        tasks = {job.task_name for e in executions for job in store.jobs_of(e.id)}
    assert {"kredun.subrun", "examples.subrun.process_record"} <= tasks


# --- cancellation and restarts (schedulers in subprocesses) --------------------------------

WORKFLOW = """
import os
import time

from kredun import task


@task(executor="batch")
def wait_for(path: str, i: int = 0) -> str:
    while not os.path.exists(path):
        time.sleep(0.05)
    return f"released {i}"


@task(executor="batch")
def wait_alone(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.05)
    return "alone released"


@task()
def fan(path: str) -> list:
    return [wait_for(path, 0), wait_for(path, 1), wait_alone(path)]
"""


@pytest.fixture
def workflow(aws: MotoBatch, database: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A workflow file, and the environment of a `kredun run` of it on the batch executor."""
    path = tmp_path / "waiting.py"
    path.write_text(textwrap.dedent(WORKFLOW))
    toml = tmp_path / "kredun.toml"
    toml.write_text(
        textwrap.dedent(f"""
        [database]
        uri = "{database}"
        [value_store]
        uri = "s3://{BUCKET}/run"
        [executors.batch]
        type = "batch"
        job_queue = "{QUEUE}"
        image = "kredun:test"
        poll_interval = 0.1
        """)
    )
    return path, {**os.environ, "KREDUN_CONFIG": str(toml)}


def start_kredun_run(workflow: tuple[Path, dict[str, str]], *args: str) -> subprocess.Popen:
    path, env = workflow
    return subprocess.Popen(
        [sys.executable, "-m", "kredun", "run", str(path), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_ctrl_c_terminates_running_jobs(
    aws: MotoBatch, workflow: tuple[Path, dict[str, str]], database: str, tmp_path: Path
) -> None:
    release = tmp_path / "never"
    scheduler = start_kredun_run(workflow, "wait_alone", "--path", str(release))
    assert wait_for(lambda: len(aws.processes) == 1, timeout=60), scheduler.communicate()[0]
    scheduler.send_signal(signal.SIGINT)
    output, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 130, output
    assert "terminated 1 AWS Batch job(s)" in output
    # Batch stops the container after terminate_job returned.
    assert wait_for(lambda: top_level_jobs(aws)[0]["status"] == "FAILED", timeout=30)
    assert top_level_jobs(aws)[0]["statusReason"] == SHUTDOWN_REASON
    assert aws.processes[0].wait(timeout=10) is not None
    with ProvenanceStore(database) as store:
        assert store.recent_executions(1)[0].status == "CANCELLED"


def test_restarted_scheduler_reattaches_to_running_jobs(
    aws: MotoBatch, workflow: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    first = start_kredun_run(workflow, "fan", "--path", str(release))
    assert wait_for(lambda: len(aws.processes) == 3, timeout=60), first.communicate()[0]
    first.kill()  # no chance to clean up, as when a laptop or the operator's Pod dies
    first.wait()

    attached = threading.Semaphore(0)

    class Attachments(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Attach"):
                attached.release()

    results: list[Any] = []
    path, env = workflow
    fan = load_workflow_file(str(path)).fan
    scheduler = Scheduler(config=load_config_file(Path(env["KREDUN_CONFIG"])))
    handler = Attachments()
    scheduler.logger.addHandler(handler)  # after the scheduler set the logger up
    runner = threading.Thread(target=lambda: results.append(scheduler.run(fan(str(release)))))
    try:
        runner.start()
        for _ in range(3):
            assert attached.acquire(timeout=60)
        release.touch()
        runner.join(timeout=60)
    finally:
        scheduler.logger.removeHandler(handler)
        release.touch()
        runner.join(timeout=60)
        scheduler.close()
    assert results == [["released 0", "released 1", "alone released"]]
    assert len(top_level_jobs(aws)) == 2  # the array of two and the single job, once each
    assert len(aws.processes) == 3


# --- errors: one line, naming the resource, recorded on the job ----------------------------


def assert_recorded_failure(database: str, error: BaseException) -> None:
    [failed] = failed_jobs(database)
    assert failed.error == f"{type(error).__name__}: {error}"
    assert "\n" not in str(error)


def test_missing_job_queue(aws: MotoBatch, database: str) -> None:
    with pytest.raises(JobQueueNotFoundError, match="job queue 'nope' does not exist") as raised:
        run(make_config(database, job_queue="nope"), add(1, 2))
    assert_recorded_failure(database, raised.value)
    assert top_level_jobs(aws) == []


def test_missing_bucket(aws: MotoBatch, database: str) -> None:
    config = make_config(database, "s3://no-such-bucket/values")
    with pytest.raises(BucketNotFoundError, match="S3 bucket 'no-such-bucket' of value") as raised:
        run(config, add(1, 2))
    assert_recorded_failure(database, raised.value)


def test_no_credentials(
    aws: MotoBatch, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = make_config(database, f"file://{tmp_path / 'values'}")
    with pytest.raises(AwsCredentialsError, match="no AWS credentials to describe AWS Batch job "
                       "queue 'kredun'") as raised:  # fmt: skip
        run(config, add(1, 2))
    assert_recorded_failure(database, raised.value)


def test_access_denied(aws: MotoBatch, database: str, tmp_path: Path) -> None:
    import urllib.request

    iam = aws.client("iam")
    iam.create_user(UserName="limited")
    iam.put_user_policy(
        UserName="limited",
        PolicyName="s3-only",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"s3:*","Resource":"*"}]}',
    )
    key = iam.create_access_key(UserName="limited")["AccessKey"]

    def require_auth(value: str) -> None:
        url = f"{aws.endpoint_url}/moto-api/reset-auth"
        headers = {"Content-Type": "text/plain"}
        urllib.request.urlopen(urllib.request.Request(url, value.encode(), headers)).read()

    config = make_config(database, f"file://{tmp_path / 'values'}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        require_auth("0")
        try:
            with pytest.raises(AwsAccessDeniedError) as raised:
                run(config, add(1, 2))
        finally:
            require_auth("inf")
    assert str(raised.value).startswith("access denied to describe AWS Batch job queue 'kredun'")
    assert "not authorized to perform: batch:describejobqueues" in str(raised.value).lower()
    assert_recorded_failure(database, raised.value)


def test_job_definition_rejected(aws: MotoBatch, database: str) -> None:
    with pytest.raises(JobDefinitionError, match=r"job definition 'kredun-def-\w+' \(image "
                       r"kredun:test\) was rejected: .*memory") as raised:  # fmt: skip
        run(make_config(database, memory="2Mi"), add(1, 2))  # Batch wants at least 4 MiB
    assert_recorded_failure(database, raised.value)
    assert top_level_jobs(aws) == []


@pytest.mark.parametrize(
    ("database", "value_store", "message"),
    [
        ("sqlite:///{tmp}/db.sqlite", "memory://", "cannot reach the memory:// value store"),
    ],
)
def test_stores_jobs_cannot_reach(
    aws: MotoBatch, tmp_path: Path, database: str | None, value_store: str, message: str
) -> None:
    database = database and database.format(tmp=tmp_path)
    with pytest.raises(UnreachableStoreError, match=message):
        run(make_config(database, value_store), add(1, 2))
    assert top_level_jobs(aws) == []


def test_an_in_memory_database_is_fine_since_jobs_never_open_it(aws: MotoBatch) -> None:
    assert run(make_config(None), add(1, 2)) == 3


def test_bad_options_are_refused_when_the_config_is_read(aws: MotoBatch, database: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown key executors\.batch\.vcpu \(valid: type, "):
        run(make_config(database, vcpu=2), add(1, 2))
    assert top_level_jobs(aws) == []


def test_bad_job_settings_fail_the_job_not_the_scheduler(aws: MotoBatch, database: str) -> None:
    with pytest.raises(ConfigError, match=r"memory must be a number of GiB .* not '4GB'") as raised:
        run(make_config(database, memory="4GB"), add(1, 2))
    assert_recorded_failure(database, raised.value)


# --- pieces --------------------------------------------------------------------------------


def test_array_chunks_respect_the_batch_limit() -> None:
    sizes = [len(chunk) for chunk in array_chunks(list(range(20_001)))]
    assert sizes == [10_000, 10_000, 1]
    assert [len(chunk) for chunk in array_chunks(list(range(5)), limit=2)] == [2, 2, 1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory": "4GB"}, "executor 'batch': memory must be a number of GiB"),
        ({"retries": 10}, "retries 10 is more than AWS Batch allows"),
        ({"image": None}, "option 'image' is required"),
        ({"job_name_prefix": "bad prefix"}, "job_name_prefix 'bad prefix'"),
        ({"vcpus": "many"}, "vcpus must be a number of cores"),
        ({"cpus": 0}, "cpus must be a number of cores"),
    ],
)
def test_option_errors(options: dict[str, Any], message: str) -> None:
    base = {"type": "batch", "job_queue": QUEUE, "image": "kredun:test"}
    with pytest.raises(ConfigError, match=message):
        ExecutorSettings.parse("batch", {**base, **options}).job_settings({}, Resources())


def test_task_options_override_the_executor_options() -> None:
    settings = ExecutorSettings.parse(
        "batch", {"type": "batch", "job_queue": QUEUE, "image": "a", "memory": "1Gi"}
    )
    options = {"vcpus": 4, "memory": "8Gi", "image": "b", "cache": False}
    job = settings.job_settings(options, Resources.parse(options))
    assert (job.shape.vcpus, job.shape.memory, job.shape.image) == (4, 8192, "b")
    assert job.queue == QUEUE and job.retries == 0 and job.timeout is None
    default = settings.job_settings({}, Resources())
    assert (default.shape.vcpus, default.shape.memory) == (1, 1024)  # executor's, default cpus
    assert job.shape.definition_name("kredun") != default.shape.definition_name("kredun")
    # memory=4 is 4 GiB, as on Kubernetes (not 4 MiB); cpus is honoured like vcpus.
    job = settings.job_settings({}, Resources.parse({"cpus": 2, "memory": 4}))
    assert (job.shape.vcpus, job.shape.memory) == (2, 4096)


def test_example_configuration_is_valid() -> None:
    config = load_config_file(REPO / "examples" / "batch.toml")
    settings = ExecutorSettings.parse("batch", config.executor_options("batch"))
    job = settings.job_settings({}, Resources())
    assert (job.shape.vcpus, job.shape.memory, job.retries, job.timeout) == (1, 2048, 1, 3600)
    assert settings.environment == {"TZ": "UTC"}
