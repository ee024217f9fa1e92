"""One shared watch of job Pods per namespace, dispatching events to whoever waits on a Pod.

Job Pods are watched, never polled: a single stream per watched namespace (or one for the
whole cluster) with a label selector carries the events of every Execution's Pods, and each
event goes to the listeners registered for that Pod's name. A broken stream resumes from
the last resourceVersion seen; when that is too old (410 Gone), the Pods are listed again
and every listener gets its Pod's current state, so no transition is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kredun.resource import JOB_POD_SELECTOR

from .errors import KubeApiError
from .kube import KubeClient, pods_path

logger = logging.getLogger(__name__)

WATCH_SECONDS = 300  # length of one watch request; the server ends it, we resume
MISSING = "MISSING"  # event type: a re-list did not contain the Pod

# Called from the watch thread with (event type, Pod); must return quickly.
Listener = Callable[[str, dict[str, Any]], None]


class PodWatcher:
    """`namespaces=None` watches the whole cluster."""

    def __init__(self, kube: KubeClient, namespaces: Sequence[str] | None) -> None:
        self._kube = kube
        self._scopes: list[str | None] = list(namespaces) if namespaces else [None]
        self._listeners: dict[tuple[str, str], list[Listener]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for scope in self._scopes:
            thread = threading.Thread(
                target=self._run, args=(scope,), name=f"pod-watch {scope or '*'}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()

    def register(self, namespace: str, name: str, listener: Listener) -> None:
        with self._lock:
            self._listeners.setdefault((namespace, name), []).append(listener)

    def unregister(self, namespace: str, name: str, listener: Listener) -> None:
        with self._lock:
            listeners = self._listeners.get((namespace, name), [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop((namespace, name), None)

    def _dispatch(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        with self._lock:
            key = (str(meta.get("namespace")), str(meta.get("name")))
            listeners = list(self._listeners.get(key, ()))
        for listener in listeners:
            try:
                listener(event_type, pod)
            except Exception:  # one broken listener must not stop the stream for all
                logger.exception("pod event listener failed for %s", meta.get("name"))

    def _relist(self, scope: str | None) -> str:
        """List the Pods, bring every listener up to date; the list's resourceVersion."""
        listing = self._kube.request(
            "GET", pods_path(scope), query={"labelSelector": JOB_POD_SELECTOR}
        )
        present = set()
        for pod in listing.get("items") or []:
            meta = pod["metadata"]
            present.add((meta["namespace"], meta["name"]))
            self._dispatch("ADDED", pod)
        with self._lock:
            missing = [
                key
                for key in self._listeners
                if key not in present and (scope is None or key[0] == scope)
            ]
        for namespace, name in missing:
            self._dispatch(MISSING, {"metadata": {"namespace": namespace, "name": name}})
        return str(listing["metadata"]["resourceVersion"])

    def _run(self, scope: str | None) -> None:
        version: str | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist(scope)
                query = {
                    "labelSelector": JOB_POD_SELECTOR,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(WATCH_SECONDS),
                }
                for event in self._kube.watch(pods_path(scope), query, WATCH_SECONDS + 30):
                    failures = 0
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            version = None  # too old to resume from: list again
                            break
                        raise KubeApiError(obj.get("code") or 500, "WatchError", str(obj))
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._dispatch(kind, obj)
            except KubeApiError as error:
                if error.status == 410:
                    version = None
                failures += 1
                delay = min(0.2 * 2**failures, 10.0)
                logger.warning(
                    "pod watch (%s) interrupted, again in %.1fs: %s", scope, delay, error
                )
                self._stopping.wait(delay)
