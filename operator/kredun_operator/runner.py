"""Runs one Execution: the engine's scheduler over its plan, in a thread of its own.

The run is the same `Scheduler.run()` a laptop uses, with `ReferencedValues` (the operator
holds references, never values) and the Pod executor. Its execution id derives from the
Execution's uid, so a restarted operator continues the same execution: finished jobs replay
from the provenance store, running Pods are adopted by name.

While the provenance database or the value store cannot be reached, the run waits and
retries with backoff, showing `StoreAvailable=False`; it fails only when the outage lasts
longer than `[operator] store_outage_deadline`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kredun.builtins import call_by_name
from kredun.domains import ReferencedValues, fetch_plan
from kredun.errors import (
    CancelledError,
    DatabaseURIError,
    PlanError,
    StoreError,
    ValueNotFoundError,
)
from kredun.hashing import hash_bytes
from kredun.refs import Ref
from kredun.resource import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED
from kredun.scheduler import Scheduler

from .context import ExecutionContext, Runtime, StopMode
from .errors import AnnotationError, PodFailedError, SpecError
from .events import EventRecorder
from .limits import check_spec
from .pods import delete_running_pods
from .podspec import pod_template, policy_problem
from .preview import result_preview
from .spec import ExecutionSpec, build_plan, parse_spec
from .status import StatusWriter, job_counts, now_timestamp, tail
from .tags import execution_tags

logger = logging.getLogger(__name__)

REF_INLINE_LIMIT = 16 * 1024  # larger result references go to the value store (refHash)
STORE_CHECK_SECONDS = 5.0  # how often a run that touched no store checks the database
PROBE_HASH = "0" * 40  # no task has it


def execution_id_for(uid: str) -> str:
    """The provenance store's id of an Execution: stable for its whole life."""
    try:
        return str(uuid.UUID(uid))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kredun.dev/executions/{uid}"))


def is_outage(error: BaseException) -> bool:
    """A store that cannot be reached: wait and retry, do not fail the Execution."""
    if isinstance(error, ValueNotFoundError):
        return False  # the store answered: the value is not there
    return isinstance(error, StoreError | DatabaseURIError | OSError)


class ExecutionRunner:
    """One Execution's run. `body` is the object as kopf keeps it current; the runner reads
    `spec.cancel` from it while running."""

    def __init__(
        self, runtime: Runtime, body: Mapping[str, Any], on_exit: Callable[[], object]
    ) -> None:
        meta = body["metadata"]
        self.runtime = runtime
        self.body = body
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.execution_id = execution_id_for(self.uid)
        self._on_exit = on_exit
        self._context: ExecutionContext | None = None
        self._stop: StopMode | None = None
        self._cached_seen = 0
        self._executor = "k8s"  # the default executor of the spec, labelling cached jobs
        self._outage_since: float | None = None  # when the stores became unreachable
        self._scheduler: Scheduler | None = None
        self._store_checked = 0.0
        self.events = EventRecorder(runtime.kube, runtime.pool, self.namespace, self.name, self.uid)
        self.status = StatusWriter(
            runtime.kube,
            self.namespace,
            self.name,
            dict(body.get("status") or {}),
            runtime.settings.status_interval,
        )
        self._thread = threading.Thread(
            target=self._main, name=f"execution {self.namespace}/{self.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, mode: StopMode) -> None:
        """Ask the run to stop (from any thread); it stops within a scheduler tick."""
        self._stop = mode
        if self._context is not None:
            self._context.stop(mode)

    # -- the thread ---------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._run()
        except Exception as error:  # a bug: say so on the Execution rather than hang
            logger.exception("execution %s/%s: operator error", self.namespace, self.name)
            self._end_failed(f"operator error: {type(error).__name__}: {error}", {})
        finally:
            self._on_exit()

    def _run(self) -> None:
        settings = self.runtime.settings
        try:
            check_spec(self.body.get("spec"))
            spec = parse_spec(dict(self.body.get("spec") or {}), settings.jobs.image)
        except SpecError as error:
            self._end_failed(f"invalid spec: {error}", {})
            return
        try:
            tags = execution_tags(self.body.get("metadata") or {})
        except AnnotationError as error:
            self._end_failed(f"invalid metadata: {error}", {})
            return
        scope = settings.tenancy.scope_of(self.namespace)
        template = pod_template(
            self.namespace, self.name, self.uid, spec.fields, settings.jobs, scope
        )
        problem = policy_problem(template, template.image, template.service_account)
        if problem is not None:
            self._end_failed(f"invalid spec: {problem}", {})
            return
        context = self._context = ExecutionContext(
            self.runtime, template, self.events, spec.max_parallel_jobs, scope
        )
        if self._stop is not None:
            context.stop(self._stop)
        if spec.cancel:
            context.stop(StopMode.CANCEL)
        if not self.status.get("phase"):
            self.status.update(phase=PENDING)
        self.status.update(executionId=self.execution_id)
        if not self._admitted(context):
            self._stopped(context)
            return
        try:
            delay = 0.5
            while context.stop_mode is None:
                try:
                    self._reduce(spec, context, tags)
                    return
                except CancelledError:
                    break
                except Exception as error:
                    if context.stop_mode is not None:
                        break
                    if not is_outage(error):
                        self._failed(error, spec)
                        return
                    if self._outage_since is None:
                        self._outage_since = time.monotonic()
                    waited = time.monotonic() - self._outage_since
                    if waited > settings.store_outage_deadline:
                        self._end_failed(
                            f"the provenance database or value store was unreachable for "
                            f"{waited:.0f}s, past [operator] store_outage_deadline "
                            f"({settings.store_outage_deadline:g}s): {error}",
                            {"error": str(error)},
                        )
                        return
                    self._store_unavailable(error, delay)
                    context.wait_for_stop(delay)
                    delay = min(delay * 2, settings.store_retry_max)
            self._stopped(context)
        finally:
            self.runtime.executions.leave()

    def _admitted(self, context: ExecutionContext) -> bool:
        """Wait, Pending, while the operator runs its most Executions at once; False if the
        run was stopped meanwhile."""
        admission = self.runtime.executions
        shown = 0
        while (place := admission.enter(self)) != 0:
            if place != shown:
                shown = place
                self.status.condition("Admitted", False, "Queued")
                self.status.update(
                    message=f"queued, number {place} in line: the operator runs at most "
                    f"{admission.limit} Executions at once ([operator] max_running_executions)"
                )
                self.status.flush(force=True)
            if context.wait_for_stop(0.5):
                admission.withdraw(self)
                return False
        if shown:
            self.status.condition("Admitted", True, "Running")
            self.status.update(message="")
        return True

    def _reduce(
        self, spec: ExecutionSpec, context: ExecutionContext, tags: list[tuple[str, str]]
    ) -> None:
        """One attempt at running the Execution to its end; `tags` tag its execution in the
        provenance store when the attempt is the first to record it (a resumed execution
        keeps the tags it has, less any removed with `kredun tag rm`)."""
        scheduler = Scheduler(config=context.scheduler_config(spec.executor))
        self._cached_seen, self._executor = 0, spec.executor
        self._scheduler, self._store_checked = scheduler, time.monotonic()
        try:
            scheduler.store  # noqa: B018 -- an unreachable database shows here, before any work
            plan = build_plan(spec, lambda plan_hash: fetch_plan(scheduler, plan_hash))
            self.status.update(phase=RUNNING)
            if not self.status.get("startTime"):
                self.status.update(startTime=now_timestamp())
            self.status.condition("StoreAvailable", True, "Reachable")
            self._outage_since = None
            self.status.update(message="")
            self.status.flush(force=True)
            result = scheduler.run(
                plan,
                values=ReferencedValues,
                cache=spec.cache,
                label=f"{self.namespace}/{self.name}",
                progress=self._progress,
                execution_id=self.execution_id,
                stop=context.run_ended,
                tags=tags,
            )
            self._succeeded(result, scheduler)
        finally:
            scheduler.close()

    def _progress(self, counts: dict[str, list[int]]) -> None:
        """Called by the scheduler after every tick: status, metrics, and spec.cancel (which
        sets the run's stop token)."""
        context = self._context
        assert context is not None
        metrics = self.runtime.metrics
        now = time.monotonic()
        while context.delivered:
            metrics.reduction_seconds.observe(now - context.delivered.popleft())
        jobs = job_counts(counts)
        if jobs["cached"] > self._cached_seen:
            metrics.jobs.labels(self._executor, "cached").inc(jobs["cached"] - self._cached_seen)
            self._cached_seen = jobs["cached"]
        # Jobs ready to run but waiting for a slot (spec.maxParallelJobs, or the namespace's
        # [jobs] max_running_per_namespace).
        jobs["queued"] = context.queued_jobs
        self.status.update(progress=f"{jobs['done']}/{jobs['total']}", jobs=jobs)
        self.status.flush()
        if now - self._store_checked > STORE_CHECK_SECONDS and self._scheduler is not None:
            # While it only waits for Pods the run touches no store: ask the database now
            # and then (one primary-key lookup), so an outage pauses the run
            # (StoreAvailable=False) when it begins, not when the run next writes.
            self._store_checked = now
            self._scheduler.store.get_task(PROBE_HASH)
        if context.stop_mode is None and (self.body.get("spec") or {}).get("cancel") is True:
            context.stop(StopMode.CANCEL)

    # -- endings ------------------------------------------------------------------------------

    def _succeeded(self, result: Ref, scheduler: Scheduler) -> None:
        try:
            preview = result_preview(result, scheduler.store.value_records)
        except StoreError as error:  # the run is done; a preview is not worth failing it
            preview = f"<{type(error).__name__}: preview unavailable>"
        found: dict[str, Any] = {"preview": preview, "hash": result.hash}
        ref = json.dumps(result.to_json(), separators=(",", ":"))
        if len(ref) <= REF_INLINE_LIMIT:
            found["ref"] = result.to_json()
        else:
            data = ref.encode()
            found["refHash"] = hash_bytes(data)
            context = self._context
            assert context is not None
            context.value_store.put(found["refHash"], data)
        jobs = self.status.get("jobs") or {}
        message = f"{jobs.get('done', 0)} jobs done, {jobs.get('cached', 0)} from the cache"
        self.status.update(
            phase=SUCCEEDED, completionTime=now_timestamp(), result=found, message=message
        )
        self._write_final()
        self.events.normal("Succeeded", f"{message}; result: {preview}")

    def _failed(self, error: BaseException, spec: ExecutionSpec) -> None:
        if isinstance(error, PodFailedError):
            failure = {"task": error.task, "error": str(error), "traceback": tail(error.log_tail)}
            if error.task == call_by_name.fullname and spec.task:
                message = f"cannot run spec.task {spec.task} in image {spec.image}: {error}"
            else:
                message = f"task {error.task} failed: {error}"
        elif isinstance(error, PlanError):
            failure = {"error": str(error)}
            message = f"invalid plan: {error} (resubmit it, e.g. with kredun.submit())"
        else:
            message = f"{type(error).__name__}: {error}"
            notes = "\n".join(getattr(error, "__notes__", []))
            failure = {"error": message, "traceback": tail(notes)}
        self._end_failed(message, failure)

    def _end_failed(self, message: str, failure: dict[str, str]) -> None:
        self.status.update(phase=FAILED, completionTime=now_timestamp(), message=message)
        if failure:
            self.status.update(failure=failure)
        self._write_final()
        self.events.warning("Failed", message)

    def _stopped(self, context: ExecutionContext) -> None:
        """The run stopped before its end: say why, and clean up if it was cancelled."""
        if context.deletes_pods:
            delete_running_pods(context)
        if context.stop_mode is StopMode.CANCEL:
            message = "cancelled (spec.cancel is true); running jobs were stopped"
            self.status.update(phase=CANCELLED, completionTime=now_timestamp(), message=message)
            self._write_final()
            self.events.normal("Cancelled", message)

    def _store_unavailable(self, error: BaseException, delay: float) -> None:
        logger.warning("execution %s/%s waits for the stores: %s", self.namespace, self.name, error)
        self.status.condition("StoreAvailable", False, "Unreachable", str(error))
        self.status.update(
            message=f"waiting for the provenance database or value store: {error} "
            f"(retrying in {delay:.0f}s)"
        )
        self.status.flush(force=True)

    def _write_final(self) -> None:
        """The final status must land: retry while the API refuses (a while, not forever:
        an Execution left unfinished is finished again by the next operator)."""
        for delay in (0.5, 1, 2, 4, 8, 15):
            if self.status.flush(force=True):
                return
            time.sleep(delay)
        logger.error("gave up writing the final status of %s/%s", self.namespace, self.name)
