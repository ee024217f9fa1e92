"""In-memory object storage with the semantics clients of the Kubernetes API depend on.

Everything here runs on the API server's event loop thread and never awaits, so each public
method is atomic with respect to the others: a write, its watch events and the controller work
it triggers (garbage collection, namespace and CRD cleanup) happen as one step.

Semantics kept (because kopf, kubectl or the Python client rely on them):
- one global, monotonically increasing resourceVersion; every write is exactly one watch event;
  writes that change nothing are no-ops (no new resourceVersion, no event), like etcd-backed
  Kubernetes, so controllers that re-apply the same patch do not loop;
- a bounded per-resource event history for ``watch`` from a resourceVersion, and 410 Gone for
  versions older than what was dropped from it;
- status subresource split, generation bumps, finalizers and deletionTimestamp, graceful pod
  deletion (a bound, running Pod stays until its kubelet confirms with gracePeriodSeconds=0),
  ownerReference garbage collection, namespace and CRD deletion that empty their contents first.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import secrets
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.kube import patches
from tests.support.kube.resources import (
    InvalidDefinition,
    ResourceRegistry,
    ResourceType,
    accepted_crd_status,
    resource_types_from_crd,
)

Object = dict[str, Any]
Matcher = Callable[[Mapping[str, Any]], bool]

PODS = ("", "pods")
NAMESPACES = ("", "namespaces")
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
SECRETS = ("", "secrets")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
TERMINAL_POD_PHASES = ("Succeeded", "Failed")
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
_NO_NEW_FINALIZERS = (
    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"
)


def now_timestamp(offset_seconds: float = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def qualified_resource(rtype: ResourceType) -> str:
    """How the real API server names a resource in messages: ``pods``, ``widgets.example.com``."""
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


class ApiError(Exception):
    """An error the HTTP layer turns into a ``kind: Status`` response with this code."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Object:
        body: Object = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, rtype: ResourceType, name: str) -> ApiError:
        details = {"name": name, "group": rtype.group, "kind": rtype.plural}
        return cls(404, "NotFound", f'{qualified_resource(rtype)} "{name}" not found', details)

    @classmethod
    def conflict(cls, rtype: ResourceType, name: str, why: str) -> ApiError:
        details = {"name": name, "group": rtype.group, "kind": rtype.plural}
        message = f'Operation cannot be fulfilled on {qualified_resource(rtype)} "{name}": {why}'
        return cls(409, "Conflict", message, details)

    @classmethod
    def invalid(cls, rtype: ResourceType, name: str, why: str) -> ApiError:
        details = {"name": name, "group": rtype.group, "kind": rtype.kind}
        kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
        message = f'{kind} "{name}" is invalid: {why}'
        return cls(422, "Invalid", message, details)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Gone", message)


@dataclass
class Change:
    """One committed write: the watch event every matching watcher receives."""

    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Object
    old: Object | None
    namespace: str


class Watcher:
    """A subscription of one watch request; events queue up until the HTTP layer streams them.

    A ``None`` in the queue means the stream must end (server stopping, resource removed).
    """

    def __init__(
        self, storage_key: tuple[str, str], namespace: str | None, matcher: Matcher
    ) -> None:
        self.storage_key = storage_key
        self.namespace = namespace
        self.matcher = matcher
        self.queue: asyncio.Queue[tuple[str, Object] | None] = asyncio.Queue()

    def offer(self, change: Change) -> None:
        """Queue a change as the event this watcher sees, honouring its selectors.

        As in Kubernetes, an object that starts or stops matching the selectors is seen as
        ADDED or DELETED by this watcher.
        """
        if self.namespace is not None and change.namespace != self.namespace:
            return
        new_matches = self.matcher(change.obj)
        if change.type != "MODIFIED":
            if new_matches:
                self.queue.put_nowait((change.type, change.obj))
            return
        old_matches = change.old is not None and self.matcher(change.old)
        if new_matches:
            self.queue.put_nowait(("MODIFIED" if old_matches else "ADDED", change.obj))
        elif old_matches:
            self.queue.put_nowait(("DELETED", change.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


def _strip_resource_version(obj: Object) -> Object:
    stripped = dict(obj)
    stripped["metadata"] = {
        k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"
    }
    return stripped


def _spec_part(obj: Object, status_is_separate: bool) -> Object:
    """What a change must touch to bump metadata.generation."""
    ignored = {"metadata", "status"} if status_is_separate else {"metadata"}
    return {k: v for k, v in obj.items() if k not in ignored}


class ObjectStore:
    """All objects of one emulated cluster, their watch history and watchers."""

    def __init__(self, registry: ResourceRegistry, *, history_limit: int = 10_000) -> None:
        self.registry = registry
        self.history_limit = history_limit
        self.resource_version = 0
        self._objects: dict[tuple[str, str], dict[tuple[str, str], Object]] = {}
        self._history: dict[tuple[str, str], deque[Change]] = {}
        self._dropped_up_to: dict[tuple[str, str], int] = {}
        self._watchers: dict[tuple[str, str], set[Watcher]] = {}
        self._by_uid: dict[str, tuple[ResourceType, str, str]] = {}
        self._dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids
        self._namespace_population: Counter[str] = Counter()
        self._deferred: deque[Callable[[], None]] = deque()

    # ----------------------------------------------------------------------------- reading

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Object:
        obj = self._objects.get(rtype.storage_key, {}).get((namespace, name))
        if obj is None:
            raise ApiError.not_found(rtype, name)
        return obj

    def find(self, rtype: ResourceType, namespace: str, name: str) -> Object | None:
        return self._objects.get(rtype.storage_key, {}).get((namespace, name))

    def list(self, rtype: ResourceType, namespace: str | None, matcher: Matcher) -> list[Object]:
        """Matching objects in key order (namespace, name), as etcd would return them."""
        storage = self._objects.get(rtype.storage_key, {})
        return [
            obj
            for (ns, _), obj in sorted(storage.items(), key=lambda item: item[0])
            if (namespace is None or ns == namespace) and matcher(obj)
        ]

    # ----------------------------------------------------------------------------- watching

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        matcher: Matcher,
        since: str | None,
        *,
        send_initial_events: bool = False,
    ) -> Watcher:
        """Register a watcher, pre-filled with what it must see first.

        With no resourceVersion (or "0"), that is the current state as ADDED events; with one,
        every retained change after it. Raises 410 Gone if changes after it were dropped.
        """
        key = rtype.storage_key
        watcher = Watcher(key, namespace, matcher)
        if since in (None, "", "0") or send_initial_events:
            current = self.list(rtype, namespace, matcher)
            for obj in sorted(current, key=lambda o: int(o["metadata"]["resourceVersion"])):
                watcher.queue.put_nowait(("ADDED", obj))
            if send_initial_events:
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": str(self.resource_version),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                watcher.queue.put_nowait(("BOOKMARK", bookmark))
        else:
            try:
                since_version = int(since)
            except ValueError:
                raise ApiError.bad_request(f"invalid resourceVersion {since!r}") from None
            oldest_kept = self._dropped_up_to.get(key, 0)
            if since_version < oldest_kept:
                raise ApiError.gone(
                    f"too old resource version: {since_version} ({oldest_kept + 1})"
                )
            replay: list[Change] = []
            for change in reversed(self._history.get(key, ())):
                if change.resource_version <= since_version:
                    break
                replay.append(change)
            for change in reversed(replay):
                watcher.offer(change)
        self._watchers.setdefault(key, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.storage_key, set()).discard(watcher)

    def close_all_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.close()
            watchers.clear()

    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    # ----------------------------------------------------------------------------- writing

    def create(self, rtype: ResourceType, namespace: str, body: Any) -> Object:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError.bad_request("the request body must be an object with object metadata")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or self._generate_name(rtype, namespace, meta.get("generateName"))
        if "/" in name:
            raise ApiError.invalid(rtype, name, "metadata.name: Invalid value: may not contain '/'")
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the "
                    "request"
                )
            self._require_open_namespace(namespace)
        else:
            namespace = ""
        if self.find(rtype, namespace, name) is not None:
            details = {"name": name, "group": rtype.group, "kind": rtype.plural}
            raise ApiError(
                409,
                "AlreadyExists",
                f'{qualified_resource(rtype)} "{name}" already exists',
                details,
            )

        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        for transient in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            meta.pop(transient, None)
        meta.update(
            name=name, uid=str(uuid.uuid4()), creationTimestamp=now_timestamp(), generation=1
        )
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rtype.status_subresource and rtype.crd_name:
            obj.pop("status", None)
        self._default_on_create(rtype, obj)
        self._normalize(rtype, obj)

        new_types = self._crd_types(rtype, obj)
        created = self._commit(rtype, "ADDED", obj, None)
        if new_types is not None:
            self.registry.add(new_types)
        if meta.get("ownerReferences"):
            uid = meta["uid"]
            self._deferred.append(lambda: self._collect_if_orphaned(uid))
        self._run_deferred()
        return created

    def update(
        self, rtype: ResourceType, namespace: str, name: str, body: Any, subresource: str | None
    ) -> Object:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the request body must be an object")
        old = self.get(rtype, namespace, name)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise ApiError.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        return self._write(rtype, old, body, subresource)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        subresource: str | None,
    ) -> Object:
        """Apply a patch; ``patch_type`` is one of json, merge, strategic, apply."""
        old = self.find(rtype, namespace, name)
        if old is None:
            if patch_type == "apply" and subresource is None:
                return self.create(rtype, namespace, patch)
            raise ApiError.not_found(rtype, name)
        try:
            if patch_type == "json":
                candidate = patches.json_patch(old, patch)
            elif patch_type == "strategic":
                candidate = patches.strategic_merge_patch(old, patch)
            else:
                if not isinstance(patch, dict):
                    raise patches.PatchError("a merge patch must be a JSON object")
                candidate = patches.merge_patch(old, patch)
        except patches.PatchError as exc:
            raise ApiError.invalid(rtype, name, str(exc)) from None
        if not isinstance(candidate, dict):
            raise ApiError.invalid(rtype, name, "the patched object is not a JSON object")
        return self._write(rtype, old, candidate, subresource)

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: Mapping[str, Any]
    ) -> Object:
        obj = self.get(rtype, namespace, name)
        preconditions = options.get("preconditions") or {}
        meta = obj["metadata"]
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise ApiError.conflict(
                rtype, name, "Precondition failed: UID in precondition does not match"
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise ApiError.conflict(rtype, name, _MODIFIED)
        if options.get("propagationPolicy") == "Orphan":
            self._orphan_dependents(meta["uid"])
        result = self._delete(rtype, obj, options.get("gracePeriodSeconds"))
        self._run_deferred()
        return result

    def bind(self, namespace: str, name: str, body: Any) -> None:
        """The pods/binding subresource: what a scheduler uses to assign a Pod to a node."""
        rtype = self._type_of(PODS)
        pod = self.get(rtype, namespace, name)
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not target:
            raise ApiError.invalid(rtype, name, "target.name: Required value")
        if pod.get("spec", {}).get("nodeName"):
            raise ApiError.conflict(
                rtype, name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"'
            )
        new = copy.deepcopy(pod)
        new.setdefault("spec", {})["nodeName"] = target
        conditions = [
            c
            for c in new.setdefault("status", {}).get("conditions", [])
            if c.get("type") != "PodScheduled"
        ]
        conditions.insert(
            0, {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_timestamp()}
        )
        new["status"]["conditions"] = conditions
        self._commit(rtype, "MODIFIED", new, pod)
        self._run_deferred()

    # ----------------------------------------------------------------------------- internals

    def _type_of(self, storage_key: tuple[str, str]) -> ResourceType:
        return next(t for t in self.registry.by_gvr.values() if t.storage_key == storage_key)

    def _generate_name(self, rtype: ResourceType, namespace: str, prefix: str | None) -> str:
        if not prefix:
            raise ApiError.invalid(
                rtype, "", "metadata.name: Required value: name or generateName is required"
            )
        ns = namespace if rtype.namespaced else ""
        while True:
            name = prefix + "".join(secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(5))
            if self.find(rtype, ns, name) is None:
                return name

    def _require_open_namespace(self, namespace: str) -> None:
        ns_type = self._type_of(NAMESPACES)
        ns = self.find(ns_type, "", namespace)
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    def _default_on_create(self, rtype: ResourceType, obj: Object) -> None:
        """The defaulting the real API server applies to kinds this emulator gives meaning to."""
        if rtype.storage_key == PODS:
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            resources = [
                c.get("resources") for c in spec.get("containers", []) if c.get("resources")
            ]
            obj["status"] = {
                "phase": "Pending",
                "qosClass": "Burstable" if resources else "BestEffort",
            }
        elif rtype.storage_key == NAMESPACES:
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]
        elif rtype.storage_key == CRDS:
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)

    @staticmethod
    def _normalize(rtype: ResourceType, obj: Object) -> None:
        """Conversions the real API server makes on every write: Secret stringData into data."""
        if rtype.storage_key == SECRETS and isinstance(obj.get("stringData"), dict):
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def _crd_types(self, rtype: ResourceType, crd: Object) -> list[ResourceType] | None:
        """Validate a CRD being written and fill its status; None for any other kind."""
        if rtype.storage_key != CRDS:
            return None
        try:
            types = resource_types_from_crd(crd)
        except InvalidDefinition as exc:
            raise ApiError.invalid(rtype, crd["metadata"].get("name", ""), str(exc)) from None
        for new_type in types:
            existing = self.registry.get(new_type.group, new_type.version, new_type.plural)
            if existing is not None and existing.crd_name != new_type.crd_name:
                raise ApiError.invalid(
                    rtype, crd["metadata"]["name"], "spec.group: resource is already served"
                )
        crd["status"] = accepted_crd_status(crd)
        return types

    def _write(
        self, rtype: ResourceType, old: Object, candidate: Object, subresource: str | None
    ) -> Object:
        """Store a new version of an existing object, enforcing what clients may not change."""
        name = old["metadata"]["name"]
        if not isinstance(candidate.get("metadata", {}), dict):
            raise ApiError.bad_request("metadata must be an object")
        candidate_meta = candidate.get("metadata") or {}
        expected_version = candidate_meta.get("resourceVersion")
        if expected_version and expected_version != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rtype, name, _MODIFIED)
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in candidate:
                new["status"] = copy.deepcopy(candidate["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(candidate)
            if rtype.status_subresource:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for immutable in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if immutable in old_meta:
                meta[immutable] = old_meta[immutable]
            else:
                meta.pop(immutable, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise ApiError.invalid(
                    rtype,
                    name,
                    _NO_NEW_FINALIZERS,
                )
        self._normalize(rtype, new)
        separate_status = rtype.status_subresource
        if _spec_part(new, separate_status) != _spec_part(old, separate_status):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        new_types = self._crd_types(rtype, new)
        if new == old:
            return old  # a no-op write: no new resourceVersion and no watch event
        stored = self._commit(rtype, "MODIFIED", new, old)
        if new_types is not None:
            self.registry.remove_crd(stored["metadata"]["name"])
            self.registry.add(new_types)
        self._after_modification(rtype, stored)
        self._run_deferred()
        return self.find(rtype, meta.get("namespace", ""), name) or stored

    def _delete(self, rtype: ResourceType, obj: Object, grace_period: Any) -> Object:
        meta = obj["metadata"]
        if rtype.storage_key == NAMESPACES:
            return self._delete_namespace(rtype, obj)
        grace = 0
        if rtype.storage_key == PODS:
            grace = self._pod_grace_period(obj, grace_period)
        if grace > 0 or meta.get("finalizers"):
            new = copy.deepcopy(obj)
            new_meta = new["metadata"]
            if not new_meta.get("deletionTimestamp"):
                new_meta["deletionTimestamp"] = now_timestamp(grace)
                new_meta["deletionGracePeriodSeconds"] = grace
            else:  # a repeated delete may only shorten the grace period
                new_meta["deletionGracePeriodSeconds"] = min(
                    grace, new_meta.get("deletionGracePeriodSeconds") or 0
                )
            if new == obj:
                return obj
            stored = self._commit(rtype, "MODIFIED", new, obj)
            self._after_modification(rtype, stored)
            return stored
        return self._remove(rtype, obj)

    @staticmethod
    def _pod_grace_period(pod: Object, requested: Any) -> int:
        """Pods on a node get a graceful deletion their kubelet completes; others go at once."""
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in TERMINAL_POD_PHASES:
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        try:
            return max(0, int(requested))
        except (TypeError, ValueError):
            raise ApiError.bad_request(f"invalid gracePeriodSeconds {requested!r}") from None

    def _after_modification(self, rtype: ResourceType, obj: Object) -> None:
        """Finish deletions whose finalizers are all gone; start a terminating CRD's cleanup."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        if rtype.storage_key == CRDS and CRD_CLEANUP_FINALIZER in (meta.get("finalizers") or []):
            crd_name = meta["name"]
            self._deferred.append(lambda: self._cleanup_crd(crd_name))
        elif not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"):
            current = self.find(rtype, meta.get("namespace", ""), meta["name"])
            if current is not None:
                self._remove(rtype, current)

    def _remove(self, rtype: ResourceType, obj: Object) -> Object:
        final = copy.deepcopy(obj)
        removed = self._commit(rtype, "DELETED", final, obj)
        uid = obj["metadata"]["uid"]
        self._deferred.append(lambda: self._collect_dependents(uid))
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self._deferred.append(lambda: self._finish_namespace_if_empty(namespace))
        if rtype.crd_name:
            crd_name = rtype.crd_name
            self._deferred.append(lambda: self._cleanup_crd(crd_name))
        if rtype.storage_key == CRDS:
            self._forget_crd(obj)
        return removed

    def _commit(
        self, rtype: ResourceType, event_type: str, new: Object, old: Object | None
    ) -> Object:
        """Give a write its resourceVersion, store it, record and fan out its watch event."""
        self.resource_version += 1
        new["metadata"]["resourceVersion"] = str(self.resource_version)
        meta = new["metadata"]
        namespace, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        storage = self._objects.setdefault(rtype.storage_key, {})
        if event_type == "DELETED":
            del storage[(namespace, name)]
            self._by_uid.pop(uid, None)
            self._namespace_population[namespace] -= 1
        else:
            storage[(namespace, name)] = new
            self._by_uid[uid] = (rtype, namespace, name)
            if old is None:
                self._namespace_population[namespace] += 1
        self._index_owners(uid, old, new if event_type != "DELETED" else None)

        change = Change(self.resource_version, event_type, new, old, namespace)
        history = self._history.setdefault(rtype.storage_key, deque(maxlen=self.history_limit))
        if len(history) == history.maxlen:
            self._dropped_up_to[rtype.storage_key] = history[0].resource_version
        history.append(change)
        for watcher in self._watchers.get(rtype.storage_key, ()):
            watcher.offer(change)
        return new

    def _index_owners(self, uid: str, old: Object | None, new: Object | None) -> None:
        def owners(obj: Object | None) -> set[str]:
            refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
            return {ref["uid"] for ref in refs if isinstance(ref, dict) and ref.get("uid")}

        before, after = owners(old), owners(new)
        for owner in before - after:
            self._dependents.get(owner, set()).discard(uid)
        for owner in after - before:
            self._dependents.setdefault(owner, set()).add(uid)

    def _run_deferred(self) -> None:
        """Run controller work (GC, cleanups) queued by writes, including work it queues itself."""
        while self._deferred:
            self._deferred.popleft()()

    def _owner_alive(self, ref: Mapping[str, Any], dependent_namespace: str) -> bool:
        """An owner counts only if it exists where Kubernetes looks: same namespace or cluster."""
        found = self._by_uid.get(ref.get("uid", ""))
        if found is None:
            return False
        owner_type, owner_namespace, _ = found
        return not owner_type.namespaced or owner_namespace == dependent_namespace

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background-propagation garbage collection for the dependents of a removed owner."""
        for dependent_uid in sorted(self._dependents.pop(owner_uid, set())):
            self._collect_if_orphaned(dependent_uid)

    def _collect_if_orphaned(self, uid: str) -> None:
        found = self._by_uid.get(uid)
        if found is None:
            return
        rtype, namespace, name = found
        obj = self.get(rtype, namespace, name)
        refs = obj["metadata"].get("ownerReferences") or []
        live = [ref for ref in refs if self._owner_alive(ref, namespace)]
        if not refs or live == refs:
            return
        if live:
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = live
            self._commit(rtype, "MODIFIED", new, obj)
        elif not obj["metadata"].get("deletionTimestamp"):
            self._delete(rtype, obj, None)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for dependent_uid in sorted(self._dependents.pop(owner_uid, set())):
            found = self._by_uid.get(dependent_uid)
            if found is None:
                continue
            rtype, namespace, name = found
            obj = self.get(rtype, namespace, name)
            new = copy.deepcopy(obj)
            refs = new["metadata"].get("ownerReferences") or []
            new["metadata"]["ownerReferences"] = [
                ref for ref in refs if ref.get("uid") != owner_uid
            ]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._commit(rtype, "MODIFIED", new, obj)

    def _objects_in_namespace(self, namespace: str) -> Iterator[tuple[ResourceType, Object]]:
        for storage_key, storage in list(self._objects.items()):
            objects = [obj for (ns, _), obj in storage.items() if ns == namespace]
            if objects:
                rtype = self._type_of(storage_key)
                yield from ((rtype, obj) for obj in objects)

    def _delete_namespace(self, rtype: ResourceType, ns: Object) -> Object:
        """Mark the namespace Terminating, delete its contents, and remove it once it is empty."""
        current = ns
        if not ns["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(ns)
            new["metadata"]["deletionTimestamp"] = now_timestamp()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            current = self._commit(rtype, "MODIFIED", new, ns)
        name = ns["metadata"]["name"]
        for content_type, obj in list(self._objects_in_namespace(name)):
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(content_type, obj, None)
        self._deferred.append(lambda: self._finish_namespace_if_empty(name))
        return current

    def _finish_namespace_if_empty(self, namespace: str) -> None:
        ns_type = self._type_of(NAMESPACES)
        ns = self.find(ns_type, "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if self._namespace_population[namespace] == 0:
            self._remove(ns_type, ns)

    def _cleanup_crd(self, crd_name: str) -> None:
        """While a CRD is terminating, delete its objects; drop its finalizer once none are left."""
        crd_type = self._type_of(CRDS)
        crd = self.find(crd_type, "", crd_name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        storage_key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        remaining = list(self._objects.get(storage_key, {}).values())
        if remaining:
            served = self._type_of(storage_key)
            for obj in remaining:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(served, obj, None)
            return
        new = copy.deepcopy(crd)
        new["metadata"]["finalizers"] = [
            f for f in crd["metadata"].get("finalizers", []) if f != CRD_CLEANUP_FINALIZER
        ]
        stored = self._commit(crd_type, "MODIFIED", new, crd)
        self._after_modification(crd_type, stored)

    def _forget_crd(self, crd: Object) -> None:
        """Stop serving a removed CRD's resource and end the watches on it."""
        storage_key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        self.registry.remove_crd(crd["metadata"]["name"])
        self._objects.pop(storage_key, None)
        self._history.pop(storage_key, None)
        self._dropped_up_to[storage_key] = self.resource_version
        for watcher in self._watchers.pop(storage_key, set()):
            watcher.close()
