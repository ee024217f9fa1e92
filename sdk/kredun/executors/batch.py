"""AWS Batch: each job runs `kredun worker` in a Batch container.

Configuration (`.kredun/kredun.toml`, or the dict given to `Scheduler(config=...)`)::

    [database]
    uri = "postgresql+psycopg://kredun:secret@db.internal/kredun"   # reachable from Batch
    [value_store]
    uri = "s3://my-bucket/kredun"                                   # arguments and results

    [executors.batch]
    type = "batch"
    job_queue = "kredun"            # required: name or ARN of an ENABLED job queue
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/kredun:latest"   # required
    cpus = 1                        # per job (or vcpus); rounded up to a quarter
    memory = "2Gi"                  # GiB as a number, or a quantity: "512Mi", "4Gi", "1G"
    gpus = 0                        # resources read as on every executor: kredun.resources
    role = "arn:aws:iam::123456789012:role/kredun-job"   # job role (jobRoleArn), optional
    retries = 0                     # Batch retryStrategy attempts = retries + 1 (at most 9)
    timeout = 3600                  # seconds per attempt (Batch's minimum is 60), optional
    job_name_prefix = "kredun"      # job and job definition names start with it
    batch_window = 0.3              # seconds to gather ready jobs into one array job
    poll_interval = 2.0             # seconds between describe_jobs rounds
    region = "us-west-2"            # default: boto3's (AWS_DEFAULT_REGION, ~/.aws/config)
    endpoint_url = "http://..."     # default: boto3's (AWS_ENDPOINT_URL...); Batch and Logs
    log_group = "/aws/batch/job"    # where the job definitions' logs go
    environment = { TZ = "UTC" }    # extra variables for every job

Tasks override the job options (`job_queue`, `image`, `cpus`/`vcpus`, `memory`, `gpus`,
`role`, `retries`, `timeout`): `@task(executor="batch", cpus=4, memory="16Gi")`, and so does
`subrun(expr, executor="batch", cpus=..., memory=..., config={...})`, whose nested
scheduler then runs inside one Batch job. A job that falls back from Kubernetes asks for
the cpus, memory and gpus its Pod asked for.

How jobs run:

* Jobs get `KREDUN_VALUE_STORE`: the part of the scheduler's value store that holds its
  cache scope's values (kredun.tenancy), which must be reachable from Batch (a `memory://`
  store is refused before anything is submitted). They get no database URI: the worker
  stores its result blob there and leaves its outcome (kredun.outcome) under the key
  `outcome_key(<Batch job id>)`; the executor reads it when the job ends, checks the blob
  against it and the scheduler records provenance. The job role's S3 policy should allow
  only that scope's prefix.
* One job definition per shape (image, vCPUs, MiB of memory, gpus, role), named
  `<prefix>-def-<hash of the shape>`: an ACTIVE definition of that name is reused, else one
  is registered. Each submission sets the command: `kredun worker --spec-json SPEC`, or
  `--spec-hash HASH` when the spec is large (kept in the value store).
* Jobs of the same task and options that become ready within `batch_window` of each other
  are submitted as one array job (2 to 10,000 children; more become several arrays). The
  list of specs is kept in the value store; child i runs `kredun worker --spec-list-hash
  HASH`, which picks entry `$AWS_BATCH_JOB_ARRAY_INDEX`.
* One monitor thread per executor submits the gathered jobs and polls `describe_jobs`
  (100 ids per call). An array job is followed through `arrayProperties.statusSummary`;
  when its count of finished children grows, the children are listed by status. The parent's
  own status is not trusted (Batch, and moto, can leave it SUBMITTED after a child failed).
* `retries` is Batch's `retryStrategy`: Batch retries the job itself, each attempt with its
  own log stream. The scheduler must not retry on top of that: every outcome carries the
  attempts Batch made (`JobOutcome.attempts`), which the scheduler records, retrying no more.
* A failed job's error names the Batch job id, `statusReason`, exit code, log stream and the
  last log line; the job's log tail (CloudWatch) is its traceback text. Print a whole log
  with `kredun batch-logs JOB_ID`.
* `shutdown()` (Ctrl-C, a cancelled execution, `Scheduler.close()`) terminates every job
  still running; jobs still gathering in the batching window are never submitted.
* Re-attach: single jobs are named `<prefix>-<eval hash[:12]>` and tagged
  `kredun:eval-hash`; array jobs are tagged `kredun:spec-list` (the spec list's hash); both
  carry `kredun:stores` (a hash of the database and value store URIs). Before its first
  submission to a queue, the executor lists the queue's active jobs with its prefix and
  attaches jobs whose eval hash is among them (same stores, child not failed) instead of
  submitting them again, so a scheduler restarted after a crash picks up its running jobs.
* Errors that stop jobs from being submitted are one line and name the resource (missing
  queue or bucket, no credentials, access denied, rejected job definition): see
  `kredun.executors.batch_api`. Such a job is recorded FAILED with that message.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    ExecutorError,
    KredunError,
    LimitExceededError,
    OutcomeError,
    ValueNotFoundError,
)
from ..hashing import hash_bytes, hash_text
from ..outcome import MAX_OUTCOME_BYTES, OUTCOME_STORE_VARIABLE, Outcome, outcome_key
from ..outcome import parse as parse_outcome
from ..resources import Resources
from ..s3store import S3ValueStore
from ..tenancy import scoped_store_uri
from .base import ReportOutcome
from .batch_api import (
    AwsAccessDeniedError,
    AwsCredentialsError,
    BatchApi,
    BatchError,
    BatchJobFailedError,
    BucketNotFoundError,
    JobDefinitionError,
    JobQueueNotFoundError,
    UnreachableStoreError,
    check_bucket,
)
from .batch_options import ExecutorSettings, JobSettings
from .remote import RemoteExecutor

if TYPE_CHECKING:
    from ..job import Job

__all__ = [
    "ARRAY_LIMIT",
    "AwsAccessDeniedError",
    "AwsCredentialsError",
    "BatchError",
    "BatchExecutor",
    "BatchJobFailedError",
    "BucketNotFoundError",
    "JobDefinitionError",
    "JobQueueNotFoundError",
    "UnreachableStoreError",
    "array_chunks",
]

ARRAY_LIMIT = 10_000  # children per array job (AWS limit)
SPEC_INLINE_LIMIT = 8 * 1024  # larger specs go to the value store (submit_job takes 30 KiB)
LOG_TAIL_LINES = 50
POLL_FAILURES_LIMIT = 5  # consecutive failed polls before the running jobs are given up
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED")
SHUTDOWN_REASON = "kredun: the scheduler shut down (execution cancelled or interrupted)"

T = TypeVar("T")


def array_chunks(items: list[T], limit: int = ARRAY_LIMIT) -> list[list[T]]:
    """Split a group of jobs into submissions of at most `limit` (one job: a single job)."""
    return [items[start : start + limit] for start in range(0, len(items), limit)]


@dataclass(eq=False)
class _Submission:
    """A kredun job on its way to Batch, or running there."""

    job: Job
    spec_json: str
    report: ReportOutcome
    settings: JobSettings
    definition: str  # job definition ARN


@dataclass(eq=False)
class _Group:
    """Jobs of one task and settings gathering during the batching window."""

    deadline: float
    items: list[_Submission] = field(default_factory=list)


@dataclass(eq=False)
class _ArrayJob:
    parent_id: str
    children: dict[int, _Submission]  # unfinished children this executor waits for
    owned: bool  # submitted by this executor (else re-attached to some of its children)
    finished_seen: int = 0  # children seen SUCCEEDED or FAILED so far


class BatchExecutor(RemoteExecutor):
    """Runs jobs on AWS Batch; see the module documentation for options and behaviour."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        # Options, stores and AWS are checked on the first job, so that a problem fails that
        # job (recorded with the reason) rather than the scheduler.
        self._setup_lock = threading.Lock()
        self._setup_error: KredunError | None = None
        self._settings: ExecutorSettings | None = None
        self._api: BatchApi | None = None
        self._environment: dict[str, str] = {}
        self._stores_tag = ""
        self._queues: dict[str, KredunError | None] = {}  # checked queues: None when fine
        # Jobs gathering for submission, shared with the monitor thread under the lock.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._groups: dict[tuple[str, JobSettings], _Group] = {}
        self._monitor: threading.Thread | None = None
        self._stopping = False
        # Jobs on Batch: the monitor thread's alone (and shutdown's, once it stopped).
        self._singles: dict[str, _Submission] = {}
        self._arrays: dict[str, _ArrayJob] = {}
        self._recoverable: dict[str, dict[str, str]] = {}  # queue -> eval hash -> Batch id

    @property
    def settings(self) -> ExecutorSettings:
        if self._settings is None:
            raise ExecutorError(f"AWS Batch executor {self.name!r} has not set up yet")
        return self._settings

    @property
    def api(self) -> BatchApi:
        if self._api is None:
            raise ExecutorError(f"AWS Batch executor {self.name!r} has not set up yet")
        return self._api

    # -- submission (scheduler thread) ----------------------------------------------------

    def submit(self, job: Job, report: ReportOutcome, resources: Resources | None = None) -> None:
        try:
            self._setup()
            super().submit(job, report, resources)
        except Exception as error:  # not submitted: the job fails, not the scheduler
            self._fail(job, report, error)

    def launch(self, job: Job, spec_json: str, report: ReportOutcome, resources: Resources) -> None:
        settings = self.settings.job_settings(job.task.option_values, resources)
        self._check_queue(settings.queue)
        definition = self.api.definition_arn(settings.shape)
        item = _Submission(job, spec_json, report, settings, definition)
        key = (job.task.hash, settings)
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(time.monotonic() + self.settings.batch_window)
            group.items.append(item)
            if self._monitor is None:
                self._monitor = threading.Thread(
                    target=self._run_monitor, name=f"kredun-batch-{self.name}", daemon=True
                )
                self._monitor.start()
            self._wake.notify()

    def _setup(self) -> None:
        with self._setup_lock:
            if self._setup_error is not None:
                raise self._setup_error
            if self._api is not None:
                return
            try:
                self._settings = ExecutorSettings.parse(self.name, self.options)
                self._environment = self._job_environment()
                self._api = BatchApi(self._settings)
                store = self.value_store
                if isinstance(store, S3ValueStore):
                    check_bucket(store.client, store.bucket, store.uri)
            except KredunError as error:
                self._setup_error = error
                raise

    def _job_environment(self) -> dict[str, str]:
        """What every job gets: the value store of the scheduler's cache scope (no database:
        jobs report through the value store), then the `environment` option."""
        host = self.host
        environment = {
            "KREDUN_VALUE_STORE": scoped_store_uri(host.value_store_uri, host.cache_scope),
            OUTCOME_STORE_VARIABLE: "1",
            **self.settings.environment,
        }
        if environment["KREDUN_VALUE_STORE"].startswith("memory:"):
            raise UnreachableStoreError(
                f"executor {self.name!r}: Batch jobs cannot reach the memory:// value store; "
                'configure [value_store] uri = "s3://bucket/prefix"'
            )
        # Jobs of another database's runs, or another scope's, are not ours to re-attach to.
        stores = f"{host.database_uri}\n{environment['KREDUN_VALUE_STORE']}"
        self._stores_tag = hash_text(stores)[:16]
        return environment

    def _check_queue(self, queue: str) -> None:
        with self._setup_lock:
            if queue not in self._queues:
                try:
                    self.api.check_queue(queue)
                except KredunError as error:
                    self._queues[queue] = error
                else:
                    self._queues[queue] = None
            failure = self._queues[queue]
        if failure is not None:
            raise failure

    # -- the monitor thread: submit gathered jobs, poll running ones ----------------------

    def _run_monitor(self) -> None:
        next_poll = time.monotonic() + self.settings.poll_interval
        failures = 0
        while True:
            with self._lock:
                due = self._wait_for_work(next_poll)
                if self._stopping:
                    return
            for group in due:
                self._submit_group(group.items)
            if time.monotonic() < next_poll:
                continue
            try:
                self._poll()
                failures = 0
            except Exception as error:
                failures += 1
                self.host.logger.warning("Batch executor %r: polling failed (%d): %s",
                                         self.name, failures, error)  # fmt: skip
                if failures >= POLL_FAILURES_LIMIT:
                    self._give_up(error)
            next_poll = time.monotonic() + self.settings.poll_interval

    def _wait_for_work(self, next_poll: float) -> list[_Group]:
        """Sleep until a group's window closes or it is time to poll; take the due groups.
        Called with the lock held."""
        while not self._stopping:
            now = time.monotonic()
            due = [key for key, group in self._groups.items()
                   if group.deadline <= now or len(group.items) >= ARRAY_LIMIT]  # fmt: skip
            if due:
                return [self._groups.pop(key) for key in due]
            if now >= next_poll:
                return []
            deadlines = [group.deadline for group in self._groups.values()]
            self._wake.wait(min([next_poll, *deadlines]) - now)
        return []

    def _submit_group(self, items: list[_Submission]) -> None:
        try:
            items = self._reattach(items)
        except Exception as error:
            for item in items:
                self._fail(item.job, item.report, error)
            return
        for chunk in array_chunks(items):
            try:
                if len(chunk) == 1:
                    self._submit_single(chunk[0])
                else:
                    self._submit_array(chunk)
            except Exception as error:
                for item in chunk:
                    self._fail(item.job, item.report, error)

    def _request(self, name: str, item: _Submission, command: list[str],
                 tags: dict[str, str]) -> dict[str, Any]:  # fmt: skip
        settings = item.settings
        environment = [{"name": key, "value": value} for key, value in self._environment.items()]
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": settings.queue,
            "jobDefinition": item.definition,
            "containerOverrides": {"command": command, "environment": environment},
            "tags": {**tags, "kredun:stores": self._stores_tag},
        }
        if settings.retries:
            request["retryStrategy"] = {"attempts": settings.retries + 1}
        if settings.timeout:
            request["timeout"] = {"attemptDurationSeconds": settings.timeout}
        return request

    def _submit_single(self, item: _Submission) -> None:
        job = item.job
        if len(item.spec_json) <= SPEC_INLINE_LIMIT:
            command = ["kredun", "worker", "--spec-json", item.spec_json]
        else:
            spec_hash = hash_bytes(item.spec_json.encode())
            self.value_store.put(spec_hash, item.spec_json.encode())
            command = ["kredun", "worker", "--spec-hash", spec_hash]
        tags = {"kredun:eval-hash": job.eval_hash, "kredun:task": job.task.fullname}
        name = f"{self.settings.prefix}-{job.eval_hash[:12]}"
        request = self._request(name, item, command, tags)
        job_id = self.api.submit(f"job {name} to AWS Batch queue {item.settings.queue!r}",
                                 **request)  # fmt: skip
        self._singles[job_id] = item
        self.host.logger.info("Batch  Job %s:  AWS Batch job %s", job.id[:8], job_id)

    def _submit_array(self, items: list[_Submission]) -> None:
        data = ("[" + ",".join(item.spec_json for item in items) + "]").encode()
        list_hash = hash_bytes(data)
        self.value_store.put(list_hash, data)
        task = items[0].job.task.fullname
        name = f"{self.settings.prefix}-array-{list_hash[:12]}"
        command = ["kredun", "worker", "--spec-list-hash", list_hash]
        tags = {"kredun:spec-list": list_hash, "kredun:task": task}
        request = self._request(name, items[0], command, tags)
        request["arrayProperties"] = {"size": len(items)}
        where = f"array job {name} of {len(items)} to AWS Batch queue {items[0].settings.queue!r}"
        parent_id = self.api.submit(where, **request)
        self._arrays[parent_id] = _ArrayJob(parent_id, dict(enumerate(items)), owned=True)
        self.host.logger.info("Batch  %d jobs of %s:  AWS Batch array job %s",
                              len(items), task, parent_id)  # fmt: skip

    # -- re-attaching to jobs submitted before a restart ----------------------------------

    def _reattach(self, items: list[_Submission]) -> list[_Submission]:
        """Attach the jobs already running on Batch; return the others, to be submitted."""
        queue = items[0].settings.queue
        if queue not in self._recoverable:
            self._recoverable[queue] = self._active_jobs_by_eval_hash(queue)
        recoverable = self._recoverable[queue]
        matches = {item: recoverable.pop(item.job.eval_hash)
                   for item in items if item.job.eval_hash in recoverable}  # fmt: skip
        if not matches:
            return items
        # Array children were not described by the scan, and any job may have failed since.
        attachable = {job["jobId"] for job in self.api.describe(list(matches.values()))
                      if job["status"] != "FAILED"}  # fmt: skip
        remaining = [item for item in items if item not in matches]
        for item, batch_id in matches.items():
            if batch_id not in attachable:
                remaining.append(item)
                continue
            if ":" in batch_id:
                parent_id, _, index = batch_id.rpartition(":")
                array = self._arrays.setdefault(parent_id, _ArrayJob(parent_id, {}, owned=False))
                array.children[int(index)] = item
            else:
                self._singles[batch_id] = item
            self.host.logger.info("Attach Job %s:  running AWS Batch job %s",
                                  item.job.id[:8], batch_id)  # fmt: skip
        return remaining

    def _active_jobs_by_eval_hash(self, queue: str) -> dict[str, str]:
        """Active jobs of this prefix and these stores in the queue, by the eval hash they
        compute: a job id, or `<parent id>:<index>` for a child of an array job."""
        found: dict[str, str] = {}
        ids = self.api.active_jobs(queue, f"{self.settings.prefix}-")
        for description in self.api.describe(ids):
            tags = description.get("tags") or {}
            if tags.get("kredun:stores") != self._stores_tag:
                continue
            if "kredun:eval-hash" in tags:
                found.setdefault(tags["kredun:eval-hash"], description["jobId"])
            elif "kredun:spec-list" in tags:
                try:
                    specs = json.loads(self.value_store.get(tags["kredun:spec-list"]))
                except (KredunError, ValueError):
                    continue  # a list this scheduler cannot read is not one it wrote
                for index, spec in enumerate(specs):
                    found.setdefault(spec["eval_hash"], f"{description['jobId']}:{index}")
        return found

    # -- polling ------------------------------------------------------------------------

    def _poll(self) -> None:
        singles, arrays = list(self._singles), list(self._arrays)
        if not singles and not arrays:
            return
        described = {job["jobId"]: job for job in self.api.describe(singles + arrays)}
        for job_id in singles:
            description = described.get(job_id)
            if description is None:
                self._job_failed(self._singles.pop(job_id), job_id, None)
            elif description["status"] in TERMINAL_STATUSES:
                self._job_ended(self._singles.pop(job_id), description)
        for parent_id in arrays:
            self._poll_array(self._arrays[parent_id], described.get(parent_id))

    def _poll_array(self, array: _ArrayJob, description: dict[str, Any] | None) -> None:
        if description is None:
            for index, item in array.children.items():
                self._job_failed(item, f"{array.parent_id}:{index}", None)
            array.children.clear()
        else:
            summary = description.get("arrayProperties", {}).get("statusSummary")
            if summary and description["status"] not in TERMINAL_STATUSES:
                finished = summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0)
                if finished <= array.finished_seen:
                    return
            self._collect_children(array)
        if not array.children:
            del self._arrays[array.parent_id]

    def _collect_children(self, array: _ArrayJob) -> None:
        """Report the children that finished since the last look."""
        succeeded = self.api.children(array.parent_id, "SUCCEEDED")
        failed = self.api.children(array.parent_id, "FAILED")
        ours = [child for child in failed if int(child.rpartition(":")[2]) in array.children]
        failures = self.api.describe(ours)
        for child_id in succeeded:
            item = array.children.pop(int(child_id.rpartition(":")[2]), None)
            if item is not None:
                self._succeeded(item, child_id, None)
        for description in failures:
            index = int(description["jobId"].rpartition(":")[2])
            self._job_failed(array.children.pop(index), description["jobId"], description)
        array.finished_seen = len(succeeded) + len(failed)

    def _job_ended(self, item: _Submission, description: dict[str, Any]) -> None:
        if description["status"] == "SUCCEEDED":
            self._succeeded(item, description["jobId"], description)
        else:
            self._job_failed(item, description["jobId"], description)

    def _succeeded(self, item: _Submission, job_id: str,
                   description: dict[str, Any] | None) -> None:  # fmt: skip
        attempts = max(len(description.get("attempts") or []), 1) if description else 1
        try:
            outcome = self._outcome(job_id)
        except KredunError as error:
            self.finished(item.job, item.report, error, attempts=attempts)
            return
        self.finished(item.job, item.report, outcome=outcome, attempts=attempts)

    def _outcome(self, job_id: str) -> Outcome:
        """The outcome the worker of Batch job `job_id` left in the value store."""
        key = outcome_key(job_id)
        try:
            data = self.value_store.get(key, max_bytes=MAX_OUTCOME_BYTES)
        except ValueNotFoundError:
            raise OutcomeError(f"AWS Batch job {job_id} reported no outcome") from None
        except LimitExceededError as error:
            raise OutcomeError(f"AWS Batch job {job_id}: {error}") from None
        return parse_outcome(data)

    def _job_failed(
        self, item: _Submission, job_id: str, description: dict[str, Any] | None
    ) -> None:
        """Report a Batch job that failed (or vanished: `description` None)."""
        task = item.job.task.fullname
        if description is None:
            error = BatchJobFailedError(f"AWS Batch job {job_id} ({task}) is no longer known "
                                        "to AWS Batch")  # fmt: skip
            self._fail(item.job, item.report, error)
            return
        attempts = description.get("attempts") or []
        latest = (attempts[-1].get("container") if attempts else None) or {}
        container = {**latest, **(description.get("container") or {})}
        stream = container.get("logStreamName")
        lines: list[str] = []
        if stream:
            try:
                lines = self.api.log_lines(stream, tail=LOG_TAIL_LINES)
            except KredunError as error:
                lines = [f"(log tail unavailable: {error})"]
        details = [description.get("statusReason") or "no status reason"]
        if container.get("reason"):
            details.append(str(container["reason"]))
        if container.get("exitCode") is not None:
            details.append(f"exit code {container['exitCode']}")
        details.append(f"log stream {stream}" if stream else "no log stream")
        last_line = next((line.strip() for line in reversed(lines) if line.strip()), None)
        if last_line:
            details.append(f"last log line: {last_line[:500]}")
        tried = f" after {len(attempts)} attempts" if len(attempts) > 1 else ""
        failure = BatchJobFailedError(f"AWS Batch job {job_id} ({task}) failed{tried}: "
                                      + "; ".join(details))  # fmt: skip
        try:
            outcome: Outcome | None = self._outcome(job_id)  # what the task raised, if it ran
        except KredunError:
            outcome = None
        self._fail(item.job, item.report, failure, "\n".join(lines) or None, len(attempts),
                   outcome)  # fmt: skip

    def _give_up(self, error: Exception) -> None:
        """Fail every job being waited for: AWS Batch cannot be asked about them."""
        items = list(self._singles.values()) + [
            item for array in self._arrays.values() for item in array.children.values()
        ]
        self._singles.clear()
        self._arrays.clear()
        failure = BatchError(f"lost contact with AWS Batch: {error}")
        for item in items:
            self._fail(item.job, item.report, failure)

    # -- outcomes -------------------------------------------------------------------------

    def _fail(self, job: Job, report: ReportOutcome, error: BaseException,
              log_tail: str | None = None, attempts: int = 1,
              outcome: Outcome | None = None) -> None:  # fmt: skip
        """Report a failure. Batch made the retries (every outcome carries its attempt
        count), so the scheduler does not submit the job once more."""
        if not isinstance(error, KredunError):
            error = ExecutorError(f"AWS Batch executor {self.name!r}: {error!r}")
        self.finished(job, report, error, log_tail, outcome, attempts=max(attempts, 1))

    # -- shutdown -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the monitor and terminate every job still running on Batch."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.join()
        job_ids = list(self._singles)
        for array in self._arrays.values():
            if array.owned:
                job_ids.append(array.parent_id)  # reaches all its children
            else:
                job_ids += [f"{array.parent_id}:{index}" for index in array.children]
        self._singles.clear()
        self._arrays.clear()
        self._groups.clear()
        for job_id in job_ids:
            try:
                self.api.terminate(job_id, SHUTDOWN_REASON)
            except KredunError as error:
                self.host.logger.warning("Batch executor %r: %s", self.name, error)
        if job_ids:
            self.host.logger.info("Batch executor %r: terminated %d AWS Batch job(s)",
                                  self.name, len(job_ids))  # fmt: skip
