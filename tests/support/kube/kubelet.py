"""A local kubelet for tests: runs Pods as local subprocesses, talking only the Kubernetes API.

Against the emulated API server it plays both the scheduler and the kubelet of a one-node
cluster: it watches Pods, decides whether one fits the node (resources, nodeSelector, required
node affinity) and either binds it (``pods/binding``) and runs its first container's command, or
leaves it Pending with ``PodScheduled=False, reason=Unschedulable`` as the real scheduler does.
With ``schedule_pods=False`` (against a real control plane) it is only the kubelet: it registers
its Node with allocatable CPU, memory and ``nvidia.com/gpu``, and runs the Pods that the real
kube-scheduler bound to it (``spec.nodeName``). Status goes through
``pods/status``; deleting a Pod stops its process (SIGTERM, SIGKILL after the grace period),
after which the kubelet completes the deletion (``gracePeriodSeconds=0``), as a real one does.

Volumes are written under the Pod's directory (emptyDir, configMap, secret, downwardAPI,
projected with the ServiceAccount token from the TokenRequest API) or found (a claim's bound
hostPath/local PersistentVolume, hostPath), and a container with volumeMounts runs under
``mountns.py``, which puts them at their mountPaths in a private mount namespace (needs root).
``KUBERNETES_SERVICE_HOST``/``_PORT`` name the API server, so in-cluster clients work.

Only the Kubernetes API is used (through the ``kubernetes`` client's kubeconfig handling and
HTTP stack), so it can run against any API server. Container output goes to
``<logs_dir>/<namespace>/<pod>.log``; the emulated API server serves that file as the Pod's
log, which mirrors how real kubelets serve logs beside the API server, not through it.

In-process::

    with LocalKubelet(kubeconfig=path, logs_dir=api.logs_dir, max_cpu=4) as kubelet:
        ...  # kubelet.starts["my-pod"] == 1

As a process::

    python -m tests.support.kube.kubelet --kubeconfig PATH --logs-dir DIR
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import urllib3

from tests.support.kube.selectors import Requirement, labels_match

logger = logging.getLogger(__name__)

Pod = dict[str, Any]
POD_IP = "127.0.0.1"
_TERMINAL_PHASES = ("Succeeded", "Failed")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# How long the kubelet keeps retrying a write the API answers with a transient failure.
_RETRY_SECONDS = 30.0
# A real kubelet's node Lease: renewed every quarter of its duration.
_LEASE_SECONDS = 40
_NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
# Puts a Pod's volumes at their mountPaths (see its module doc).
_MOUNTNS = Path(__file__).with_name("mountns.py")
# Termination messages: where a container writes one unless it names another path, and the
# most of it a kubelet keeps.
_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
_TERMINATION_MESSAGE_LIMIT = 4096
# Placing the message file at its path needs a private mount namespace, hence root; without
# it, variables naming the path are pointed at the file instead (_redirect_termination_path).
_CAN_MOUNT = os.geteuid() == 0
# What an image would bring and the host has to lend instead: the interpreter's environment
# and this checkout (an editable install imports from it); kept visible under any volume.
_HOST_CODE = (sys.prefix, str(Path(__file__).resolve().parents[3]))
# An image reference as container runtimes parse it: lowercase path components, optional
# registry host (a name with a dot or a port, or localhost), tag and digest. Anything else
# is InvalidImageName.
_IMAGE_REFERENCE = re.compile(
    r"^(?:(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)(?::[0-9]+)?/|[a-zA-Z0-9-]+:[0-9]+/)?"
    r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def parse_quantity(value: str | float | int) -> float:
    """A Kubernetes resource quantity ("500m", "2", "1.5Gi", "1e3") as a plain number."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def now_timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_micro_timestamp() -> str:
    """A MicroTime, as Lease.spec.renewTime wants it."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


@dataclass(frozen=True)
class Resources:
    """CPU (cores), memory (bytes) and GPUs: what scheduling compares."""

    cpu: float = 0.0
    memory: float = 0.0
    gpus: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpus - other.gpus)

    def shortfalls(self, available: Resources) -> list[str]:
        """Names of the resources this request needs more of than ``available`` offers."""
        checks = (("cpu", self.cpu, available.cpu), ("memory", self.memory, available.memory))
        missing = [name for name, wanted, have in checks if wanted > have + 1e-9]
        if self.gpus > available.gpus + 1e-9:
            missing.append("nvidia.com/gpu")
        return missing

    @classmethod
    def requested_by(cls, pod: Pod) -> Resources:
        """The sum of container requests (limits stand in for missing requests, as in k8s)."""
        total = cls()
        for container in (pod.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            gpus = sum(parse_quantity(v) for k, v in amounts.items() if k.endswith("/gpu"))
            total += cls(
                parse_quantity(amounts.get("cpu", 0)),
                parse_quantity(amounts.get("memory", 0)),
                gpus,
            )
        return total


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:500]!r}")
        self.status = status
        try:
            self.body: dict[str, Any] = json.loads(body)
        except ValueError:
            self.body = {}


class _Api:
    """JSON over the ``kubernetes`` client's HTTP stack, authenticated from a kubeconfig.

    The generated API classes would parse every answer into models; the kubelet only needs
    plain dicts and a watch stream it can close from another thread.
    """

    def __init__(self, kubeconfig: str | Path | None, stopping: threading.Event) -> None:
        self.stopping = stopping
        # Imported here: the client reads KUBECONFIG at import time, which must not happen as a
        # side effect of importing this module (e.g. during test collection).
        import kubernetes.config

        if kubeconfig is None:
            self.client = kubernetes.config.new_client_from_config()
        else:
            self.client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        method, url, headers, body, _ = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.client.rest_client.request(
            method, url, headers=headers, body=body, _request_timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        retry_for: float = 0.0,
    ) -> dict[str, Any]:
        """One request; with ``retry_for``, transient failures are retried for that long.

        Transient means what a real kubelet also rides out: connection errors, 429 and 5xx
        (e.g. faults injected by a test). Retries stop early when the kubelet stops.
        """
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            try:
                response = self._send(method, path, query, body, content_type, timeout)
                data = response.read()
                if response.status < 400:
                    return json.loads(data) if data else {}
                error: Exception = KubeError(response.status, data)
                if response.status != 429 and response.status < 500:
                    raise error
            except urllib3.exceptions.HTTPError as exc:
                error = exc
            if time.monotonic() + delay > deadline or self.stopping.wait(delay):
                raise error
            delay = min(delay * 2, 1.0)

    def open_stream(
        self, path: str, query: Mapping[str, str], read_timeout: float
    ) -> urllib3.HTTPResponse:
        response = self._send("GET", path, query, None, "application/json", (10.0, read_timeout))
        if response.status >= 400:
            raise KubeError(response.status, response.read())
        return response.response

    def close(self) -> None:
        self.client.close()


def _iter_json_lines(stream: urllib3.HTTPResponse) -> Iterator[dict[str, Any]]:
    buffer = b""
    for chunk in stream.stream(65536, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def _pod_path(namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"/api/v1/namespaces/{quote(namespace)}/pods"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def _expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references like the kubelet does; unknown ones stay, ``$$`` escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return variables.get(match.group(1), match.group(0))

    return _VAR_REFERENCE.sub(replace, text)


def _startable(command: str, env: Mapping[str, str], mounts: Path) -> bool:
    """Whether `command` can be found: on the PATH, or under a path a volume is mounted at."""
    if shutil.which(command, path=env.get("PATH")) is not None:
        return True
    targets = [str(mount["target"]) for mount in json.loads(mounts.read_text())]
    return any(command.startswith(target.rstrip("/") + "/") for target in targets)


class _ConfigError(Exception):
    """The container's configuration cannot be resolved yet (CreateContainerConfigError)."""


@dataclass
class _PodRun:
    """One Pod this kubelet admitted: its process and the state of its lifecycle."""

    uid: str
    namespace: str
    name: str
    pod: Pod
    reserved: Resources
    stop_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen[bytes] | None = None
    kill_timer: threading.Timer | None = None
    thread: threading.Thread | None = None
    removed: bool = False  # the Pod is gone from the API
    deletion_requested: bool = False  # the Pod got a deletionTimestamp: finish it when stopped
    deadline_exceeded: bool = False
    done: bool = False

    def request_stop(self, grace_seconds: float) -> None:
        """SIGTERM the process group now and SIGKILL it after the grace period."""
        self.stop_requested.set()
        with self.lock:
            process = self.process
            if process is None or process.poll() is not None:
                return
            _signal_group(process, signal.SIGTERM)
            if self.kill_timer is None:
                self.kill_timer = threading.Timer(
                    max(grace_seconds, 0.0), _signal_group, (process, signal.SIGKILL)
                )
                self.kill_timer.daemon = True
                self.kill_timer.start()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


class LocalKubelet:
    """Runs the Pods of one emulated node as local processes; see the module docstring.

    ``starts`` counts process starts per Pod name (restarts included), for tests that check
    that no Pod ran twice.
    """

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        *,
        logs_dir: str | Path,
        namespace: str | None = None,
        label_selector: str | None = None,
        node_name: str = "local-kubelet",
        node_labels: Mapping[str, str] | None = None,
        max_cpu: float | str | None = None,
        max_memory: float | str | None = None,
        max_gpus: int = 0,
        max_parallel: int | None = None,
        max_grace_period: float = 10.0,
        restart_backoff: float = 1.0,
        work_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        schedule_pods: bool = True,
        unpullable_images: Collection[str] = (),
    ) -> None:
        """Configure the node.

        ``max_cpu``/``max_memory`` (quantities; None = unlimited) and ``max_gpus`` are the node's
        allocatable resources, shared by the Pods running at once; ``max_parallel`` caps how
        many run at once ("Too many pods"). ``max_grace_period`` caps how long a deleted Pod's
        process may take to exit after SIGTERM. ``env`` is added to every process's environment
        (on top of this process's environment, below the container's own ``env``).
        ``schedule_pods=False`` leaves binding Pods to a real scheduler (see the module doc).
        Images are never pulled (commands run locally), but a Pod naming one of
        ``unpullable_images`` reports ``ErrImagePull`` then ``ImagePullBackOff``, and one whose
        image is not a valid reference reports ``InvalidImageName``, as a real kubelet does.
        """
        self.kubeconfig = kubeconfig
        self.logs_dir = Path(logs_dir)
        self.namespace = namespace
        self.label_selector = label_selector
        self.node_name = node_name
        self.node_labels = {
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(node_labels or {}),
        }
        self.capacity = Resources(
            math.inf if max_cpu is None else parse_quantity(max_cpu),
            math.inf if max_memory is None else parse_quantity(max_memory),
            float(max_gpus),
        )
        self.max_parallel = max_parallel
        self.max_grace_period = max_grace_period
        self.restart_backoff = restart_backoff
        self.extra_env = dict(env or {})
        self.schedule_pods = schedule_pods
        self.unpullable_images = frozenset(unpullable_images)
        self._owns_work_dir = work_dir is None
        self.work_dir = (
            Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="local-kubelet-"))
        )
        self.starts: collections.Counter[str] = collections.Counter()

        self._api: _Api | None = None
        self._lock = threading.RLock()
        self._runs: dict[str, _PodRun] = {}
        self._pending: dict[str, Pod] = {}
        self._reported_unschedulable: dict[str, str] = {}
        self._used = Resources()
        self._stopping = threading.Event()
        self._stream: urllib3.HTTPResponse | None = None
        self._watch_thread: threading.Thread | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None

    # ----------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Register the node and start watching Pods (cleaned up again if that fails)."""
        self._stopping.clear()
        try:
            self._api = _Api(self.kubeconfig, self._stopping)
            self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kubelet-api")
            node = self._register_node()
            if not self.schedule_pods:
                self._heartbeat_thread = threading.Thread(
                    target=self._heartbeat, args=(node,), name="kubelet-lease", daemon=True
                )
                self._heartbeat_thread.start()
            self._watch_thread = threading.Thread(
                target=self._watch_loop, name="kubelet-watch", daemon=True
            )
            self._watch_thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop watching and kill every process; Pod objects are left as they are."""
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.shutdown()
        for thread in (self._watch_thread, self._heartbeat_thread):
            if thread is not None:
                thread.join(timeout=10)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.request_stop(grace_seconds=min(1.0, self.max_grace_period))
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._api is not None:
            self._api.close()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> list[str]:
        """``namespace/name`` of the Pods whose process runs now."""
        with self._lock:
            return sorted(
                f"{r.namespace}/{r.name}"
                for r in self._runs.values()
                if r.process and r.process.poll() is None
            )

    @property
    def _kube(self) -> _Api:
        assert self._api is not None, "the kubelet is not started"
        return self._api

    # ----------------------------------------------------------------------------- watching

    def _register_node(self) -> dict[str, Any]:
        """Create (or take over) this kubelet's Node; the Node as stored, or {} if that failed."""
        allocatable = {
            "cpu": str(self.capacity.cpu) if self.capacity.cpu != math.inf else "1000",
            "memory": str(int(self.capacity.memory)) if self.capacity.memory != math.inf else "1Ei",
            "nvidia.com/gpu": str(int(self.capacity.gpus)),
            "pods": str(self.max_parallel or 1000),
        }
        now = now_timestamp()
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "local kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        status = {
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": POD_IP}],
        }
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node_name, "labels": self.node_labels},
            "status": status,
        }
        retry_for = 0.0 if self.schedule_pods else _RETRY_SECONDS
        try:
            try:
                return self._kube.request("POST", "/api/v1/nodes", body=node, retry_for=retry_for)
            except KubeError as exc:
                if exc.status != 409:
                    raise
                # Registered by an earlier kubelet of this name: take the node over.
                return self._kube.request(
                    "PATCH",
                    f"/api/v1/nodes/{quote(self.node_name)}/status",
                    body={"status": status},
                    content_type="application/strategic-merge-patch+json",
                    retry_for=retry_for,
                )
        except (KubeError, urllib3.exceptions.HTTPError):
            # When it schedules Pods itself the Node is informational (kubectl get nodes);
            # a real scheduler binds nothing to a Node that does not exist.
            if not self.schedule_pods:
                raise
        return {}

    def _heartbeat(self, node: Mapping[str, Any]) -> None:
        """Renew the node's Lease as a kubelet does: the node lifecycle controller lifts the
        not-ready taint from a Ready node, and taints it unreachable once renewals stop."""
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node_name}
        owner["uid"] = node["metadata"]["uid"]
        while True:
            spec = {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": _LEASE_SECONDS,
                "renewTime": now_micro_timestamp(),
            }
            try:
                try:
                    self._kube.request(
                        "PATCH",
                        f"{_NODE_LEASES}/{quote(self.node_name)}",
                        body={"spec": spec},
                        content_type="application/merge-patch+json",
                    )
                except KubeError as exc:
                    if exc.status != 404:
                        raise
                    lease = {"metadata": {"name": self.node_name, "ownerReferences": [owner]}}
                    self._kube.request("POST", _NODE_LEASES, body={**lease, "spec": spec})
            except (KubeError, urllib3.exceptions.HTTPError) as exc:
                logger.warning("could not renew the lease of node %s: %s", self.node_name, exc)
            if self._stopping.wait(_LEASE_SECONDS / 4):
                return

    def _watch_loop(self) -> None:
        path = _pod_path(self.namespace) if self.namespace else "/api/v1/pods"
        selector = {"labelSelector": self.label_selector} if self.label_selector else {}
        if not self.schedule_pods:  # like a real kubelet: only the Pods bound to this node
            selector["fieldSelector"] = f"spec.nodeName={self.node_name}"
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    listing = self._kube.request("GET", path, query=selector)
                    resource_version = listing["metadata"]["resourceVersion"]
                    self._reconcile_listing(listing.get("items") or [])
                query = {
                    **selector,
                    "watch": "true",
                    "resourceVersion": resource_version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "300",
                }
                stream = self._kube.open_stream(path, query, read_timeout=330)
                with self._lock:
                    self._stream = stream
                if self._stopping.is_set():
                    break
                try:
                    for event in _iter_json_lines(stream):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                resource_version = None  # too old: list again
                                break
                            raise KubeError(obj.get("code") or 500, json.dumps(obj).encode())
                        resource_version = obj.get("metadata", {}).get(
                            "resourceVersion", resource_version
                        )
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self._on_pod_event(event["type"], obj)
                finally:
                    with self._lock:
                        self._stream = None
                    stream.release_conn()
            except Exception as exc:  # the API may be restarting or failing on purpose in tests
                if self._stopping.is_set():
                    break
                logger.debug("kubelet watch interrupted: %r", exc)
                self._stopping.wait(0.2)

    def _reconcile_listing(self, pods: list[Pod]) -> None:
        """After a (re)list, forget Pods that vanished while we were not watching."""
        present = {pod["metadata"]["uid"] for pod in pods}
        with self._lock:
            vanished = [run.pod for uid, run in self._runs.items() if uid not in present]
            vanished += [pod for uid, pod in self._pending.items() if uid not in present]
        for pod in vanished:
            self._on_pod_event("DELETED", pod)
        for pod in pods:
            self._on_pod_event("ADDED", pod)

    def _on_pod_event(self, event_type: str, pod: Pod) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid, node = meta["uid"], spec.get("nodeName")
        phase = (pod.get("status") or {}).get("phase", "Pending")
        with self._lock:
            run = self._runs.get(uid)
            if event_type == "DELETED":
                self._pending.pop(uid, None)
                self._reported_unschedulable.pop(uid, None)
                if run is not None:
                    run.removed = True
                    run.request_stop(self._grace_for(pod))
                    if run.done:
                        del self._runs[uid]
            elif node and node != self.node_name:
                self._pending.pop(uid, None)
            elif run is not None:
                run.pod = pod
                if meta.get("deletionTimestamp"):
                    run.deletion_requested = True
                    run.request_stop(self._grace_for(pod))
                    if run.done:
                        self._submit(self._finish_deletion, run.namespace, run.name, uid)
            elif meta.get("deletionTimestamp"):
                self._pending.pop(uid, None)
                if node == self.node_name:  # bound here but not running here: nothing to stop
                    self._submit(self._finish_deletion, meta["namespace"], meta["name"], uid)
            elif phase in _TERMINAL_PHASES:
                self._pending.pop(uid, None)
            elif node == self.node_name and phase != "Pending":
                # Running here per the API, yet no process of ours: a previous kubelet ran it.
                self._submit(self._report_lost, pod)
            elif node or self.schedule_pods:
                self._pending[uid] = pod
        self._schedule()

    def _grace_for(self, pod: Pod) -> float:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return min(float(grace), self.max_grace_period)

    def _submit(self, fn: Any, *args: Any) -> None:
        if self._executor is not None and not self._stopping.is_set():
            with contextlib.suppress(RuntimeError):  # executor shut down meanwhile
                self._executor.submit(self._quietly, fn, *args)

    @staticmethod
    def _quietly(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("kubelet API call failed")

    # ----------------------------------------------------------------------------- scheduling

    def _unschedulable_reason(self, pod: Pod, running: int) -> str | None:
        spec = pod.get("spec") or {}
        if not self._matches_node(spec):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        try:
            requested = Resources.requested_by(pod)
        except ValueError as exc:
            return f"0/1 nodes are available: {exc}."
        missing = requested.shortfalls(self.capacity - self._used)
        if missing:
            return (
                "0/1 nodes are available: "
                + ", ".join(f"1 Insufficient {name}" for name in missing)
                + "."
            )
        if self.max_parallel is not None and running >= self.max_parallel:
            return "0/1 nodes are available: 1 Too many pods."
        return None

    def _matches_node(self, spec: Mapping[str, Any]) -> bool:
        selector = spec.get("nodeSelector") or {}
        if any(self.node_labels.get(key) != value for key, value in selector.items()):
            return False
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        if not affinity:
            return True
        return any(self._term_matches(term) for term in affinity.get("nodeSelectorTerms") or [])

    def _term_matches(self, term: Mapping[str, Any]) -> bool:
        operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
        requirements = []
        for expression in term.get("matchExpressions") or []:
            operator = expression.get("operator")
            if operator in ("Gt", "Lt"):
                value = self.node_labels.get(expression["key"])
                limit = int((expression.get("values") or ["0"])[0])
                if value is None or not value.isdigit():
                    return False
                if (operator == "Gt" and not int(value) > limit) or (
                    operator == "Lt" and not int(value) < limit
                ):
                    return False
                continue
            values = frozenset(expression.get("values") or ())
            requirements.append(
                Requirement(expression["key"], operators.get(operator, "in"), values)
            )
        return labels_match(tuple(requirements), self.node_labels)

    def _schedule(self) -> None:
        """Admit pending Pods that fit now; report the others as Unschedulable (once per reason)."""
        to_start: list[_PodRun] = []
        to_report: list[tuple[Pod, str]] = []
        with self._lock:
            if self._stopping.is_set():
                return
            running = sum(1 for run in self._runs.values() if not run.done)
            for uid, pod in list(self._pending.items()):
                # A Pod the real scheduler bound here fits by its reckoning: admit it.
                reason = self._unschedulable_reason(pod, running) if self.schedule_pods else None
                if reason is None:
                    del self._pending[uid]
                    self._reported_unschedulable.pop(uid, None)
                    requested = Resources.requested_by(pod)
                    self._used += requested
                    meta = pod["metadata"]
                    run = _PodRun(uid, meta["namespace"], meta["name"], pod, requested)
                    self._runs[uid] = run
                    to_start.append(run)
                    running += 1
                elif self._reported_unschedulable.get(uid) != reason:
                    self._reported_unschedulable[uid] = reason
                    to_report.append((pod, reason))
            for run in to_start:
                run.thread = threading.Thread(
                    target=self._run_pod, args=(run,), name=f"pod-{run.name}", daemon=True
                )
                run.thread.start()
        for pod, reason in to_report:
            self._submit(self._report_unschedulable, pod, reason)

    def _report_unschedulable(self, pod: Pod, message: str) -> None:
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now_timestamp(),
            "lastProbeTime": None,
        }
        others = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") != "PodScheduled"
        ]
        self._patch_status(
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            {"conditions": [condition, *others]},
        )

    def _report_lost(self, pod: Pod) -> None:
        meta = pod["metadata"]
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        terminated = {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "finishedAt": now_timestamp(),
        }
        status = {
            "phase": "Failed",
            "containerStatuses": [
                self._container_status(container, {"terminated": terminated}, 0, ready=False)
            ],
        }
        self._patch_status(meta["namespace"], meta["name"], status)

    # ----------------------------------------------------------------------------- running

    def _run_pod(self, run: _PodRun) -> None:
        """Bind, then run the first container (restarting it per restartPolicy) until done."""
        try:
            if not (run.pod.get("spec") or {}).get("nodeName"):
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": run.name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                }
                try:
                    self._kube.request(
                        "POST",
                        _pod_path(run.namespace, run.name, "binding"),
                        body=binding,
                        retry_for=_RETRY_SECONDS,
                    )
                except KubeError as exc:
                    logger.debug("could not bind %s/%s: %s", run.namespace, run.name, exc)
                    return
            self._run_container(run)
        except Exception:
            logger.exception("kubelet failed running pod %s/%s", run.namespace, run.name)
        finally:
            with self._lock:
                run.done = True
                self._used -= run.reserved
                if run.removed:
                    self._runs.pop(run.uid, None)
            if run.kill_timer is not None:
                run.kill_timer.cancel()
            if run.deletion_requested and not run.removed and not self._stopping.is_set():
                with contextlib.suppress(Exception):
                    self._finish_deletion(run.namespace, run.name, run.uid)
            self._schedule()

    def _run_container(self, run: _PodRun) -> None:
        spec = run.pod.get("spec") or {}
        container = (spec.get("containers") or [{}])[0]
        restart_policy = spec.get("restartPolicy", "Always")
        log_path = self.logs_dir / run.namespace / f"{run.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline_timer = None
        if spec.get("activeDeadlineSeconds") is not None:
            deadline_timer = threading.Timer(
                float(spec["activeDeadlineSeconds"]), self._deadline_exceeded, (run,)
            )
            deadline_timer.daemon = True
            deadline_timer.start()
        start_time = now_timestamp()
        restarts = 0
        last_state: dict[str, Any] | None = None
        try:
            if not self._image_pulled(run, container):
                return
            resolved = self._resolve_until_ready(run, container)
            if resolved is None:
                return
            env, mounts = resolved
            while True:
                started_at = now_timestamp()
                exit_code, message = self._execute(
                    run, container, env, mounts, log_path, append=restarts > 0
                )
                if exit_code is None:  # started fine: report Running, then wait for the exit
                    assert run.process is not None
                    running_state = {"running": {"startedAt": started_at}}
                    self._patch_status(
                        run.namespace,
                        run.name,
                        self._running_status(
                            container, running_state, restarts, start_time, last_state, run
                        ),
                    )
                    exit_code = run.process.wait()
                    if exit_code < 0:
                        exit_code = 128 - exit_code  # killed by a signal
                terminated = {
                    "exitCode": exit_code,
                    "reason": "Completed"
                    if exit_code == 0
                    else ("StartError" if message else "Error"),
                    "startedAt": started_at,
                    "finishedAt": now_timestamp(),
                    "containerID": f"local://{run.process.pid}" if run.process else "",
                }
                message = message or self._termination_message(run)
                if message:
                    terminated["message"] = message
                stopping = run.stop_requested.is_set() or self._stopping.is_set()
                restart = restart_policy == "Always" or (
                    restart_policy == "OnFailure" and exit_code != 0
                )
                if restart and not stopping:
                    restarts += 1
                    last_state = {"terminated": terminated}
                    waiting = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off restarting {container.get('name')}",
                        }
                    }
                    self._patch_status(
                        run.namespace,
                        run.name,
                        self._running_status(
                            container, waiting, restarts, start_time, last_state, run, ready=False
                        ),
                    )
                    if not run.stop_requested.wait(self.restart_backoff):
                        continue
                if not self._stopping.is_set():
                    self._report_terminated(
                        run, container, terminated, restarts, start_time, last_state
                    )
                return
        finally:
            if deadline_timer is not None:
                deadline_timer.cancel()

    def _deadline_exceeded(self, run: _PodRun) -> None:
        run.deadline_exceeded = True
        run.request_stop(
            min(
                float((run.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
                self.max_grace_period,
            )
        )

    def _image_pulled(self, run: _PodRun, container: Mapping[str, Any]) -> bool:
        """Whether the container's image is "pulled"; if not, report why until the Pod is
        deleted (False), as a kubelet backs off pulling without ever giving up."""
        image = str(container.get("image", ""))
        if _IMAGE_REFERENCE.match(image) is None:
            states = [("InvalidImageName", f'Failed to apply default image tag "{image}"')]
        elif image in self.unpullable_images:
            states = [
                ("ErrImagePull", f'failed to pull and unpack image "{image}": not found'),
                ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
            ]
        else:
            return True
        for reason, message in states:
            waiting = {"waiting": {"reason": reason, "message": message}}
            status = {
                "containerStatuses": [self._container_status(container, waiting, 0, ready=False)]
            }
            self._patch_status(run.namespace, run.name, status)
            if run.stop_requested.wait(0.5) or self._stopping.is_set():
                return False
        while not run.stop_requested.wait(1.0) and not self._stopping.is_set():
            pass
        return False

    def _resolve_until_ready(
        self, run: _PodRun, container: Mapping[str, Any]
    ) -> tuple[dict[str, str], Path | None] | None:
        """The container's env and mounts, waiting (as CreateContainerConfigError) for
        missing ConfigMaps, Secrets and claims."""
        reported = None
        while not run.stop_requested.is_set() and not self._stopping.is_set():
            try:
                env = self._container_env(run.pod, container)
                if not _CAN_MOUNT:
                    self._redirect_termination_path(run, container, env)
                return env, self._prepare_mounts(run, container)
            except _ConfigError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    waiting = {
                        "waiting": {"reason": "CreateContainerConfigError", "message": reported}
                    }
                    status = {
                        "containerStatuses": [
                            self._container_status(container, waiting, 0, ready=False)
                        ]
                    }
                    self._patch_status(run.namespace, run.name, status)
                run.stop_requested.wait(1.0)
        return None

    def _execute(
        self,
        run: _PodRun,
        container: Mapping[str, Any],
        env: dict[str, str],
        mounts: Path | None,
        log_path: Path,
        *,
        append: bool,
    ) -> tuple[int | None, str | None]:
        """Start the process; (None, None) if it runs, else (exit code, why it could not start)."""
        argv = [
            _expand(str(part), env)
            for part in (container.get("command") or []) + (container.get("args") or [])
        ]
        if argv and mounts is not None and not _startable(argv[0], env, mounts):
            # Under mountns.py a missing command would fail after the start: say it now.
            message = f"failed to start container process: {argv[0]}: executable not found"
            with open(log_path, "ab" if append else "wb") as log:
                log.write(message.encode() + b"\n")
            return 128, message
        if argv and mounts is not None:
            keep = [arg for path in _HOST_CODE for arg in ("--keep", path)]
            argv = [sys.executable, str(_MOUNTNS), str(mounts), *keep, "--", *argv]
        work_dir = (
            Path(container["workingDir"])
            if container.get("workingDir")
            else self._pod_dir(run) / "cwd"
        )
        with open(log_path, "ab" if append else "wb") as log:
            if not argv:
                message = "no command specified: the local kubelet cannot run an image's entrypoint"
                log.write(message.encode() + b"\n")
                return 128, message
            try:
                work_dir.mkdir(parents=True, exist_ok=True)
                self._fresh_termination_file(run)
                with run.lock:
                    if run.stop_requested.is_set():
                        return 137, "the pod was deleted before its container started"
                    run.process = subprocess.Popen(
                        argv,
                        env=env,
                        cwd=work_dir,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            except OSError as exc:
                message = f"failed to start container process: {exc}"
                log.write(message.encode() + b"\n")
                return 128, message
        with self._lock:
            self.starts[run.name] += 1
        return None, None

    def _container_env(self, pod: Pod, container: Mapping[str, Any]) -> dict[str, str]:
        """The process environment: ours, the kubelet's extras, then the container's."""
        env = {**os.environ, **self.extra_env, **self._service_env()}
        # Console scripts of this interpreter's environment must be found even if it is not
        # activated (e.g. pytest run as .venv/bin/python).
        scripts = str(Path(sys.executable).parent)
        if scripts not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = os.pathsep.join(p for p in (scripts, env.get("PATH")) if p)
        defined: dict[str, str] = {}
        namespace = pod["metadata"]["namespace"]
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if ref := source.get("configMapRef"):
                data = self._config_data("configmaps", namespace, ref)
            elif ref := source.get("secretRef"):
                data = self._config_data("secrets", namespace, ref)
            else:
                continue
            defined.update({prefix + key: value for key, value in data.items()})
        for variable in container.get("env") or []:
            name = variable["name"]
            if "valueFrom" in variable:
                value = self._value_from(pod, container, variable["valueFrom"])
                if value is None:
                    continue
            else:
                value = _expand(str(variable.get("value", "")), defined)
            defined[name] = value
        env.update(defined)
        return env

    def _service_env(self) -> dict[str, str]:
        """Where in-cluster clients find the API server. A kubelet derives these from the
        `kubernetes` Service; with no kube-proxy here, they name the API server itself."""
        server = urllib3.util.parse_url(self._kube.client.configuration.host)
        if server.scheme != "https":
            return {}  # in-cluster clients only speak TLS: the emulator has no in-cluster use
        return {
            "KUBERNETES_SERVICE_HOST": str(server.host),
            "KUBERNETES_SERVICE_PORT": str(server.port),
        }

    def _pod_dir(self, run: _PodRun) -> Path:
        return self.work_dir / f"{run.namespace}_{run.name}_{run.uid[:8]}"

    def _termination_file(self, run: _PodRun) -> Path:
        return self._pod_dir(run) / "termination-log"

    def _fresh_termination_file(self, run: _PodRun) -> None:
        """An empty message file before each start of the container, as a kubelet makes."""
        path = self._termination_file(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        path.chmod(0o666)  # the container may run as any user

    def _redirect_termination_path(
        self, run: _PodRun, container: Mapping[str, Any], env: dict[str, str]
    ) -> None:
        """Without root the message file cannot be put at its path. A program that learns
        the path from its environment (as `kredun worker` does) still finds the file: a
        variable naming the path names the Pod's own file instead."""
        target = container.get("terminationMessagePath") or _TERMINATION_MESSAGE_PATH
        for name, value in env.items():
            if value == target:
                env[name] = str(self._termination_file(run))

    def _termination_message(self, run: _PodRun) -> str | None:
        """What the exited container wrote to its termination message file, cut to 4096
        bytes (terminationMessagePolicy File; FallbackToLogsOnError is not implemented)."""
        try:
            with open(self._termination_file(run), "rb") as file:
                data = file.read(_TERMINATION_MESSAGE_LIMIT)
        except FileNotFoundError:
            return None
        return data.decode("utf-8", "replace") or None

    def _prepare_mounts(self, run: _PodRun, container: Mapping[str, Any]) -> Path | None:
        """Write the container's volumes under the Pod's directory; the path of the mount list
        that ``mountns.py`` puts in place (None: nothing to mount). The termination message
        file is one of the mounts when the kubelet can mount (as root); otherwise a container
        has no termination message unless it has volumes to mount anyway."""
        volume_mounts = container.get("volumeMounts") or []
        mounts: list[dict[str, Any]] = []
        if _CAN_MOUNT:
            target = container.get("terminationMessagePath") or _TERMINATION_MESSAGE_PATH
            mounts.append(
                {"source": str(self._termination_file(run)), "target": target, "readOnly": False}
            )
        if not volume_mounts and not mounts:
            return None
        volumes = {v["name"]: v for v in (run.pod.get("spec") or {}).get("volumes") or []}
        root = self._pod_dir(run) / "volumes"
        sources: dict[str, Path] = {}
        for mount in volume_mounts:
            name = mount["name"]
            if name not in sources:
                if name not in volumes:
                    raise _ConfigError(f'volume "{name}" is not among the Pod\'s volumes')
                sources[name] = self._volume_source(run, volumes[name], root / name)
            source = sources[name] / mount.get("subPath", "")
            if mount.get("subPath"):
                source.mkdir(parents=True, exist_ok=True)  # as a kubelet does
            read_only = bool(mount.get("readOnly"))
            mounts.append(
                {"source": str(source), "target": mount["mountPath"], "readOnly": read_only}
            )
        listing = self._pod_dir(run) / "mounts.json"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps(mounts))
        return listing

    def _volume_source(self, run: _PodRun, volume: Mapping[str, Any], directory: Path) -> Path:
        """The host directory holding one volume, written now unless it is a claim or host path."""
        namespace = run.namespace
        if (claim := volume.get("persistentVolumeClaim")) is not None:
            return self._claim_directory(namespace, claim["claimName"])
        if (host_path := volume.get("hostPath")) is not None:
            return Path(host_path["path"])
        shutil.rmtree(directory, ignore_errors=True)  # a restart sees current contents
        directory.mkdir(parents=True)
        if "emptyDir" in volume:
            return directory
        files: dict[str, str] = {}
        if (config_map := volume.get("configMap")) is not None:
            files = self._projected_files("configmaps", namespace, config_map)
        elif (secret := volume.get("secret")) is not None:
            files = self._projected_files(
                "secrets", namespace, {**secret, "name": secret.get("secretName")}
            )
        elif (downward := volume.get("downwardAPI")) is not None:
            files = self._downward_files(run.pod, downward)
        elif (projected := volume.get("projected")) is not None:
            for source in projected.get("sources") or []:
                if (token := source.get("serviceAccountToken")) is not None:
                    files[token["path"]] = self._service_account_token(run, token)
                elif (config_map := source.get("configMap")) is not None:
                    files.update(self._projected_files("configmaps", namespace, config_map))
                elif (secret := source.get("secret")) is not None:
                    files.update(self._projected_files("secrets", namespace, secret))
                elif (downward := source.get("downwardAPI")) is not None:
                    files.update(self._downward_files(run.pod, downward))
        else:
            kinds = sorted(set(volume) - {"name"})
            raise _ConfigError(f'volume "{volume["name"]}": the local kubelet cannot mount {kinds}')
        for relative, text in files.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return directory

    def _projected_files(
        self, plural: str, namespace: str, source: Mapping[str, Any]
    ) -> dict[str, str]:
        data = self._config_data(plural, namespace, source)
        items = source.get("items")
        if not items:
            return data
        missing = [item["key"] for item in items if item["key"] not in data]
        if missing and not source.get("optional"):
            raise _ConfigError(f'{plural[:-1]} "{source["name"]}" has no key {missing[0]}')
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def _downward_files(self, pod: Pod, source: Mapping[str, Any]) -> dict[str, str]:
        return {
            item["path"]: self._field_value(pod, item["fieldRef"]["fieldPath"])
            for item in source.get("items") or []
            if "fieldRef" in item
        }

    def _service_account_token(self, run: _PodRun, source: Mapping[str, Any]) -> str:
        """A token bound to this Pod, from the TokenRequest API, as a kubelet gets it."""
        account = (run.pod.get("spec") or {}).get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else [],
                "expirationSeconds": int(source.get("expirationSeconds", 3600)),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": run.name,
                    "uid": run.uid,
                },
            },
        }
        path = f"/api/v1/namespaces/{quote(run.namespace)}/serviceaccounts/{quote(account)}/token"
        try:
            answer = self._kube.request("POST", path, body=request, retry_for=_RETRY_SECONDS)
        except KubeError as exc:
            raise _ConfigError(f'token of serviceaccount "{account}": {exc}') from None
        return str(answer["status"]["token"])

    def _claim_directory(self, namespace: str, claim: str) -> Path:
        """The host directory of the PersistentVolume bound to ``claim`` (hostPath or local)."""
        try:
            pvc = self._kube.request(
                "GET",
                f"/api/v1/namespaces/{quote(namespace)}/persistentvolumeclaims/{quote(claim)}",
            )
            volume_name = (pvc.get("spec") or {}).get("volumeName")
            if not volume_name:
                raise _ConfigError(f'persistentvolumeclaim "{claim}" is not bound')
            volume = self._kube.request("GET", f"/api/v1/persistentvolumes/{quote(volume_name)}")
        except KubeError as exc:
            raise _ConfigError(f'persistentvolumeclaim "{claim}": {exc}') from None
        spec = volume.get("spec") or {}
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            raise _ConfigError(f'persistentvolume "{volume_name}" is neither hostPath nor local')
        return Path(path)

    def _config_data(self, plural: str, namespace: str, ref: Mapping[str, Any]) -> dict[str, str]:
        try:
            obj = self._kube.request(
                "GET", f"/api/v1/namespaces/{quote(namespace)}/{plural}/{quote(ref['name'])}"
            )
        except KubeError as exc:
            if exc.status == 404 and ref.get("optional"):
                return {}
            raise _ConfigError(f'{plural[:-1]} "{ref["name"]}" not found') from None
        if plural == "secrets":
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    def _value_from(
        self, pod: Pod, container: Mapping[str, Any], source: Mapping[str, Any]
    ) -> str | None:
        if field_ref := source.get("fieldRef"):
            return self._field_value(pod, field_ref.get("fieldPath", ""))
        for key, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if ref := source.get(key):
                data = self._config_data(plural, pod["metadata"]["namespace"], ref)
                if ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    where = f"{plural[:-1]} {pod['metadata']['namespace']}/{ref['name']}"
                    raise _ConfigError(f"couldn't find key {ref['key']} in {where}")
                return data[ref["key"]]
        if resource_ref := source.get("resourceFieldRef"):
            kind, _, resource = resource_ref.get("resource", "").partition(".")
            amount = ((container.get("resources") or {}).get(kind) or {}).get(resource)
            if amount is None:
                return "0"
            value = parse_quantity(amount) / parse_quantity(resource_ref.get("divisor", "1"))
            return str(math.ceil(value))
        return None

    @staticmethod
    def _field_value(pod: Pod, path: str) -> str:
        meta = pod["metadata"]
        if match := re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path):
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        simple = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": meta.get("namespace"),
            "metadata.uid": meta.get("uid"),
            "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
            "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
            "status.podIP": POD_IP,
            "status.podIPs": POD_IP,
            "status.hostIP": POD_IP,
            "status.hostIPs": POD_IP,
        }
        return str(simple.get(path) or "")

    # ----------------------------------------------------------------------------- status

    @staticmethod
    def _container_status(
        container: Mapping[str, Any],
        state: Mapping[str, Any],
        restarts: int,
        *,
        ready: bool,
        last_state: Mapping[str, Any] | None = None,
        container_id: str = "",
    ) -> dict[str, Any]:
        status = {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": container_id,
            "ready": ready,
            "started": "running" in state,
            "restartCount": restarts,
            "state": dict(state),
            "lastState": dict(last_state or {}),
        }
        return status

    def _conditions(self, ready: bool, reason: str | None = None) -> list[dict[str, Any]]:
        now = now_timestamp()
        ready_status = "True" if ready else "False"
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": ready_status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready_status, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ]
        if reason:
            for condition in conditions[2:4]:
                condition["reason"] = reason
        return conditions

    def _running_status(
        self,
        container: Mapping[str, Any],
        state: Mapping[str, Any],
        restarts: int,
        start_time: str,
        last_state: Mapping[str, Any] | None,
        run: _PodRun,
        *,
        ready: bool = True,
    ) -> dict[str, Any]:
        container_id = f"local://{run.process.pid}" if run.process else ""
        return {
            "phase": "Running",
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": start_time,
            "conditions": self._conditions(ready, None if ready else "ContainersNotReady"),
            "containerStatuses": [
                self._container_status(
                    container,
                    state,
                    restarts,
                    ready=ready,
                    last_state=last_state,
                    container_id=container_id,
                )
            ],
        }

    def _report_terminated(
        self,
        run: _PodRun,
        container: Mapping[str, Any],
        terminated: Mapping[str, Any],
        restarts: int,
        start_time: str,
        last_state: Mapping[str, Any] | None,
    ) -> None:
        succeeded = terminated["exitCode"] == 0 and not run.deadline_exceeded
        status: dict[str, Any] = {
            "phase": "Succeeded" if succeeded else "Failed",
            "hostIP": POD_IP,
            "podIP": POD_IP,
            "startTime": start_time,
            "conditions": self._conditions(False, "PodCompleted" if succeeded else "PodFailed"),
            "containerStatuses": [
                self._container_status(
                    container,
                    {"terminated": dict(terminated)},
                    restarts,
                    ready=False,
                    last_state=last_state,
                    container_id=str(terminated.get("containerID", "")),
                )
            ],
        }
        if run.deadline_exceeded:
            status["reason"] = "DeadlineExceeded"
            status["message"] = "Pod was active on the node longer than the specified deadline"
        self._patch_status(run.namespace, run.name, status)

    def _patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch pods/status, riding out API faults; a Pod deleted meanwhile is fine.

        Never raises: a status that cannot be written must not stop the kubelet from waiting
        for (and so reaping) the process.
        """
        try:
            self._kube.request(
                "PATCH",
                _pod_path(namespace, name, "status"),
                body={"status": status},
                content_type="application/merge-patch+json",
                retry_for=_RETRY_SECONDS,
            )
        except KubeError as exc:
            if exc.status != 404:
                logger.warning("could not update the status of pod %s/%s: %s", namespace, name, exc)
        except urllib3.exceptions.HTTPError as exc:
            logger.warning("could not update the status of pod %s/%s: %r", namespace, name, exc)

    def _finish_deletion(self, namespace: str, name: str, uid: str) -> None:
        """Complete a graceful deletion once the process is gone, as the kubelet does."""
        try:
            self._kube.request(
                "DELETE",
                _pod_path(namespace, name),
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                retry_for=_RETRY_SECONDS,
            )
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise


def main(argv: list[str] | None = None) -> None:
    """Run the kubelet until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", help="kubeconfig of the API server (default: $KUBECONFIG)")
    parser.add_argument(
        "--logs-dir", required=True, help="container logs: <dir>/<namespace>/<pod>.log"
    )
    parser.add_argument("--namespace", help="only run Pods of this namespace")
    parser.add_argument("--selector", "-l", help="only run Pods matching this label selector")
    parser.add_argument("--node-name", default="local-kubelet")
    parser.add_argument("--node-label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--max-cpu")
    parser.add_argument("--max-memory")
    parser.add_argument("--max-gpus", type=int, default=0)
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument(
        "--schedule-pods",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bind Pods itself (default); --no-schedule-pods leaves that to a real scheduler",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    kubelet = LocalKubelet(
        args.kubeconfig,
        logs_dir=args.logs_dir,
        namespace=args.namespace,
        label_selector=args.selector,
        node_name=args.node_name,
        node_labels=dict(label.split("=", 1) for label in args.node_label),
        max_cpu=args.max_cpu,
        max_memory=args.max_memory,
        max_gpus=args.max_gpus,
        max_parallel=args.max_parallel,
        schedule_pods=args.schedule_pods,
    )
    with kubelet:
        print(
            f"local kubelet {kubelet.node_name} running pods (logs: {kubelet.logs_dir})", flush=True
        )
        stopping.wait()


if __name__ == "__main__":
    main()
