"""The `k8s` executor: one Pod per job, watched through the shared Pod watch.

Each job attempt gets a Pod whose name is derived from its Execution and eval hash, so
creating a Pod that already exists (409) means an earlier operator launched it: the
executor adopts it and never launches a duplicate, and a Pod that already succeeded
reports success at once. The Pod runs `kredun worker`, which stores the result blob in the
value store of the Execution's cache scope and writes its outcome (kredun.outcome) to the
container's termination message; the executor reads that from the ended Pod's status,
checks the blob against it, and the scheduler records the result (`ReferencedValues`).

Fallback: a job whose task option (or executor option) `fallback` names another configured
executor, e.g. `"batch"`, leaves Kubernetes for it when its Pod stays Unschedulable for
`fallback_after` seconds (default 120), or at once, before any Pod is created, when its
resource request exceeds the executor's `max_cpus`/`max_memory`/`max_gpus`. The Pod is
deleted, the job is submitted to the fallback executor with the same report callback and
the resources its Pod asked for (task options over the Execution's and the operator's
defaults, as `kredun.resources` reads them), its outcome names the fallback executor (which
the scheduler records in its provenance row), and a `JobFallback` Event says why. Without a
fallback, a Pod Unschedulable for the operator's `[jobs] unschedulable_after` seconds
(default 600) fails its job with the scheduler's reason; so does a Pod whose container
cannot be created (image pull errors, an invalid image name, a Secret its environment names
missing).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

from kredun.errors import ConfigError, ExecutorError, OutcomeError, StoreError, TaskOptionError
from kredun.executors import JobOutcome, ReportOutcome
from kredun.executors.remote import RemoteExecutor
from kredun.hashing import hash_bytes
from kredun.job import Job
from kredun.options import check_task_options, retry_limit
from kredun.outcome import Outcome
from kredun.outcome import parse as parse_outcome
from kredun.resource import execution_selector
from kredun.resources import Resources

from .context import ExecutionContext, Runtime
from .errors import KubeApiError, PodFailedError
from .kube import pods_path
from .podspec import CONTAINER, job_pod, pod_name
from .podwatch import MISSING

logger = logging.getLogger(__name__)

SPEC_INLINE_LIMIT = 32 * 1024  # larger job specs go to the value store (--spec-hash)
LOG_TAIL_LINES = 40
# Waiting reasons of a container that will not start without someone changing something
# (an image name, a registry, a Secret or ConfigMap the Pod's env names).
STUCK_REASONS = (
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
    "CreateContainerConfigError",
)  # fmt: skip
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
DEFAULT_FALLBACK_AFTER = 120.0  # seconds a Pod may stay Unschedulable before falling back
MAXIMUM_OPTIONS = ("max_cpus", "max_memory", "max_gpus")


class PodExecutor(RemoteExecutor):
    """Options: `context`, the `ExecutionContext` of the Execution the jobs belong to;
    `fallback` (an executor name) and `fallback_after` (seconds), which a task's options of
    the same names override; `max_cpus`, `max_memory`, `max_gpus`: the most one Pod of the
    cluster can get (a job requesting more goes to its fallback, or fails, at once)."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        super().__init__(name, options)
        context = options.get("context")
        if not isinstance(context, ExecutionContext):
            raise ConfigError(
                "the k8s executor runs inside the kredun operator; send workflows to the "
                "cluster with kredun.submit() or an Execution resource"
            )
        self.context = context
        self.maximum = _maximum(name, options)
        _fallback_after(name, options.get("fallback_after", DEFAULT_FALLBACK_AFTER))
        self._jobs: set[PodJob] = set()
        self._lock = threading.Lock()

    def fallback_of(self, job: Job) -> tuple[str, RemoteExecutor, float] | None:
        """(name, executor, seconds) of the job's fallback executor, if it has one. Called
        on the scheduler's thread, which alone may create executors."""
        name = job.task.get_option("fallback") or self.options.get("fallback")
        if not name:
            return None
        if not isinstance(name, str):
            raise ConfigError(f"task {job.task.fullname}: fallback must name an executor")
        executor = self.host.executor(name)
        if isinstance(executor, PodExecutor) or not isinstance(executor, RemoteExecutor):
            raise ConfigError(
                f"task {job.task.fullname}: fallback {name!r} must run jobs outside the "
                "cluster; name another executor, e.g. a [executors.batch] of type 'batch'"
            )
        after = job.task.get_option("fallback_after")
        if after is None:
            after = self.options.get("fallback_after", DEFAULT_FALLBACK_AFTER)
        return name, executor, _fallback_after(job.task.fullname, after)

    def launch(self, job: Job, spec_json: str, report: ReportOutcome, resources: Resources) -> None:
        context = self.context
        if context.stop_mode is not None:
            return  # the run is ending; nobody waits for this job any more
        if job.attempt:
            retries = retry_limit(job.task.get_option("retries"), self.host.max_retries)
            context.events.warning(
                "JobRetry",
                f"retrying {job.task.fullname} (attempt {job.attempt + 1} of {retries + 1})",
            )
        try:
            fallback = self.fallback_of(job)
        except ConfigError as error:
            report(JobOutcome(job, error=error))
            return
        resources = resources.over(context.template.resources)
        pod_job = PodJob(self, job, spec_json, report, resources, fallback)
        with self._lock:
            self._jobs.add(pod_job)
        context.queue(+1)
        # A slot of the Execution (spec.maxParallelJobs), then one of its namespace.
        context.slots.start(lambda: context.namespace_slots.start(pod_job.start))

    def released(self, pod_job: PodJob) -> None:
        """A job ended: free its slots."""
        with self._lock:
            self._jobs.discard(pod_job)
        pod_job.free_slots()

    def shutdown(self) -> None:
        """Forget the jobs; on cancellation or deletion, also delete their running Pods.
        Otherwise (the operator stops or hands over) the Pods keep running, to be adopted."""
        with self._lock:
            jobs, self._jobs = self._jobs, set()
        for pod_job in jobs:
            pod_job.abandon()
        if self.context.deletes_pods:
            delete_running_pods(self.context)


def _fallback_after(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: fallback_after must be a number of seconds, not {value!r}")
    return float(value)


def _maximum(name: str, options: dict[str, Any]) -> Resources:
    """The executor's `max_cpus`, `max_memory`, `max_gpus` options, read like `cpus`, ..."""
    try:
        return Resources.parse(
            {option[4:]: options[option] for option in MAXIMUM_OPTIONS if option in options},
            "max_",
        )
    except ConfigError as error:
        raise ConfigError(f"executor {name!r}: {error}") from None


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
        self,
        executor: PodExecutor,
        job: Job,
        spec_json: str,
        report: ReportOutcome,
        resources: Resources,
        fallback: tuple[str, RemoteExecutor, float] | None = None,
    ) -> None:
        self.executor = executor
        self.fallback = fallback
        self.resources = resources  # what the Pod asks for; a fallback asks the same
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
        self._slotted = False  # holds a slot of its Execution and one of its namespace
        self._lock = threading.Lock()
        self._unschedulable_timer: threading.Timer | None = None

    @property
    def _runtime(self) -> Runtime:
        return self.context.runtime

    def start(self) -> None:
        """Called once the job holds its slots."""
        self.context.queue(-1)
        with self._lock:
            self._slotted = True
        if self._done or self.context.stop_mode is not None:
            self.free_slots()  # abandoned while it waited
            return
        # Listen first: events for the Pod may arrive while it is being created.
        self._runtime.pods.register(self.namespace, self.name, self._on_event)
        self._runtime.pool.submit(self._create)

    def free_slots(self) -> None:
        """Give back the slots this job holds (once), letting a waiting job start."""
        with self._lock:
            slotted, self._slotted = self._slotted, False
        if slotted:
            self.context.namespace_slots.release()
            self.context.slots.release()

    def abandon(self) -> None:
        """Stop following the Pod without reporting anything."""
        self._claim()
        self._runtime.pods.unregister(self.namespace, self.name, self._on_event)
        self.free_slots()

    def _claim(self) -> bool:
        """True for the one caller that gets to end this job."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            timer, self._unschedulable_timer = self._unschedulable_timer, None
        if timer is not None:
            timer.cancel()
        return True

    # -- creating ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        if len(self.spec_json) <= SPEC_INLINE_LIMIT:
            return ["kredun", "worker", "--spec-json", self.spec_json]
        data = self.spec_json.encode()
        spec_hash = hash_bytes(data)
        try:
            self.context.value_store.put(spec_hash, data)
        except OSError as error:
            raise StoreError(f"cannot store the job spec of {self.name}: {error}") from None
        return ["kredun", "worker", "--spec-hash", spec_hash]

    def _create(self) -> None:
        try:
            task = self.job.task
            # A plan's options were checked by @task on the author's machine, or never.
            check_task_options(task.option_values, f"task {task.fullname}")
            over = ", ".join(self.resources.exceeding(self.executor.maximum))
            if over:
                if self.fallback is not None:
                    if self._claim():
                        self._fall_back(f"it requests {over}, more than the cluster offers")
                    return
                raise ExecutorError(
                    f"task {task.fullname} requests {over}, more than the cluster offers "
                    "(executor maximum), and has no fallback executor"
                )
            manifest = job_pod(
                self.context.template,
                name=self.name,
                task_name=task.fullname,
                eval_hash=self.job.eval_hash,
                job_id=self.job.id,
                options=task.option_values,
                resources=self.resources,
                command=self._command(),
            )
            pod = self._create_or_adopt(manifest)
        except (ExecutorError, StoreError, TaskOptionError) as error:
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
            if self._claim():
                self._runtime.pool.submit(self._report_success, pod)
        elif phase == "Failed":
            if self._claim():
                self._runtime.pool.submit(self._report_failure, pod)
        elif event_type == "DELETED":
            self._end_failed(f"pod {self.name} was deleted before it finished")
        elif _stuck_reason(status) and self._claim():
            self._runtime.pool.submit(self._report_stuck, pod)
        elif _unschedulable(status):
            self._arm_unschedulable()

    # -- falling back -----------------------------------------------------------------------

    @property
    def _unschedulable_deadline(self) -> float:
        """Seconds an Unschedulable Pod waits: its fallback's `fallback_after`, or without
        a fallback, the operator's `[jobs] unschedulable_after` before the job fails."""
        if self.fallback is not None:
            return self.fallback[2]
        return self._runtime.settings.jobs.unschedulable_after

    def _arm_unschedulable(self) -> None:
        """The Pod is Unschedulable: check again once its deadline has passed."""
        with self._lock:
            if self._done or self._unschedulable_timer is not None:
                return
            timer = threading.Timer(self._unschedulable_deadline, self._deadline_passed)
            timer.daemon = True
            self._unschedulable_timer = timer
        timer.start()

    def _deadline_passed(self) -> None:
        with self._lock:
            self._unschedulable_timer = None
        if self._done or self.context.stop_mode is not None:
            return
        self._runtime.pool.submit(self._check_unschedulable)

    def _check_unschedulable(self) -> None:
        """Fall back, or fail, if the Pod is still Unschedulable (a watch event may be late)."""
        try:
            pod = self._runtime.kube.request("GET", pods_path(self.namespace, self.name))
        except KubeApiError as error:
            if error.status != 404:
                logger.warning("cannot read pod %s: %s", self.name, error)
                self._arm_unschedulable()  # try again later
            return
        status = pod.get("status") or {}
        if not self._owns(pod) or not _unschedulable(status):
            self._on_event("MODIFIED", pod)
            return
        if not self._claim():
            return
        seconds = self._unschedulable_deadline
        if self.fallback is not None:
            self._fall_back(
                f"its pod {self.name} stayed Unschedulable for {seconds:g}s", pod_exists=True
            )
            return
        _delete_pod(self.context, self.name)
        self._fail(
            f"pod {self.name} stayed Unschedulable for {seconds:g}s: "
            f"{_unschedulable_message(status)} (no node fits its resources, nodeSelector or "
            "tolerations; change them, or give the task a fallback executor)",
            "",
        )

    def _fall_back(self, reason: str, pod_exists: bool = False) -> None:
        """Withdraw the job from Kubernetes and submit it to the fallback executor (the
        caller has claimed the job, so no later Pod event reports it)."""
        assert self.fallback is not None
        name, executor, _ = self.fallback
        self._runtime.pods.unregister(self.namespace, self.name, self._on_event)
        if pod_exists or self._created:
            _delete_pod(self.context, self.name)
        self.executor.released(self)
        if self.context.stop_mode is not None:
            return  # the run is ending; nobody waits for this job any more
        task = self.job.task.fullname
        logger.info("job %s (%s) falls back to executor %s: %s", self.job.id[:8], task, name,
                    reason)  # fmt: skip
        self._runtime.metrics.jobs.labels(self.executor.name, "fallback").inc()
        self.context.events.normal(
            "JobFallback", f"{task}: moved from Kubernetes to executor {name!r}: {reason}"
        )
        # The outcome names the executor that ran the job; the scheduler records it.
        report = self.report
        executor.submit(
            self.job, lambda outcome: report(replace(outcome, executor=name)), self.resources
        )

    def _recheck(self) -> None:
        """After a re-list without our Pod: it is gone, or the list was older than it."""
        try:
            pod = self._runtime.kube.request("GET", pods_path(self.namespace, self.name))
        except KubeApiError as error:
            if error.status == 404:
                self._end_failed(f"pod {self.name} disappeared before it finished")
            return
        self._on_event("MODIFIED", pod)

    def _report_success(self, pod: dict[str, Any]) -> None:
        """The Pod succeeded: its outcome is the container's termination message."""
        try:
            outcome = parse_outcome(_terminated_state(pod).get("message") or "")
        except OutcomeError as error:
            self._deliver(JobOutcome(self.job, error=OutcomeError(f"pod {self.name}: {error}")))
            return
        self._deliver(JobOutcome(self.job), outcome)

    def _report_failure(self, pod: dict[str, Any]) -> None:
        tail = self._log_tail()
        terminated = _terminated_state(pod)
        try:
            outcome: Outcome | None = parse_outcome(terminated.get("message") or "")
        except OutcomeError:
            outcome = None  # the job failed before its task ran, or reported nonsense
        raised = outcome.error if outcome is not None else None
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
        elif raised is not None:
            message = f"pod {self.name} failed (exit {code}): {raised.message}"
        else:
            detail = last_line or terminated.get("message") or reason or "no output"
            message = f"pod {self.name} failed (exit {code}): {detail}"
        self._fail(message, tail, outcome)

    def _report_stuck(self, pod: dict[str, Any]) -> None:
        waiting = _stuck_reason(pod.get("status") or {}) or {}
        reason = waiting.get("reason")
        if reason in IMAGE_REASONS:
            image = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("image")
            message = (
                f"pod {self.name} cannot start: {reason} for image {image!r}: "
                f"{waiting.get('message', '')} (check spec.image and the image's registry)"
            )
        else:
            message = (
                f"pod {self.name} cannot start: {reason}: {waiting.get('message', '')} "
                "(a Secret or ConfigMap its environment names is missing in namespace "
                f"{self.namespace})"
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

    def _fail(self, message: str, tail: str, reported: Outcome | None = None) -> None:
        """Report a failure (the caller has claimed the job)."""
        error = PodFailedError(message, task=self.job.task.fullname, pod=self.name, log_tail=tail)
        self._deliver(JobOutcome(self.job, error=error, traceback=tail or None), reported)

    def _end(self, outcome: JobOutcome) -> None:
        if self._claim():
            self._deliver(outcome)

    def _deliver(self, outcome: JobOutcome, reported: Outcome | None = None) -> None:
        """`reported`: what the job's termination message said, if it parsed."""
        self._runtime.pods.unregister(self.namespace, self.name, self._on_event)
        self.executor.released(self)
        if self.context.stop_mode is not None:
            return  # the run is ending; nobody waits for this job any more
        event = "failed" if outcome.error is not None else "succeeded"
        self._runtime.metrics.jobs.labels(self.executor.name, event).inc()
        if outcome.error is not None:
            self.context.events.warning("JobFailed", f"{self.job.task.fullname}: {outcome.error}")
        self.context.delivered.append(time.monotonic())
        self.executor.finished(self.job, self.report, outcome.error, outcome.traceback, reported)


def _terminated_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def _unschedulable(status: dict[str, Any]) -> bool:
    """Whether the scheduler reported the Pending Pod as fitting no node."""
    if status.get("phase") not in (None, "Pending"):
        return False
    return any(
        condition.get("type") == "PodScheduled"
        and condition.get("status") == "False"
        and condition.get("reason") == "Unschedulable"
        for condition in status.get("conditions") or []
    )


def _unschedulable_message(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("message"):
            return str(condition["message"])
    return "Unschedulable"


def _stuck_reason(status: dict[str, Any]) -> dict[str, Any] | None:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return waiting
    return None
