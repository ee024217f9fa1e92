"""The AWS calls of the Batch executor, each AWS failure turned into a one-line kredun error
that names the resource. boto3 is imported only when a `BatchApi` is created."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError, ExecutorError
from .batch_options import ExecutorSettings, JobShape

ACTIVE_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
DESCRIBE_LIMIT = 100  # job ids per describe_jobs call

_CREDENTIAL_CODES = {
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
    "ExpiredTokenException", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthFailure",
}  # fmt: skip
_ACCESS_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}


class BatchError(ExecutorError):
    """AWS Batch could not run a job."""


class AwsCredentialsError(BatchError):
    """No AWS credentials were found, or AWS rejected them."""


class AwsAccessDeniedError(BatchError):
    """The credentials are valid but not allowed to do something."""


class JobQueueNotFoundError(BatchError):
    """The configured job queue does not exist (or is not enabled)."""


class BucketNotFoundError(BatchError):
    """The S3 bucket of the value store does not exist."""


class JobDefinitionError(BatchError):
    """AWS Batch rejected the job definition of a job shape."""


class BatchJobFailedError(BatchError):
    """A job ran on AWS Batch and failed (the task raised, the container died, ...)."""


class UnreachableStoreError(BatchError, ConfigError):
    """The scheduler's database or value store cannot be reached from Batch jobs."""


def error_code(error: Exception) -> tuple[str, str]:
    """An AWS error's code and one-line message ("" and str(error) for other errors)."""
    details = (getattr(error, "response", None) or {}).get("Error", {})
    code = str(details.get("Code", ""))
    message = str(details.get("Message") or code or error)
    # An XML error body that botocore could not parse for a JSON service: keep its message.
    embedded = re.search(r"<Message>(.*?)</Message>", message, re.DOTALL)
    return code, " ".join((embedded.group(1) if embedded else message).split())


def translate(error: Exception, action: str, resource: str) -> BatchError:
    """The kredun error for an exception of a boto3 call that tried to `action` `resource`."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return AwsCredentialsError(
            f"no AWS credentials to {action} {resource}: configure them (environment, "
            "AWS_PROFILE, ~/.aws or an IAM role)"
        )
    if isinstance(error, EndpointConnectionError):
        return BatchError(f"cannot reach AWS to {action} {resource}: {error}")
    if not isinstance(error, ClientError):
        return BatchError(f"cannot {action} {resource}: {type(error).__name__}: {error}")
    code, message = error_code(error)
    if code in _CREDENTIAL_CODES:
        return AwsCredentialsError(f"AWS rejected the credentials to {action} {resource}: "
                                   f"{code}: {message}")  # fmt: skip
    if code in _ACCESS_CODES:
        return AwsAccessDeniedError(f"access denied to {action} {resource}: {message}")
    return BatchError(f"cannot {action} {resource}: {code}: {message}")


class BatchApi:
    """boto3 clients for Batch and CloudWatch Logs, configured by the executor's options
    (`region`, `endpoint_url`) on top of boto3's usual environment and config files."""

    def __init__(self, settings: ExecutorSettings) -> None:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import NoRegionError
        except ImportError:
            raise ConfigError(
                f"executor {settings.name!r} needs boto3: pip install 'kredun[aws]'"
            ) from None
        session = boto3.session.Session(region_name=settings.region)
        config = Config(retries={"mode": "standard", "max_attempts": 8})
        try:
            self.batch = session.client("batch", endpoint_url=settings.endpoint_url, config=config)
            self.logs = session.client("logs", endpoint_url=settings.endpoint_url, config=config)
        except NoRegionError:
            raise ConfigError(f"executor {settings.name!r} needs an AWS region: set its "
                              "'region' option or AWS_DEFAULT_REGION") from None  # fmt: skip
        self.settings = settings
        self._definitions: dict[JobShape, str | JobDefinitionError] = {}
        self._definitions_lock = threading.Lock()

    def _call(self, client: Any, method: str, action: str, resource: str, **kwargs: Any) -> Any:
        try:
            return getattr(client, method)(**kwargs)
        except Exception as error:
            raise translate(error, action, resource) from None

    def check_queue(self, queue: str) -> None:
        """Fail unless the job queue exists and is enabled."""
        where = f"AWS Batch job queue {queue!r}"
        found = self._call(self.batch, "describe_job_queues", "describe", where, jobQueues=[queue])
        queues = found.get("jobQueues", [])
        if not queues:
            raise JobQueueNotFoundError(f"{where} does not exist in {self.batch.meta.region_name}")
        if queues[0].get("state") != "ENABLED":
            raise JobQueueNotFoundError(f"{where} is {queues[0].get('state')}, not ENABLED")

    def definition_arn(self, shape: JobShape) -> str:
        """The job definition for a shape: an active one with the shape's name, else a newly
        registered one. Cached, rejections too: one lookup per shape and executor."""
        with self._definitions_lock:
            if shape not in self._definitions:
                try:
                    self._definitions[shape] = self._find_or_register(shape)
                except JobDefinitionError as error:
                    self._definitions[shape] = error
            found = self._definitions[shape]
        if isinstance(found, JobDefinitionError):
            raise found
        return found

    def _find_or_register(self, shape: JobShape) -> str:
        name = shape.definition_name(self.settings.prefix)
        where = f"AWS Batch job definition {name!r} (image {shape.image})"
        found = self._call(self.batch, "describe_job_definitions", "describe", where,
                           jobDefinitionName=name, status="ACTIVE")  # fmt: skip
        existing = found.get("jobDefinitions", [])
        if existing:
            return max(existing, key=lambda item: item["revision"])["jobDefinitionArn"]
        try:
            registered = self.batch.register_job_definition(
                jobDefinitionName=name,
                type="container",
                containerProperties=shape.container_properties(),
                tags={"kredun:image": shape.image},
            )
        except Exception as error:
            code, message = error_code(error)
            if code in ("ClientException", "ValidationException"):  # the definition's fault
                raise JobDefinitionError(f"{where} was rejected: {message}") from None
            raise translate(error, "register", where) from None
        return registered["jobDefinitionArn"]

    def submit(self, where: str, **request: Any) -> str:
        return self._call(self.batch, "submit_job", "submit", where, **request)["jobId"]

    def describe(self, job_ids: list[str]) -> list[dict[str, Any]]:
        """Descriptions of the jobs (at most DESCRIBE_LIMIT ids per call)."""
        described: list[dict[str, Any]] = []
        for start in range(0, len(job_ids), DESCRIBE_LIMIT):
            chunk = job_ids[start : start + DESCRIBE_LIMIT]
            where = f"{len(chunk)} AWS Batch job(s) ({chunk[0]}, ...)"
            described += self._call(self.batch, "describe_jobs", "describe", where,
                                    jobs=chunk)["jobs"]  # fmt: skip
        return described

    def _list(self, where: str, **request: Any) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call(self.batch, "list_jobs", "list jobs of", where, **request)
            yield from page.get("jobSummaryList", [])
            if not page.get("nextToken"):
                return
            request["nextToken"] = page["nextToken"]

    def active_jobs(self, queue: str, name_prefix: str) -> list[str]:
        """Ids of the queue's active jobs (array parents, not children) named `name_prefix*`."""
        ids: list[str] = []
        for status in ACTIVE_STATUSES:
            for summary in self._list(f"AWS Batch job queue {queue!r}", jobQueue=queue,
                                      jobStatus=status):  # fmt: skip
                # Batch lists array children only by arrayJobId; moto lists them here too.
                if summary["jobName"].startswith(name_prefix) and ":" not in summary["jobId"]:
                    ids.append(summary["jobId"])
        return ids

    def children(self, parent_id: str, status: str) -> list[str]:
        """Ids of the array job's children in `status`."""
        where = f"AWS Batch array job {parent_id}"
        return [item["jobId"] for item in self._list(where, arrayJobId=parent_id,
                                                     jobStatus=status)]  # fmt: skip

    def terminate(self, job_id: str, reason: str) -> None:
        self._call(self.batch, "terminate_job", "terminate", f"AWS Batch job {job_id}",
                   jobId=job_id, reason=reason)  # fmt: skip

    def log_lines(self, stream: str, tail: int | None = None) -> list[str]:
        """A job's CloudWatch log lines, all or the last `tail`; none if there is no such
        stream (yet)."""
        if tail is not None:
            return self._log_page(stream, startFromHead=False, limit=tail)[0]
        lines, token = self._log_page(stream, startFromHead=True)
        while token:
            page, next_token = self._log_page(stream, startFromHead=True, nextToken=token)
            lines += page
            token = next_token if page and next_token != token else None
        return lines

    def _log_page(self, stream: str, **request: Any) -> tuple[list[str], str | None]:
        group = self.settings.log_group
        try:
            page = self.logs.get_log_events(logGroupName=group, logStreamName=stream, **request)
        except Exception as error:
            if error_code(error)[0] == "ResourceNotFoundException":
                return [], None
            where = f"CloudWatch log stream {stream!r} in {group}"
            raise translate(error, "read", where) from None
        return [event["message"] for event in page["events"]], page.get("nextForwardToken")


def check_bucket(s3_client: Any, bucket: str, store_uri: str) -> None:
    """Fail unless the value store's bucket exists and these credentials may use it."""
    where = f"S3 bucket {bucket!r} of value store {store_uri}"
    try:
        s3_client.head_bucket(Bucket=bucket)
    except Exception as error:
        if error_code(error)[0] in ("404", "NoSuchBucket"):
            raise BucketNotFoundError(f"{where} does not exist") from None
        raise translate(error, "use", where) from None
