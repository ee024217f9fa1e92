"""The `k8s` executor: one Pod per job, watched through the shared Pod watch.

Each job attempt gets a Pod whose name is derived from its Execution and eval hash, so
creating a Pod that already exists (409) means an earlier operator launched it: the
executor adopts it and never launches a duplicate, and a Pod that already succeeded
reports success at once. The Pod runs `kredun worker`, which records the result in the
shared stores; the scheduler reads it from there (`ReferencedValues`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kredun.errors import ConfigError, ExecutorError, StoreError
from kredun.executors import JobOutcome, ReportOutcome
from kredun.executors.remote import RemoteExecutor
from kredun.hashing import hash_bytes
from kredun.job import Job

from .context import ExecutionContext, Runtime
from .errors import KubeApiError, PodFailedError
from .kube import pods_path
from .podspec import CONTAINER, execution_selector, job_pod, pod_name
from .podwatch import MISSING

logger = logging.getLogger(__name__)

SPEC_INLINE_LIMIT = 32 * 1024  # larger job specs go to the value store (--spec-hash)
LOG_TAIL_LINES = 40
# Waiting reasons of a container that will not start without someone changing something.
STUCK_REASONS = ("ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


class PodExecutor(RemoteExecutor):
    """Options: `context`, the `ExecutionContext` of the Execution the jobs belong to."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        context = options.get("context")
        if not isinstance(context, ExecutionContext):
            raise ConfigError(
                "the k8s executor runs inside the kredun operator; send workflows to the "
                "cluster with kredun.submit() or an Execution resource"
            )
        self.context = context
        self._jobs: set[PodJob] = set()
        self._lock = threading.Lock()

    def launch(self, job: Job, spec_json: str, report: ReportOutcome) -> None:
        context = self.context
        if context.stop_mode is not None:
            return  # the run is ending; nobody waits for this job any more
        if job.attempt:
            retries = job.task.get_option("retries", 0) or 0
            context.events.warning(
                "JobRetry",
                f"retrying {job.task.fullname} (attempt {job.attempt + 1} of {retries + 1})",
            )
        pod_job = PodJob(self, job, spec_json, report)
        with self._lock:
            self._jobs.add(pod_job)
        context.slots.start(pod_job.start)

    def released(self, pod_job: PodJob) -> None:
        """A job ended: free its slot."""
        with self._lock:
            self._jobs.discard(pod_job)
        self.context.slots.release()

    def shutdown(self) -> None:
        """Forget the jobs; on cancellation or deletion, also delete their running Pods.
        Otherwise (the operator stops or hands over) the Pods keep running, to be adopted."""
        with self._lock:
            jobs, self._jobs = self._jobs, set()
        for pod_job in jobs:
            pod_job.abandon()
        if self.context.deletes_pods:
            delete_running_pods(self.context)


def delete_running_pods(context: ExecutionContext) -> None:
    """Delete the Execution's Pods that have not finished (finished ones keep their logs
    until the Execution is deleted and they are garbage-collected with it)."""
    kube, template = context.runtime.kube, context.template
    try:
        listing = kube.request(
            "GET",
            pods_path(template.namespace),
            query={"labelSelector": execution_selector(template.execution)},
        )
    except KubeApiError as error:
        logger.warning("cannot list the pods of %s: %s", template.execution, error)
        return
    for pod in listing.get("items") or []:
        meta = pod["metadata"]
        owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if template.execution_uid in owners and not finished and not meta.get("deletionTimestamp"):
            _delete_pod(context, meta["name"])


def _delete_pod(context: ExecutionContext, name: str) -> None:
    try:
        context.runtime.kube.request("DELETE", pods_path(context.template.namespace, name))
    except KubeApiError as error:
        if error.status != 404:
            logger.warning("cannot delete pod %s: %s", name, error)


class PodJob:
    """One attempt of one job as a Pod: create or adopt it, follow it, report once."""

    def __init__(
        self, executor: PodExecutor, job: Job, spec_json: str, report: ReportOutcome
    ) -> None:
        self.executor = executor
        self.context = executor.context
        self.job = job
        self.spec_json = spec_json
        self.report = report
        template = self.context.template
        self.namespace = template.namespace
        self.name = pod_name(template.execution, job.eval_hash, job.attempt)
        self._submitted = time.monotonic()
        self._created = False
        self._done = False
        self._lock = threading.Lock()

    @property
    def _runtime(self) -> Runtime:
        return self.context.runtime

    def start(self) -> None:
        # Listen first: events for the Pod may arrive while it is being created.
        self._runtime.pods.register(self.namespace, self.name, self._on_event)
        self._runtime.pool.submit(self._create)

    def abandon(self) -> None:
        """Stop following the Pod without reporting anything."""
        self._claim()
        self._runtime.pods.unregister(self.namespace, self.name, self._on_event)

    def _claim(self) -> bool:
        """True for the one caller that gets to end this job."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    # -- creating ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        if len(self.spec_json) <= SPEC_INLINE_LIMIT:
            return ["kredun", "worker", "--spec-json", self.spec_json]
        data = self.spec_json.encode()
        spec_hash = hash_bytes(data)
        try:
            self._runtime.value_store.put(spec_hash, data)
        except OSError as error:
            raise StoreError(f"cannot store the job spec of {self.name}: {error}") from None
        return ["kredun", "worker", "--spec-hash", spec_hash]

    def _create(self) -> None:
        try:
            task = self.job.task
            manifest = job_pod(
                self.context.template,
                name=self.name,
                task_name=task.fullname,
                eval_hash=self.job.eval_hash,
                job_id=self.job.id,
                options=task.option_values,
                command=self._command(),
            )
            pod = self._create_or_adopt(manifest)
        except (ExecutorError, StoreError) as error:
            self._end(JobOutcome(self.job, error=error))
            return
        except KubeApiError as error:  # refused for good, e.g. invalid or forbidden
            self._end_failed(f"cannot create pod {self.name}: {error.message}")
            return
        if pod is None:
            return  # the run stopped meanwhile
        metrics = self._runtime.metrics
        metrics.pod_create_seconds.observe(time.monotonic() - self._submitted)
        metrics.jobs.labels(self.executor.name, "started").inc()
        with self._lock:
            self._created = True
        if self.context.deletes_pods:
            _delete_pod(self.context, self.name)  # cancelled while we were creating it
            return
        self._on_event("ADDED", pod)

    def _create_or_adopt(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """The created Pod, or the one an earlier operator created; None if the run stops.
        While the API is unavailable, keeps trying: Executions wait out an API outage."""
        kube = self._runtime.kube
        delay = 0.2
        while self.context.stop_mode is None:
            try:
                try:
                    return kube.request("POST", pods_path(self.namespace), body=manifest)
                except KubeApiError as error:
                    if error.status != 409:
                        raise
                adopted = self._adopt()
                if adopted is not None:
                    return adopted
            except KubeApiError as error:
                if not error.transient:
                    raise
            self.context.wait_for_stop(delay)
            delay = min(delay * 2, 5.0)
        return None

    def _adopt(self) -> dict[str, Any] | None:
        """The existing Pod of this name if this Execution owns it. A Pod of an earlier,
        deleted Execution of the same name is deleted (None: create again after it)."""
        kube = self._runtime.kube
        try:
            pod = kube.request("GET", pods_path(self.namespace, self.name))
        except KubeApiError as error:
            if error.status == 404:
                return None  # gone meanwhile: create it again
            raise
        if self._owns(pod):
            logger.info("adopting pod %s/%s", self.namespace, self.name)
            return pod
        if not pod["metadata"].get("deletionTimestamp"):
            _delete_pod(self.context, self.name)
        return None

    def _owns(self, pod: dict[str, Any]) -> bool:
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        return any(ref.get("uid") == self.context.template.execution_uid for ref in owners)

    # -- following --------------------------------------------------------------------------

    def _on_event(self, event_type: str, pod: dict[str, Any]) -> None:
        """Called from the watch thread: decide quickly, do API calls in the pool."""
        if self._done or self.context.stop_mode is not None:
            return
        if event_type == MISSING:
            if self._created:
                self._runtime.pool.submit(self._recheck)
            return
        if not self._owns(pod):
            return  # a Pod of an earlier Execution by the same name, being replaced
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase == "Succeeded":
            self._end(JobOutcome(self.job))
        elif phase == "Failed":
            if self._claim():
                self._runtime.pool.submit(self._report_failure, pod)
        elif event_type == "DELETED":
            self._end_failed(f"pod {self.name} was deleted before it finished")
        elif _stuck_reason(status) and self._claim():
            self._runtime.pool.submit(self._report_stuck, pod)

    def _recheck(self) -> None:
        """After a re-list without our Pod: it is gone, or the list was older than it."""
        try:
            pod = self._runtime.kube.request("GET", pods_path(self.namespace, self.name))
        except KubeApiError as error:
            if error.status == 404:
                self._end_failed(f"pod {self.name} disappeared before it finished")
            return
        self._on_event("MODIFIED", pod)

    def _report_failure(self, pod: dict[str, Any]) -> None:
        tail = self._log_tail()
        terminated = _terminated_state(pod)
        code = terminated.get("exitCode")
        reason = terminated.get("reason") or (pod.get("status") or {}).get("reason") or ""
        last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        if reason == "OOMKilled":
            message = (
                f"pod {self.name} ran out of memory (OOMKilled, exit {code}): "
                "raise the task's memory option"
            )
        elif reason == "DeadlineExceeded":
            message = f"pod {self.name} ran longer than the task's timeout"
        else:
            detail = last_line or terminated.get("message") or reason or "no output"
            message = f"pod {self.name} failed (exit {code}): {detail}"
        self._fail(message, tail)

    def _report_stuck(self, pod: dict[str, Any]) -> None:
        waiting = _stuck_reason(pod.get("status") or {}) or {}
        image = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image")
        message = (
            f"pod {self.name} cannot start: {waiting.get('reason')} for image {image!r}: "
            f"{waiting.get('message', '')} (check spec.image and the image's registry)"
        )
        _delete_pod(self.context, self.name)
        self._fail(message, "")

    def _log_tail(self) -> str:
        try:
            return self._runtime.kube.text(
                pods_path(self.namespace, self.name, "log"),
                {"container": CONTAINER, "tailLines": str(LOG_TAIL_LINES)},
            )
        except KubeApiError as error:
            return f"(no log: {error.message})"

    def _end_failed(self, message: str) -> None:
        if self._claim():
            self._fail(message, "")

    def _fail(self, message: str, tail: str) -> None:
        """Report a failure (the caller has claimed the job)."""
        error = PodFailedError(message, task=self.job.task.fullname, pod=self.name, log_tail=tail)
        self._deliver(JobOutcome(self.job, error=error, traceback=tail or None))

    def _end(self, outcome: JobOutcome) -> None:
        if self._claim():
            self._deliver(outcome)

    def _deliver(self, outcome: JobOutcome) -> None:
        self._runtime.pods.unregister(self.namespace, self.name, self._on_event)
        self.executor.released(self)
        if self.context.stop_mode is not None:
            return  # the run is ending; nobody waits for this job any more
        event = "failed" if outcome.error is not None else "succeeded"
        self._runtime.metrics.jobs.labels(self.executor.name, event).inc()
        if outcome.error is not None:
            self.context.events.warning("JobFailed", f"{self.job.task.fullname}: {outcome.error}")
        self.context.delivered.append(time.monotonic())
        self.executor.finished(self.job, self.report, outcome.error, outcome.traceback)


def _terminated_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def _stuck_reason(status: dict[str, Any]) -> dict[str, Any] | None:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return waiting
    return None
