"""Submitting workflows to a cluster: `submit()` and the `ExecutionHandle` it returns.

`submit()` builds the plan of an expression here, on the trusted side (see the trust boundary
in docs/architecture.md): task code and arguments are pickled into the value store the cluster
shares, and the JSON plan goes there too, keyed by its hash. The `Execution` it then creates
holds only that hash (and the plan itself when it is small); the operator reduces the plan
without unpickling anything, and job Pods load the task code. Results come back the same way:
`status.result.ref` names the value, and `ExecutionHandle.result()` unpickles it here.

The Kubernetes client is imported only inside the functions that talk to the cluster, so
importing kredun stays fast.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from . import graph
from .config import CONFIG_DIR, Config, config_from_dict, project_config
from .deserialize import resolve
from .errors import CancelledError, ConfigError, KredunError, TagError, ValueNotFoundError
from .graph import contains_expression
from .hashing import hash_bytes
from .plan import dumps_plan, encode_plan
from .refs import Ref, ValueRef, ref_from_json
from .resource import (
    ANNOTATION_EXPRESSION,
    ANNOTATION_TAGS,
    API_VERSION,
    CANCELLED,
    FAILED,
    GROUP,
    KIND,
    LABEL_EVAL_HASH,
    LABEL_MANAGED_BY,
    LABEL_TASK,
    MANAGED_BY,
    MAX_EXECUTION_TAGS,
    PLURAL,
    TAGS_ANNOTATION_LIMIT,
    TERMINAL_PHASES,
    VERSION,
    execution_selector,
    label_value,
    tag_labels,
)
from .resources import Resources
from .serialize import local_code_by_value, preview, ship
from .stores import Stores
from .tags import check_tags
from .task import definitions_near

if TYPE_CHECKING:
    import kubernetes.client

    from .valuestore import ValueStore

PLAN_INLINE_LIMIT = 16 * 1024  # plans up to this many bytes also travel inside the Execution
WATCH_SECONDS = 300  # length of one watch request while waiting without a deadline

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_PREFIX_LIMIT = 40  # generateName adds 5 characters; Pod names add the eval hash


# -- errors ---------------------------------------------------------------------------------


class ClusterError(KredunError):
    """The Kubernetes API could not be reached, or it refused a request."""


class KubeConfigError(ClusterError):
    """No usable kubeconfig (or in-cluster service account)."""


class ClusterUnreachableError(ClusterError):
    """The Kubernetes API server did not answer."""


class CRDNotInstalledError(ClusterError):
    """The cluster does not serve the Execution resource."""


class ExecutionNotFoundError(ClusterError):
    """No Execution by that name in that namespace."""


class ExecutionExistsError(ClusterError):
    """An Execution by that name already exists."""


class ForbiddenError(ClusterError):
    """The credentials are rejected, or lack the permission (RBAC) for a request."""


class InvalidExecutionError(ClusterError):
    """The API server (or a check before sending) rejected the Execution as invalid."""


class ExecutionDeletedError(ClusterError):
    """The Execution was deleted while being waited on."""


class JobNotFoundError(ClusterError):
    """No job Pod of the Execution matches."""


class KubernetesAPIError(ClusterError):
    """Any other error answer from the Kubernetes API."""


class ValueStoreNotSharedError(ConfigError):
    """The configured value store is one the cluster cannot read."""


class MissingImageError(ConfigError):
    """No job image was given or configured."""


class ExecutionFailedError(KredunError):
    """The Execution ended Failed; `task`, `error` and `traceback` say where and why."""

    def __init__(self, name: str, status: dict[str, Any]) -> None:
        failure = status.get("failure") or {}
        self.execution = name
        self.status = status
        self.task: str | None = failure.get("task")
        self.error: str | None = failure.get("error")
        self.traceback: str | None = failure.get("traceback")
        if self.error:
            where = f" in task {self.task}" if self.task else ""
            reason = f"{where}: {_one_line(self.error)}"
        else:
            reason = f": {_one_line(status.get('message') or 'no reason given')}"
        super().__init__(f"execution {name} failed{reason}")


class ExecutionCancelledError(CancelledError):
    """The Execution ended Cancelled."""


class ExecutionTimeoutError(KredunError, TimeoutError):
    """The Execution did not finish within the timeout."""


class ResultUnavailableError(KredunError):
    """The Execution succeeded but its result cannot be read here."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- configuration --------------------------------------------------------------------------


def cluster_config(config: Config | dict[str, Any] | None = None) -> Config:
    """The stores a submission shares with the cluster: `config` as given, or (None) the
    project configuration with environment overrides. The value store must be one the
    cluster's operator and Pods can read (S3, or a volume mounted on both sides)."""
    if isinstance(config, Config):
        resolved = config
    elif config is not None:
        resolved = config_from_dict(config)
    else:
        resolved = project_config()
        if resolved.value_store_uri == f"file://{Path.cwd() / CONFIG_DIR / 'values'}":
            raise ValueStoreNotSharedError(
                "no value store configured for the cluster: set [value_store] uri in "
                f"{CONFIG_DIR}/kredun.toml or $KREDUN_VALUE_STORE to the S3 bucket or shared "
                "volume the cluster uses"
            )
    if urlparse(resolved.value_store_uri).scheme == "memory":
        raise ValueStoreNotSharedError(
            f"value store {resolved.value_store_uri} is in this process only; the cluster "
            "cannot read it: configure the S3 bucket or shared volume the cluster uses"
        )
    return resolved


def namespace_config(config: Config, namespace: str) -> Config:
    """`config` with the cache scope the operator gives Executions in `namespace`: the
    namespace's own, or that of its group in `[tenancy.shared_cache]` (kredun.tenancy)."""
    return replace(config, cache_scope=config.tenancy.scope_of(namespace))


def default_job_image(config: Config) -> str | None:
    """$KREDUN_JOB_IMAGE, else `[jobs] image` from the configuration."""
    return os.environ.get("KREDUN_JOB_IMAGE") or config.sections.get("jobs", {}).get("image")


def encode_submission(expr: Any, store_blob: Callable[[str, bytes], None]) -> dict[str, Any]:
    """The plan the SDK submits: task code shipped, and the current definitions of the
    workflow's tasks, so a cluster replaying old results calls today's code."""
    called: list[Any] = []
    pending = [expr]  # the expression, then the arguments of scheduler tasks (cond, catch)

    def visit(obj: Any, kind: str, payload: Any, children: list[None]) -> None:
        if kind == graph.CALL:
            called.append(obj.task)
        elif kind == graph.CONTROL:
            arguments = [*obj.args, *obj.kwargs.values()]
            called.extend(arguments)  # a recovery task (definitions_near takes only tasks)
            pending.extend(arguments)

    while pending:
        graph.fold(pending.pop(), lambda value: None, visit)
    # Values of local types must pickle by value too: the job image cannot import them.
    with local_code_by_value():
        return encode_plan(expr, store_blob, ship, definitions_near(called))


def upload_plan(expr: Any, value_store: ValueStore) -> tuple[str, bytes]:
    """Encode `expr` as a plan, writing task code and large values to `value_store`, then
    the plan itself. Returns the plan's hash and its JSON bytes."""
    data = dumps_plan(encode_submission(expr, value_store.put))
    plan_hash = hash_bytes(data)
    value_store.put(plan_hash, data)
    return plan_hash, data


# -- the Execution object -------------------------------------------------------------------


def _check_name(name: str) -> None:
    """Execution names become label values on job Pods: at most 63 characters."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise InvalidExecutionError(
            f"invalid execution name {name!r}: use at most 63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit"
        )


def _name_prefix(expr: Any) -> str:
    task = getattr(expr, "task", None)
    text = getattr(task, "fullname", "") or "kredun"
    prefix = re.sub(r"[^a-z0-9]+", "-", text.lower())[:_NAME_PREFIX_LIMIT].strip("-")
    return f"{prefix or 'kredun'}-"


def _execution_manifest(
    expr: Any,
    plan_hash: str,
    plan: bytes,
    *,
    image: str,
    name: str | None = None,
    executor: str = "k8s",
    cache: bool = True,
    service_account: str | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    tags: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The Execution to create for a plan already in the value store."""
    metadata: dict[str, Any] = {
        "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        "annotations": {ANNOTATION_EXPRESSION: preview(expr, 500)},
    }
    if tags:
        metadata["labels"].update(tag_labels(tags))
        grouped: dict[str, list[str]] = {}
        for key, value in tags:
            grouped.setdefault(key, []).append(value)
        annotation = json.dumps(grouped, sort_keys=True)
        if len(tags) > MAX_EXECUTION_TAGS or len(annotation.encode()) > TAGS_ANNOTATION_LIMIT:
            raise TagError(
                f"tags: {len(tags)} tags, {len(annotation.encode())} bytes as the "
                f"{ANNOTATION_TAGS} annotation; an Execution takes at most {MAX_EXECUTION_TAGS} "
                f"tags and {TAGS_ANNOTATION_LIMIT} bytes"
            )
        metadata["annotations"][ANNOTATION_TAGS] = annotation
    task = getattr(expr, "task", None)
    if task is not None and label_value(task.fullname):
        metadata["labels"][LABEL_TASK] = label_value(task.fullname)
    if name is None:
        metadata["generateName"] = _name_prefix(expr)
    else:
        metadata["name"] = name
    plan_ref: dict[str, str] = {"hash": plan_hash}
    if len(plan) <= PLAN_INLINE_LIMIT:
        plan_ref["inline"] = base64.b64encode(plan).decode("ascii")
    spec: dict[str, Any] = {"plan": plan_ref, "image": image, "executor": executor, "cache": cache}
    optional = {
        "serviceAccountName": service_account,
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "resources": None if resources is None else Resources.parse(resources).execution_spec(),
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


# -- talking to the API ---------------------------------------------------------------------


def _api_client(kubeconfig: str | os.PathLike[str] | None) -> kubernetes.client.ApiClient:
    """A client from `kubeconfig` (None: $KUBECONFIG or ~/.kube/config), falling back to the
    Pod's service account when running inside a cluster."""
    import kubernetes.client
    import kubernetes.config

    try:
        return kubernetes.config.new_client_from_config(
            config_file=os.fspath(kubeconfig) if kubeconfig is not None else None
        )
    except (kubernetes.config.ConfigException, TypeError, ValueError) as error:
        if kubeconfig is not None or "KUBERNETES_SERVICE_HOST" not in os.environ:
            where = f"kubeconfig {os.fspath(kubeconfig)}" if kubeconfig else "a kubeconfig"
            raise KubeConfigError(f"cannot load {where}: {_one_line(str(error))}") from None
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException as error:
        raise KubeConfigError(f"cannot load the in-cluster configuration: {error}") from None
    return kubernetes.client.ApiClient(configuration)


def _status_body(error: Any) -> dict[str, Any]:
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _translate(error: Any, action: str, namespace: str, name: str | None) -> ClusterError:
    """A one-line kredun error for an ApiException."""
    body = _status_body(error)
    message = _one_line(body.get("message") or error.reason or "no message")
    code = error.status
    if code == 404:
        details = body.get("details") or {}
        if not details.get("name"):  # the resource type itself is unknown
            return CRDNotInstalledError(
                f"the cluster does not serve {PLURAL}.{GROUP}: install the CRD "
                "(kubectl apply -f crds/execution.yaml) or the kredun Helm chart"
            )
        if details.get("kind") == PLURAL:
            return ExecutionNotFoundError(f"no execution {name!r} in namespace {namespace!r}")
        return KubernetesAPIError(f"cannot {action}: {message}")  # e.g. no such namespace
    if code == 401:
        return ForbiddenError(f"cannot {action}: the API server rejected the credentials")
    if code == 403:
        return ForbiddenError(f"cannot {action}: {message}")
    if code == 409 and body.get("reason") == "AlreadyExists":
        return ExecutionExistsError(f"execution {name!r} already exists in namespace {namespace!r}")
    if code == 422:
        return InvalidExecutionError(f"cannot {action}: {message}")
    return KubernetesAPIError(f"cannot {action}: API error {code} ({error.reason}): {message}")


@contextmanager
def _api_errors(action: str, namespace: str, name: str | None = None) -> Iterator[None]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as error:
        raise _translate(error, action, namespace, name) from None
    except HTTPError as error:
        raise ClusterUnreachableError(
            f"cannot {action}: the Kubernetes API did not answer: {_one_line(str(error))}"
        ) from None


def list_executions(
    namespace: str = "default", *, kubeconfig: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """The Execution objects of a namespace, oldest first."""
    import kubernetes.client

    api = kubernetes.client.CustomObjectsApi(_api_client(kubeconfig))
    with _api_errors("list executions", namespace):
        listing: Any = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    items = listing.get("items") or []
    return sorted(items, key=lambda obj: obj["metadata"].get("creationTimestamp", ""))


def submit(
    expr: Any,
    *,
    namespace: str = "default",
    image: str | None = None,
    name: str | None = None,
    wait: bool = False,
    timeout: float | None = None,
    config: Config | dict[str, Any] | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    executor: str = "k8s",
    service_account: str | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    cache: bool = True,
    tags: Any = None,
) -> ExecutionHandle:
    """Run `expr` on a Kubernetes cluster: build its plan here, upload it, create an Execution.

    `config` (a `Config`, or a dict shaped like `.kredun/kredun.toml`; None: the project
    configuration and $KREDUN_VALUE_STORE / $KREDUN_DATABASE_URI) must name the value store
    and database *the cluster uses* (S3, or a volume mounted here and in the Pods; PostgreSQL):
    the plan, task code and large arguments go to that value store, and `result()` reads the
    result back from those stores. A `memory://` value store raises ValueStoreNotSharedError.

    Task code from modules the image cannot import (workflow files, `__main__`, anything not
    installed) is shipped by value; code from installed packages is imported in the Pod.
    `image` (default: $KREDUN_JOB_IMAGE or `[jobs] image`) runs the job Pods. `name` (default:
    generated from the task's name) names the Execution. `executor`, `service_account`,
    `node_selector`, `tolerations` and `resources` ({"cpus", "memory", "gpus"}) are defaults
    for jobs whose task sets none. `tags` (a dict or (key, value) pairs) become labels
    `tags.kredun.dev/KEY=VALUE` where Kubernetes allows, and all of them the annotation
    `kredun.dev/tags`. With `wait=True`, returns once the Execution finished (see
    `ExecutionHandle.wait`).
    """
    checked_tags = check_tags(tags)
    if not contains_expression(expr):
        raise TypeError(f"submit() needs an expression (call a task), got {preview(expr, 80)}")
    if name is not None:
        _check_name(name)
    resolved = cluster_config(config)
    image = image or default_job_image(resolved)
    if not image:
        raise MissingImageError(
            "no job image: pass image=..., or set $KREDUN_JOB_IMAGE or [jobs] image in "
            f"{CONFIG_DIR}/kredun.toml"
        )
    import kubernetes.client

    from .valuestore import open_value_store

    client = _api_client(kubeconfig)  # a bad kubeconfig fails before anything is uploaded
    # The plan and task code go where the namespace's jobs read them.
    scoped = namespace_config(resolved, namespace)
    plan_hash, plan = upload_plan(
        expr, open_value_store(scoped.require_value_store_uri(), scoped.cache_scope)
    )
    manifest = _execution_manifest(
        expr,
        plan_hash,
        plan,
        image=image,
        name=name,
        executor=executor,
        cache=cache,
        service_account=service_account,
        node_selector=node_selector,
        tolerations=tolerations,
        resources=resources,
        tags=checked_tags,
    )
    api = kubernetes.client.CustomObjectsApi(client)
    with _api_errors("create the execution", namespace, name):
        created: Any = api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest
        )
    handle = ExecutionHandle(
        created["metadata"]["name"], namespace, config=resolved, api_client=client
    )
    if wait:
        handle.wait(timeout)
    return handle


class ExecutionHandle:
    """An Execution on the cluster: its status, its result, its job logs, cancelling it.

    `config` names the stores the cluster uses (as for `submit`); only `result()` needs it.
    """

    def __init__(
        self,
        name: str,
        namespace: str = "default",
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        config: Config | dict[str, Any] | None = None,
        api_client: kubernetes.client.ApiClient | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self._kubeconfig = kubeconfig
        self._config = config
        self._client = api_client

    def __repr__(self) -> str:
        return f"ExecutionHandle({self.name!r}, namespace={self.namespace!r})"

    @property
    def _api(self) -> kubernetes.client.ApiClient:
        if self._client is None:
            self._client = _api_client(self._kubeconfig)
        return self._client

    def _custom_objects(self) -> Any:
        import kubernetes.client

        return kubernetes.client.CustomObjectsApi(self._api)

    def get(self) -> dict[str, Any]:
        """The whole Execution object."""
        with _api_errors("read the execution", self.namespace, self.name):
            return self._custom_objects().get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )

    def status(self) -> dict[str, Any]:
        """The Execution's status as the operator last wrote it ({} before it has)."""
        return self.get().get("status") or {}

    @property
    def phase(self) -> str | None:
        """Pending, Running, Succeeded, Failed, Cancelled; None until the operator saw it."""
        return self.status().get("phase")

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Watch the Execution until it finishes; return its final status.

        Raises ExecutionFailedError (with the failing task, error and traceback),
        ExecutionCancelledError, ExecutionDeletedError, or ExecutionTimeoutError (a
        TimeoutError) after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        obj = self.get()
        while True:
            status = obj.get("status") or {}
            if status.get("phase") in TERMINAL_PHASES:
                return self._outcome(status)
            if deadline is None:
                seconds = WATCH_SECONDS
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    phase = status.get("phase") or "not started"
                    raise ExecutionTimeoutError(
                        f"execution {self.name} did not finish within {timeout:g}s "
                        f"(phase: {phase}, progress: {status.get('progress') or '-'})"
                    )
                seconds = max(1, math.ceil(remaining))
            obj = self._watch(obj, seconds)

    def _watch(self, obj: dict[str, Any], seconds: int) -> dict[str, Any]:
        """Watch for up to `seconds` from `obj`'s version; the newest object seen, returned
        early once it is finished."""
        import kubernetes.watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = self._custom_objects()
        watch = kubernetes.watch.Watch()
        try:
            for event in watch.stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                field_selector=f"metadata.name={self.name}",
                resource_version=obj["metadata"]["resourceVersion"],
                timeout_seconds=seconds,
                _request_timeout=(10, seconds + 10),
            ):
                if event["type"] == "DELETED":
                    raise ExecutionDeletedError(f"execution {self.name} was deleted")
                if event["type"] in ("ADDED", "MODIFIED"):
                    obj = event["raw_object"]
                    if (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
                        break
        except ApiException as error:
            if error.status == 410:  # our version is too old to watch from: start from now
                return self.get()
            raise _translate(error, "watch the execution", self.namespace, self.name) from None
        except HTTPError as error:
            raise ClusterUnreachableError(
                f"cannot watch the execution: {_one_line(str(error))}"
            ) from None
        finally:
            watch.stop()
        return obj

    def _outcome(self, status: dict[str, Any]) -> dict[str, Any]:
        phase = status["phase"]
        if phase == FAILED:
            raise ExecutionFailedError(self.name, status)
        if phase == CANCELLED:
            raise ExecutionCancelledError(f"execution {self.name} was cancelled")
        return status

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the Execution (see `wait`), then fetch its result from the stores and
        unpickle it here."""
        status = self.wait(timeout)
        found = status.get("result") or {}
        with Stores(namespace_config(cluster_config(self._config), self.namespace)) as stores:
            try:
                ref: Ref
                if found.get("ref") is not None:
                    ref = ref_from_json(found["ref"], "status.result.ref")
                elif found.get("refHash"):
                    # A reference too large for the status: the operator left it in the store.
                    text = stores.values.get(found["refHash"]).decode()
                    ref = ref_from_json(json.loads(text), "status.result.refHash")
                elif found.get("hash"):
                    ref = ValueRef(found["hash"])
                else:
                    raise ResultUnavailableError(
                        f"execution {self.name} succeeded without a result"
                    )
                return resolve(ref, stores.fetch_blob)
            except ValueNotFoundError as error:
                raise ResultUnavailableError(
                    f"result of execution {self.name}: {error} (configure the database and "
                    "value store the cluster uses)"
                ) from None

    def logs(self, job: str | None = None) -> str:
        """The logs of the Execution's job Pods, oldest first, each under a `==> pod <==`
        header when there are several. `job` selects Pods by eval hash (a prefix will do),
        Pod name prefix, or task name (full or short)."""
        import kubernetes.client

        self.get()  # a missing Execution is an error, not an empty log
        core = kubernetes.client.CoreV1Api(self._api)
        with _api_errors("list the job pods", self.namespace):
            pods: list[Any] = core.list_namespaced_pod(
                self.namespace, label_selector=execution_selector(self.name)
            ).items
        if job is not None:
            pods = [pod for pod in pods if _pod_matches(pod, job)]
            if not pods:
                raise JobNotFoundError(f"no job pod of execution {self.name} matches {job!r}")
        pods.sort(key=lambda pod: (str(pod.metadata.creation_timestamp or ""), pod.metadata.name))
        parts = []
        for pod in pods:
            text = self._pod_log(core, pod.metadata.name)
            if len(pods) > 1:
                task = (pod.metadata.labels or {}).get(LABEL_TASK, "")
                text = f"==> {pod.metadata.name} ({task}) <==\n{text}"
            parts.append(text if not text or text.endswith("\n") else text + "\n")
        return "".join(parts)

    def _pod_log(self, core: Any, pod_name: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            return core.read_namespaced_pod_log(pod_name, self.namespace)
        except ApiException as error:
            if error.status in (400, 404):  # not started yet, or gone meanwhile
                message = _status_body(error).get("message") or error.reason
                return f"(no log: {_one_line(message)})\n"
            raise _translate(error, "read pod logs", self.namespace, pod_name) from None

    def cancel(self) -> None:
        """Ask the operator to cancel the Execution (sets `spec.cancel`); returns at once."""
        with _api_errors("cancel the execution", self.namespace, self.name):
            self._custom_objects().patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, {"spec": {"cancel": True}}
            )


def _pod_matches(pod: Any, job: str) -> bool:
    labels = pod.metadata.labels or {}
    task = labels.get(LABEL_TASK, "")
    return (
        labels.get(LABEL_EVAL_HASH, "").startswith(job)
        or pod.metadata.name.startswith(job)
        or job in (task, task.rpartition(".")[2])
    )
