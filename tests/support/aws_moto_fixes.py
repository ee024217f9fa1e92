"""Patches to moto 5.2's AWS Batch backend, applied only while a MotoBatch is running.

Two kinds of patch live here:

* :func:`local_docker` (always): moto's ``Job`` gets its Docker client from the
  ``docker_client`` property of ``moto.utilities.docker_utilities.DockerModel``; overriding that
  property on ``Job`` hands every job a :class:`~tests.support.aws_local_docker.LocalDockerClient`.

* :func:`batch_gap_fixes` (``MotoBatch(fix_moto_gaps=True)``, the default): small corrections
  where moto differs from AWS Batch in ways a workflow engine notices. Each is listed in
  ``GAP_FIXES`` with what real Batch does; the contract tests pin every one of them.

All of this reaches into moto internals (pinned by ``moto>=5.0,<5.3`` in pyproject.toml); the
contract tests in ``tests/support_contracts/test_aws.py`` are what tells when a moto upgrade
breaks it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any
from unittest import mock

from moto import settings
from moto.batch import models as batch_models
from moto.batch.models import BatchBackend, Job, datetime2int_milliseconds
from moto.batch.responses import BatchResponse
from moto.batch.utils import JobStatus

from .aws_local_docker import LocalBatchRunner, array_index_of

#: What each fix changes; shown in the report of MotoBatch and kept next to the code.
GAP_FIXES: dict[str, str] = {
    "exit-code": "describe_jobs shows container.exitCode and attempts[].container.exitCode",
    "status-reason": "statusReason 'Essential container in task exited' (or timeout/dependency)",
    "retries": "retryStrategy.attempts / evaluateOnExit of the job definition or submit_job",
    "array-parent": "array parent is PENDING while children run, then SUCCEEDED or FAILED",
    "array-terminate": "terminate_job/cancel_job on an array parent reach its children",
    "environment": "each job gets its own environment (moto shares one list between children)",
    "job-name": "one-character job names are accepted",
    "live-logs": "output reaches CloudWatch while the job runs (done by LocalBatchRunner)",
}

ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
ATTEMPT_TIMED_OUT = "Job attempt duration exceeded timeout"
DEPENDENCY_FAILED = "Dependent Job failed"
NOT_STARTED = "Task failed to start"

# Job stop bookkeeping (attempt outcome, retry decision, array parent completion) happens on
# many job threads at once; one re-entrant lock keeps "all children stopped" checks coherent.
_STOP_LOCK = threading.RLock()

# submit_job's retryStrategy is parsed by the HTTP handler, which moto then drops. The Job
# objects are built on that same request thread, so a thread-local carries it across.
_submit_context = threading.local()


@contextlib.contextmanager
def local_docker(runner: LocalBatchRunner) -> Iterator[None]:
    """Make every moto Batch job run its containers through ``runner``.

    Also answer moto's "where is the moto server" question (``MOTO_HOST``/``MOTO_PORT`` in the
    job environment) with this server: stock moto guesses, and inside a container it shells
    out to curl the Docker socket for it on every job, printing a warning each time.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(Job, "docker_client", property(runner.docker_client_for))
        )
        stack.enter_context(
            mock.patch.object(settings, "moto_server_host", lambda: f"http://{runner.moto_host}")
        )
        stack.enter_context(
            mock.patch.object(settings, "moto_server_port", lambda: str(runner.moto_port))
        )
        yield


@contextlib.contextmanager
def batch_gap_fixes() -> Iterator[None]:
    """Apply the corrections described in :data:`GAP_FIXES`."""
    replacements: list[tuple[object, str, Any]] = [
        (batch_models, "JOB_NAME_REGEX", re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")),
        (BatchResponse, "submitjob", _wrap_submitjob(BatchResponse.submitjob)),
        (BatchBackend, "submit_job", _wrap_submit_job(BatchBackend.submit_job)),
        (BatchBackend, "terminate_job", _wrap_terminate_job(BatchBackend.terminate_job)),
        (BatchBackend, "cancel_job", _wrap_cancel_job(BatchBackend.cancel_job)),
        (Job, "__init__", _wrap_job_init(Job.__init__)),
        (Job, "run", _wrap_run(Job.run)),
        (Job, "_mark_stopped", _wrap_mark_stopped(Job._mark_stopped)),
        (Job, "_container_details", _wrap_container_details(Job._container_details)),
        (Job, "_get_container_property", _wrap_get_property(Job._get_container_property)),
    ]
    with contextlib.ExitStack() as stack:
        for target, attribute, value in replacements:
            stack.enter_context(mock.patch.object(target, attribute, value))
        yield


# --- submit: carry retryStrategy, array parent status ---------------------------------------


def _wrap_submitjob(original: Callable[[BatchResponse], str]) -> Callable[[BatchResponse], str]:
    def submitjob(self: BatchResponse) -> str:
        _submit_context.retry_strategy = self._get_param("retryStrategy")
        try:
            return original(self)
        finally:
            _submit_context.retry_strategy = None

    return submitjob


def _wrap_job_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Job, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._kredun_retry_strategy = getattr(_submit_context, "retry_strategy", None)
        self._kredun_retry_pending = False

    return __init__


def _wrap_submit_job(original: Callable[..., tuple[str, str, str]]) -> Callable[..., Any]:
    def submit_job(self: BatchBackend, *args: Any, **kwargs: Any) -> tuple[str, str, str]:
        name, job_id, arn = original(self, *args, **kwargs)
        job = self.get_job_by_id(job_id)
        if job is not None and job._child_jobs:
            # moto never advances a parent (it has no thread); Batch shows it PENDING.
            with _STOP_LOCK:
                if not job.job_stopped:
                    job.status = JobStatus.PENDING.value
        return name, job_id, arn

    return submit_job


def _wrap_terminate_job(original: Callable[..., None]) -> Callable[..., None]:
    def terminate_job(self: BatchBackend, job_id: str, reason: str) -> None:
        original(self, job_id, reason)
        job = self.get_job_by_id(job_id)
        for child in (job._child_jobs or []) if job is not None else []:
            child.terminate(reason)

    return terminate_job


def _wrap_cancel_job(original: Callable[..., None]) -> Callable[..., None]:
    def cancel_job(self: BatchBackend, job_id: str, reason: str) -> None:
        original(self, job_id, reason)
        job = self.get_job_by_id(job_id)
        for child in (job._child_jobs or []) if job is not None else []:
            # Like Batch: cancelling leaves children that already started running.
            if child.status and JobStatus.is_job_before_starting(child.status):
                child.terminate(reason)

    return cancel_job


# --- environment -------------------------------------------------------------------------


def _wrap_get_property(original: Callable[[Job, str, Any], Any]) -> Callable[..., Any]:
    def _get_container_property(self: Job, p: str, default: Any) -> Any:
        if p != "environment":
            return original(self, p, default)
        # moto appends to the containerOverrides list it was given, on every describe, and
        # all children of an array job share that list - so a child can run with a sibling's
        # AWS_BATCH_JOB_ID. Build a fresh list instead.
        defined = (self.job_definition.container_properties or {}).get("environment") or []
        overrides = self.container_overrides.get("environment") or []
        merged = {e["name"]: e["value"] for e in defined}
        merged.update({e["name"]: e["value"] for e in overrides})
        merged["AWS_BATCH_JOB_ID"] = self.job_id
        return [{"name": name, "value": value} for name, value in merged.items()]

    return _get_container_property


# --- stop bookkeeping: reasons, exit codes, retries, array parents -----------------------


def _wrap_mark_stopped(original: Callable[[Job, bool], None]) -> Callable[..., None]:
    def _mark_stopped(self: Job, success: bool = True) -> None:
        with _STOP_LOCK:
            # moto calls _mark_stopped(success=True) unconditionally at the end of run(); it
            # must not turn an attempt that is about to be retried into a success.
            if self.job_stopped or getattr(self, "_kredun_retry_pending", False):
                return
            is_array_parent = bool(self._child_jobs)
            if not is_array_parent:
                reason = self.job_stopped_reason or _stop_reason(self)
                if not success and not self.stop and _should_retry(self, reason):
                    _close_attempt(self, reason)
                    self._kredun_retry_pending = True
                    self.status = JobStatus.RUNNABLE.value
                    self._tick = 0  # ManagedState: stay RUNNABLE until run() advances it
                    return
                self.job_stopped_reason = reason
            original(self, success)
            if not is_array_parent:
                _close_attempt(self, self.job_stopped_reason)
            _complete_array_parent(self)

    return _mark_stopped


def _wrap_run(original: Callable[[Job], None]) -> Callable[[Job], None]:
    def run(self: Job) -> None:
        while True:
            original(self)
            with _STOP_LOCK:
                if not getattr(self, "_kredun_retry_pending", False):
                    return
                self._kredun_retry_pending = False
                self.exit_code = None
                # Each attempt is its own ECS task with its own log stream in Batch.
                attempt = len(self.attempts) + 1
                self._stream_name = f"{self.job_definition.name}/default/{self.job_id}-{attempt}"

    return run


def _wrap_container_details(original: Callable[[Job], dict[str, Any]]) -> Callable[..., Any]:
    def _container_details(self: Job) -> dict[str, Any]:
        details = original(self)
        if self.job_stopped and self.exit_code is not None:
            details["exitCode"] = self.exit_code
        return details

    return _container_details


def _stop_reason(job: Job) -> str:
    """The statusReason Batch would give a job whose container stopped on its own."""
    if job.exit_code is not None:
        return ESSENTIAL_CONTAINER_EXITED
    duration = job._get_attempt_duration()
    elapsed = (datetime.now() - job.job_started_at).total_seconds()
    if job.attempts and duration and elapsed >= duration:
        return ATTEMPT_TIMED_OUT
    if not job.attempts and job.depends_on:
        return DEPENDENCY_FAILED
    return NOT_STARTED


def _should_retry(job: Job, reason: str) -> bool:
    """Batch's retry rule: attempts left, and the first matching evaluateOnExit says RETRY.

    With evaluateOnExit present but no entry matching, Batch retries.
    """
    strategy = getattr(job, "_kredun_retry_strategy", None) or job.job_definition.retry_strategy
    strategy = strategy or {}
    attempts = int(strategy.get("attempts") or 1)
    if not job.attempts or len(job.attempts) >= attempts:
        return False
    exit_code = "" if job.exit_code is None else str(job.exit_code)
    for rule in strategy.get("evaluateOnExit") or []:
        checks = (("onExitCode", exit_code), ("onStatusReason", reason), ("onReason", ""))
        if all(fnmatchcase(value, rule[key]) for key, value in checks if key in rule):
            return str(rule.get("action", "")).upper() == "RETRY"
    return True


def _close_attempt(job: Job, reason: str | None) -> None:
    """Record how the latest attempt ended, in the shape describe_jobs returns in Batch."""
    attempt = job.latest_attempt
    if not attempt:
        return
    attempt.setdefault("stoppedAt", datetime2int_milliseconds(datetime.now()))
    attempt["container"]["logStreamName"] = job.log_stream_name
    if job.exit_code is not None:
        attempt["container"]["exitCode"] = job.exit_code
    if reason:
        attempt["statusReason"] = reason


def _complete_array_parent(child: Job) -> None:
    """Once every child of an array job stopped, stop the parent: FAILED if any child failed.

    moto only ever flips a parent to SUCCEEDED, and only while describing it; a job that
    depends on the parent waited for someone to call describe_jobs.
    """
    if array_index_of(child.job_id) is None:
        return
    parent = child.all_jobs.get(child.job_id.rpartition(":")[0])
    if parent is None or parent.job_stopped or not parent._child_jobs:
        return
    children = parent._child_jobs
    if not all(c.job_stopped for c in children):
        return
    parent.job_started_at = min(c.job_started_at for c in children)
    parent._mark_stopped(success=all(c.status == JobStatus.SUCCEEDED for c in children))
