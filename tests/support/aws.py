"""AWS Batch + S3 for tests: moto's server in-process, Batch jobs run as local processes.

There is no AWS, no Docker engine and no internet where the tests run, yet kredun's AWS code
must be exercised with real boto3 over real HTTP. :class:`MotoBatch` starts moto's
``ThreadedMotoServer`` on a free port of 127.0.0.1 and makes moto's Batch backend run each
job's command as a local subprocess (see :mod:`tests.support.aws_local_docker`), with the
job's environment plus what it needs to reach this server (``AWS_ENDPOINT_URL``, test
credentials, region) and the test virtualenv (``PATH``, ``PYTHONPATH``, ``VIRTUAL_ENV``). The
job's ``image`` is not used: its ``command`` runs on the host, in :attr:`MotoBatch.workdir`.

Use it as a context manager::

    with MotoBatch() as aws:
        env = aws.create_batch_environment("kredun")   # IAM role, compute env, job queue
        aws.create_bucket("kredun-values")
        batch = aws.client("batch")
        subprocess.run(["kredun", ...], env={**os.environ, **aws.env})

or through the pytest fixtures of this module. Import them into a test module or a
``conftest.py`` (pytest finds fixtures by name in the importing module)::

    from tests.support.aws import moto_batch, moto_batch_environ  # noqa: F401

    def test_something(moto_batch: MotoBatch) -> None: ...

``moto_batch`` yields a started :class:`MotoBatch`; ``moto_batch_environ`` additionally puts
:attr:`MotoBatch.env` into ``os.environ`` through ``monkeypatch`` (undone after the test), for
code that builds its boto3 clients from the environment.

Behaviour consumers must know (AWS Batch as moto 5.2 emulates it, with the fixes applied by
default, ``fix_moto_gaps=True``; see :data:`tests.support.aws_moto_fixes.GAP_FIXES`):

* Jobs need a ``command``; the image's entrypoint is unknown unless given through
  ``MotoBatch(image_entrypoints={image: [argv...]})``. Volumes/mounts are ignored.
* A job takes about 0.5 s longer than its command: moto polls its container every 0.5 s.
  A job with ``dependsOn`` waits at least 1 s more (moto polls dependencies every second).
* Log lines reach CloudWatch Logs (group ``/aws/batch/job``, stream = describe_jobs
  ``container.logStreamName``) while the job runs; blank lines are dropped. With
  ``fix_moto_gaps=False`` they arrive only once the job stopped, as in stock moto.
* ``terminate_job`` sends SIGTERM to the job's process group, SIGKILL after
  ``stop_grace_seconds``; the job becomes FAILED with ``statusReason`` = the given reason.
  ``cancel_job`` only affects jobs that have not started (as in Batch); a cancelled job's
  command never runs.
* Array jobs: children are ``<parent-id>:<i>`` with ``AWS_BATCH_JOB_ARRAY_INDEX`` = i. The
  parent is PENDING until all children stopped, then SUCCEEDED, or FAILED if any child
  failed. Read ``arrayProperties.statusSummary`` of the parent for the counts (real Batch
  has it too). Stock moto leaves a parent with a failed child SUBMITTED forever and only
  flips it to SUCCEEDED while someone calls describe_jobs on it.
* ``dependsOn`` types (``N_TO_N``, ``SEQUENTIAL``) are ignored: every child of an array job
  depends on all of the listed jobs.
* Stock moto's describe_jobs has no ``statusReason`` for a job that failed by itself and no
  ``container.exitCode``, and it ignores ``retryStrategy``; the fixes add both and run
  retries (job definition or submit_job ``retryStrategy``, ``evaluateOnExit`` with
  ``onExitCode``/``onStatusReason``; ``onReason`` only matches ``*``), each attempt in
  ``attempts`` with its own log stream.
* Stock moto rejects one-character job names; the fixes accept them like Batch.
* moto's state is process-global: only one MotoBatch may run at a time in a process
  (pytest-xdist workers are separate processes, which is fine). Starting one resets moto.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import boto3
import pytest
from botocore.config import Config
from moto.batch.models import Job
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from .aws_local_docker import LocalBatchRunner, wait_for
from .aws_moto_fixes import GAP_FIXES, batch_gap_fixes, local_docker

__all__ = [
    "GAP_FIXES",
    "LOG_GROUP",
    "REGION",
    "TERMINAL_STATUSES",
    "BatchEnvironment",
    "ClientFactory",
    "MotoBatch",
    "create_batch_environment",
    "create_bucket",
    "job_log_messages",
    "moto_batch",
    "moto_batch_environ",
    "register_job_definition",
    "wait_for_jobs",
]

REGION = "us-east-1"
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
LOG_GROUP = "/aws/batch/job"

# Variables of a developer's shell that would point SDKs elsewhere than at the moto server.
_CONFLICTING_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

_active_lock = threading.Lock()
_active: MotoBatch | None = None

# boto3 sessions are not thread-safe; creating clients from the shared one is serialized.
_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _boto3_session() -> boto3.session.Session:
    """The process's boto3 session for test clients: test credentials, no profile."""
    global _session
    if _session is None:
        _session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
    return _session


class _QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's access log line for every request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer that stops in milliseconds instead of up to 0.5 s.

    ``stop()`` waits for ``serve_forever`` to notice, which polls every ``poll_interval``
    (0.5 s by default); with a server per test that is most of a short test's time.
    """

    def __init__(self, ip_address: str, *, log_requests: bool) -> None:
        super().__init__(ip_address=ip_address, port=0, verbose=False)
        self._handler = MotoRequestHandler if log_requests else _QuietRequestHandler

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, threaded=True, request_handler=self._handler
        )
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.02)


class ClientFactory(Protocol):
    """Anything that makes boto3 clients for the moto server (:class:`MotoBatch` does)."""

    def client(self, service_name: str) -> Any: ...


class MotoBatch:
    """moto's server on 127.0.0.1 with AWS Batch jobs running as local processes.

    Args:
        fix_moto_gaps: apply :data:`GAP_FIXES` (exit codes, status reasons, retries, array
            parent status, live logs, ...). ``False`` gives stock moto behaviour apart from
            running the commands, for checking what moto alone does.
        workdir: working directory of job processes; default a fresh temporary directory,
            removed on stop.
        image_entrypoints: argv prefix per job image, standing in for the image's ENTRYPOINT.
        extra_job_env: variables added to every job's environment (the job's own win).
        stop_grace_seconds: time between SIGTERM and SIGKILL when a job is terminated.
        log_requests: let werkzeug log every request to stderr (moto's default), for debugging.
    """

    region = REGION

    def __init__(
        self,
        *,
        fix_moto_gaps: bool = True,
        workdir: Path | None = None,
        image_entrypoints: Mapping[str, Sequence[str]] | None = None,
        extra_job_env: Mapping[str, str] | None = None,
        stop_grace_seconds: float = 2.0,
        log_requests: bool = False,
    ) -> None:
        self.fix_moto_gaps = fix_moto_gaps
        self._log_requests = log_requests
        self._requested_workdir = workdir
        self._image_entrypoints = image_entrypoints
        self._extra_job_env = extra_job_env
        self._stop_grace_seconds = stop_grace_seconds
        self._server: _MotoServer | None = None
        self._runner: LocalBatchRunner | None = None
        self._patches: ExitStack | None = None
        self._own_workdir: Path | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._clients: dict[str, Any] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server, reset moto's (process-global) state, patch moto's Batch jobs."""
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError(
                    "a MotoBatch is already running in this process; moto's state is global, "
                    "so use that one (or stop it first)"
                )
            _active = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._server = _MotoServer(self._host, log_requests=self._log_requests)
        self._server.start()
        self._host, self._port = self._server.get_host_and_port()
        self.reset()
        if self._requested_workdir is None:
            self._own_workdir = Path(tempfile.mkdtemp(prefix="kredun-moto-batch-"))
        self._runner = LocalBatchRunner(
            client_env=self.env,
            moto_host=self._host,
            moto_port=self._port,
            workdir=self.workdir,
            image_entrypoints=self._image_entrypoints,
            extra_job_env=self._extra_job_env,
            stop_grace_seconds=self._stop_grace_seconds,
            live_logs=self.fix_moto_gaps,
        )
        self._patches = ExitStack()
        self._patches.enter_context(local_docker(self._runner))
        if self.fix_moto_gaps:
            self._patches.enter_context(batch_gap_fixes())

    def stop(self) -> None:
        """Stop all jobs, then the server; undo the patches. Safe to call twice.

        Order matters: moto's reset tells running job threads to stop (otherwise they go on
        running after the server is gone), the runner kills what is left, and the patches are
        removed only after the job threads ended, or a late job would try to reach Docker.
        """
        global _active
        try:
            if self._server is not None and self._port:
                try:
                    self.reset()
                finally:
                    if self._runner is not None:
                        self._runner.close()
                    _join_job_threads(timeout=self._stop_grace_seconds + 5.0)
                    self._server.stop()
        finally:
            self._server = None
            if self._patches is not None:
                self._patches.close()
                self._patches = None
            if self._own_workdir is not None:
                shutil.rmtree(self._own_workdir, ignore_errors=True)
                self._own_workdir = None
            with _active_lock:
                if _active is self:
                    _active = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """``POST /moto-api/reset``: forget every resource; running jobs are told to stop."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    # --- connection details -------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self._port:
            raise RuntimeError("MotoBatch is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK or CLI at this server.

        Pass them to subprocesses (``env={**os.environ, **aws.env}``) or use the
        ``moto_batch_environ`` fixture; this class never changes ``os.environ`` itself.
        """
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    @property
    def workdir(self) -> Path:
        """Working directory of the job processes."""
        workdir = self._requested_workdir or self._own_workdir
        if workdir is None:
            raise RuntimeError("MotoBatch is not started")
        return workdir

    @property
    def processes(self) -> list[Any]:
        """``subprocess.Popen`` of every job container started so far, oldest first."""
        return self._runner.processes if self._runner is not None else []

    def client(self, service_name: str) -> Any:
        """A boto3 client for this server that ignores the caller's environment.

        Clients are cached per service (boto3 clients are thread-safe), and all come from one
        boto3 session per process: a new session loads the service models again, ~0.1 s per
        client, which adds up over many short tests.
        """
        with _session_lock:
            if service_name not in self._clients:
                config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
                self._clients[service_name] = _boto3_session().client(
                    service_name, endpoint_url=self.endpoint_url, config=config
                )
            return self._clients[service_name]

    # --- scaffolding ----------------------------------------------------------------------------

    def create_batch_environment(self, name: str = "kredun") -> BatchEnvironment:
        """See :func:`create_batch_environment`."""
        return create_batch_environment(self, name)

    def create_bucket(self, name: str) -> None:
        """See :func:`create_bucket`."""
        create_bucket(self, name)


@dataclass(frozen=True)
class BatchEnvironment:
    """What :func:`create_batch_environment` made; submit jobs to ``job_queue_name``."""

    job_queue_name: str
    job_queue_arn: str
    compute_environment_name: str
    compute_environment_arn: str
    service_role_arn: str


def create_batch_environment(clients: ClientFactory, name: str = "kredun") -> BatchEnvironment:
    """Create an IAM service role, a compute environment and a job queue named ``name``.

    The compute environment is UNMANAGED: moto then needs nothing but an existing service role,
    whereas MANAGED makes it launch fake EC2 instances into subnets and security groups that
    would have to be created first - without any effect on where jobs run.
    """
    iam = clients.client("iam")
    batch = clients.client("batch")
    role_name = f"{name}-batch-service-role"
    try:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=(
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                '"Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
            ),
        )["Role"]["Arn"]
    ce_name = f"{name}-compute"
    ce_arn = batch.create_compute_environment(
        computeEnvironmentName=ce_name,
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role_arn,
    )["computeEnvironmentArn"]
    queue = batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce_arn}],
    )
    return BatchEnvironment(
        job_queue_name=queue["jobQueueName"],
        job_queue_arn=queue["jobQueueArn"],
        compute_environment_name=ce_name,
        compute_environment_arn=ce_arn,
        service_role_arn=role_arn,
    )


def create_bucket(clients: ClientFactory, name: str) -> None:
    """Create an S3 bucket (us-east-1 takes no location constraint)."""
    clients.client("s3").create_bucket(Bucket=name)


def register_job_definition(
    clients: ClientFactory,
    name: str,
    command: Sequence[str],
    *,
    image: str = "kredun:test",
    environment: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    """Register a container job definition and return its ARN.

    ``extra`` goes to ``register_job_definition`` as is (``retryStrategy``, ``timeout``, ...).
    """
    response = clients.client("batch").register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": image,
            "command": list(command),
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
            "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        },
        **extra,
    )
    return str(response["jobDefinitionArn"])


def wait_for_jobs(
    batch_client: Any,
    job_ids: Iterable[str],
    *,
    timeout: float = 30.0,
    poll_interval: float = 0.1,
) -> dict[str, dict[str, Any]]:
    """Poll describe_jobs until every job is SUCCEEDED or FAILED; return the descriptions.

    Raises ``TimeoutError`` naming the jobs still running. With ``fix_moto_gaps=False`` an
    array parent whose child failed never finishes; wait for the children instead.
    """
    pending = list(dict.fromkeys(job_ids))
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for batch_start in range(0, len(pending), 100):  # describe_jobs takes at most 100
            chunk = pending[batch_start : batch_start + 100]
            for job in batch_client.describe_jobs(jobs=chunk)["jobs"]:
                if job["status"] in TERMINAL_STATUSES:
                    done[job["jobId"]] = job
        pending = [job_id for job_id in pending if job_id not in done]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not finished after {timeout} s: {pending}")
        time.sleep(poll_interval)
    return done


def job_log_messages(clients: ClientFactory, job: Mapping[str, Any]) -> list[str]:
    """All CloudWatch log messages of a described job's (latest) log stream, oldest first."""
    stream = job.get("container", {}).get("logStreamName")
    if not stream:
        return []
    logs = clients.client("logs")
    messages: list[str] = []
    kwargs: dict[str, Any] = {
        "logGroupName": LOG_GROUP,
        "logStreamName": stream,
        "startFromHead": True,
    }
    while True:
        page = logs.get_log_events(**kwargs)
        messages += [event["message"] for event in page["events"]]
        if not page["events"] or page.get("nextForwardToken") in (None, kwargs.get("nextToken")):
            return messages
        kwargs["nextToken"] = page["nextForwardToken"]


def _join_job_threads(timeout: float) -> None:
    """Wait for moto's job threads (one per job) to finish, up to ``timeout`` in total."""
    jobs = [thread for thread in threading.enumerate() if isinstance(thread, Job)]
    wait_for(lambda: not any(job.is_alive() for job in jobs), timeout, interval=0.05)


# --- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture
def moto_batch() -> Iterator[MotoBatch]:
    """A started :class:`MotoBatch` with default settings, stopped after the test."""
    with MotoBatch() as aws:
        yield aws


@pytest.fixture
def moto_batch_environ(
    moto_batch: MotoBatch, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MotoBatch]:
    """:func:`moto_batch` with its :attr:`~MotoBatch.env` set in ``os.environ`` for the test.

    Also hides a developer's AWS profile and config files, so nothing reaches real AWS.
    """
    for variable in _CONFLICTING_AWS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for variable, value in moto_batch.env.items():
        monkeypatch.setenv(variable, value)
    yield moto_batch
