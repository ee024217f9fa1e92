"""An emulated Kubernetes API server for tests: real HTTP, in-memory state.

No kube-apiserver binary can be had on the test machines, yet the operator must be tested with
the real clients (kopf, the ``kubernetes`` Python client, ``kubectl``) over real HTTP. This
server implements the part of the API those clients use; see ``store.py`` for the semantics.

In-process use::

    with KubeApiServer() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        ...  # point clients at it; api.request_log records (verb, group, ..., name)

As a process (e.g. for ``kopf run`` in another process, or to poke at with kubectl)::

    python -m tests.support.kube.apiserver --port 0 --kubeconfig /tmp/kc --logs-dir /tmp/logs

Pod logs are files ``<logs_dir>/<namespace>/<pod>.log`` that the local kubelet writes; like a
real kubelet, it serves them beside the object storage, not through it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

import yaml
from aiohttp import web

from tests.support.kube import tables
from tests.support.kube.resources import ResourceRegistry, ResourceType
from tests.support.kube.selectors import SelectorError, object_matcher
from tests.support.kube.store import ApiError, ObjectStore, Watcher

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Deep enough to parse and deep-copy an object nested 10,000 levels (two frames a level).
DEEP_RECURSION_LIMIT = 25_000
DEEP_THREAD_STACK = 64 * 1024 * 1024
SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0+kredun-emulated",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_FAULT_REASONS = {
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_LOG_FOLLOW_POLL_SECONDS = 0.05


class RequestRecord(NamedTuple):
    """One resource request, in the terms of RBAC rules (to derive the operator's Role)."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str
    version: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None
    user: str | None = None  # the bearer token the client sent: who asked


@dataclass
class _Route:
    rtype: ResourceType
    namespace: str | None  # None: cluster-scoped, or all namespaces
    name: str | None
    subresource: str | None


@dataclass
class _Fault:
    status: int
    remaining: int | None  # None: until removed
    verb: str | None
    resource: str | None

    def applies_to(self, record: RequestRecord) -> bool:
        return self.verb in (None, record.verb) and self.resource in (None, record.resource)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _error(error: ApiError, headers: Mapping[str, str] | None = None) -> web.Response:
    response = _json(error.status(), status=error.code)
    response.headers.update(headers or {})
    return response


def _unsupported_media_type(content_type: str) -> ApiError:
    message = f"the body of the request was in an unknown format: {content_type}"
    return ApiError(415, "UnsupportedMediaType", message)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _encode_continue(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return base64.urlsafe_b64encode(
        json.dumps([meta.get("namespace", ""), meta["name"]]).encode()
    ).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ApiError.bad_request(f"invalid continue token {token!r}") from None
    return namespace, name


class KubeApiServer:
    """The emulated API server, serving from a background thread with its own event loop.

    ``stop()`` stops serving but keeps all state; ``start()`` serves it again on the same port
    (to test how clients survive an API outage). ``close()`` (or leaving the ``with`` block)
    stops for good.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        logs_dir: str | Path | None = None,
        request_log_path: str | Path | None = None,
        history_limit: int = 10_000,
        namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = ResourceRegistry.with_builtins()
        self.store = ObjectStore(self.registry, history_limit=history_limit)
        ns_type = self.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        for namespace in namespaces:
            self.store.create(ns_type, "", {"metadata": {"name": namespace}})
        self._owns_logs_dir = logs_dir is None
        self.logs_dir = (
            Path(logs_dir) if logs_dir else Path(tempfile.mkdtemp(prefix="kube-pod-logs-"))
        )
        self.request_log: list[RequestRecord] = []
        self._request_log_file: IO[str] | None = (
            open(request_log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed in close())
            if request_log_path
            else None
        )
        self._faults: list[_Fault] = []
        self._faults_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._recursion_limit = sys.getrecursionlimit()
        self._runner: web.AppRunner | None = None

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def serving(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._runner is not None

    def start(self) -> Self:
        """Start serving (again); returns self so ``api = KubeApiServer().start()`` works."""
        if self._loop is None:
            # A real API server stores objects nested up to 10,000 levels deep (the limit of
            # Go's JSON decoder); parsing and copying them here recurses in Python, which
            # needs a higher recursion limit and, for this thread, the stack to go with it.
            self._recursion_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(self._recursion_limit, DEEP_RECURSION_LIMIT))
            self._loop = asyncio.new_event_loop()
            stack = threading.stack_size(DEEP_THREAD_STACK)
            try:
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="kube-apiserver", daemon=True
                )
                self._thread.start()
            finally:
                threading.stack_size(stack)
        if self._runner is None:
            self._call(self._start_site())
        return self

    def stop(self) -> None:
        """Stop serving: close connections and end watches, keeping all objects."""
        if self._runner is not None:
            self._call(self._stop_site())

    def close(self) -> None:
        """Stop serving and release the thread, the request log file and an owned logs dir."""
        self.stop()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = self._thread = None
            sys.setrecursionlimit(self._recursion_limit)
        if self._request_log_file is not None:
            self._request_log_file.close()
            self._request_log_file = None
        if self._owns_logs_dir:
            shutil.rmtree(self.logs_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coro: Any, timeout: float = 30) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def _stop_site(self) -> None:
        assert self._runner is not None
        self.store.close_all_watchers()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    # ----------------------------------------------------------------------------- test helpers

    def write_kubeconfig(
        self, path: str | Path, *, namespace: str = "default", user: str = "emulated"
    ) -> Path:
        """Write a kubeconfig for this server; kubectl, kopf and the Python client accept it.
        Requests made with it are logged with `user` (sent as the bearer token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "emulated", "user": {"token": user}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "emulated", "namespace": namespace},
                }
            ],
            "current-context": "emulated",
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config), encoding="utf-8")
        return target

    def fail_next(
        self, n: int = 1, *, status: int = 500, verb: str | None = None, resource: str | None = None
    ) -> None:
        """Answer the next ``n`` matching resource requests with an error Status of ``status``."""
        with self._faults_lock:
            self._faults.append(_Fault(status, n, verb, resource))

    @contextlib.contextmanager
    def failing(
        self, status: int = 503, *, verb: str | None = None, resource: str | None = None
    ) -> Iterator[None]:
        """Answer every matching resource request with ``status`` while the block runs."""
        fault = _Fault(status, None, verb, resource)
        with self._faults_lock:
            self._faults.append(fault)
        try:
            yield
        finally:
            with self._faults_lock:
                self._faults.remove(fault)

    def objects(
        self, resource: str, *, group: str = "", namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """A snapshot of stored objects of a resource (by plural), for assertions."""

        async def snapshot() -> list[dict[str, Any]]:
            rtype = next(
                (
                    t
                    for t in self.registry.by_gvr.values()
                    if (t.group, t.plural) == (group, resource)
                ),
                None,
            )
            if rtype is None:
                return []
            return json.loads(json.dumps(self.store.list(rtype, namespace, lambda _obj: True)))

        if self._loop is None:
            raise RuntimeError("the server is not running")
        return self._call(snapshot())

    def watcher_count(self) -> int:
        """How many watch streams are open now (to check clients do not leak them)."""

        async def count() -> int:
            return self.store.watcher_count()

        return self._call(count())

    # ----------------------------------------------------------------------------- routing

    def _route(self, segments: list[str]) -> _Route | None:
        """Resolve a resource URL; None when the path is not a resource path at all."""
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 4:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return None
        if not rest:
            return None
        namespaced_type = (
            self.registry.get(group, version, rest[2])
            if rest[0] == "namespaces" and len(rest) >= 3
            else None
        )
        if namespaced_type is not None and namespaced_type.namespaced and len(rest) <= 5:
            rtype, namespace = namespaced_type, rest[1]
            name, subresource = [*rest[3:], None, None][:2]
        elif len(rest) <= 3:
            rtype = self.registry.get(group, version, rest[0])
            namespace = None
            name, subresource = [*rest[1:], None, None][:2]
            if rtype is not None and rtype.namespaced and name is not None:
                rtype = None  # a namespaced object addressed without its namespace
        else:
            rtype = None
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if subresource is not None and not (
            (subresource == "status" and rtype.status_subresource)
            or any(sub == subresource for sub, _, _ in rtype.extra_subresources)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Route(rtype, namespace, name, subresource)

    @staticmethod
    def _verb(method: str, route: _Route, query: Mapping[str, str]) -> str:
        if method == "GET":
            if route.name is not None:
                return "get"
            return "watch" if query.get("watch") in ("true", "1") else "list"
        if method == "POST" and (route.name is None or route.subresource is not None):
            return "create"
        if method == "PUT" and route.name is not None:
            return "update"
        if method == "PATCH" and route.name is not None:
            return "patch"
        if method == "DELETE":
            return "delete" if route.name is not None else "deletecollection"
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")

    def _record(self, record: RequestRecord) -> None:
        self.request_log.append(record)
        if self._request_log_file is not None:
            self._request_log_file.write(json.dumps(record._asdict()) + "\n")

    def _injected_fault(self, record: RequestRecord) -> web.Response | None:
        with self._faults_lock:
            fault = next((f for f in self._faults if f.applies_to(record)), None)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        reason = _FAULT_REASONS.get(fault.status, "InternalError")
        error = ApiError(
            fault.status, reason, f"injected fault: {reason}", {"retryAfterSeconds": 1}
        )
        return _error(error, {"Retry-After": "1"} if fault.status == 429 else None)

    # ----------------------------------------------------------------------------- handlers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        segments = [part for part in request.path.split("/") if part]
        try:
            route = self._route(segments)
            if route is None:
                return self._non_resource(segments)
            verb = self._verb(request.method, route, request.query)
            record = RequestRecord(
                verb,
                route.rtype.group,
                route.rtype.version,
                route.rtype.plural,
                route.subresource,
                route.namespace,
                route.name,
                request.headers.get("Authorization", "").removeprefix("Bearer ") or None,
            )
            self._record(record)
            fault = self._injected_fault(record)
            if fault is not None:
                return fault
            return await self._serve(request, route, verb)
        except ApiError as error:
            return _error(error)

    def _non_resource(self, segments: list[str]) -> web.Response:
        if segments == ["version"]:
            return _json(SERVER_VERSION)
        if segments in (["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if segments == ["api"]:
            return _json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                    ],
                }
            )
        if segments == ["apis"]:
            return _json(self.registry.api_group_list())
        document: dict[str, Any] | None = None
        if segments == ["api", "v1"]:
            document = self.registry.resource_list("", "v1")
        elif len(segments) == 2 and segments[0] == "apis":
            document = self.registry.api_group(segments[1])
        elif len(segments) == 3 and segments[0] == "apis":
            document = self.registry.resource_list(segments[1], segments[2])
        if document is None:  # includes /openapi/v2 and /openapi/v3: kubectl then skips validation
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(document)

    async def _serve(self, request: web.Request, route: _Route, verb: str) -> web.StreamResponse:
        rtype, store = route.rtype, self.store
        namespace = route.namespace or ""
        if verb == "watch":
            return await self._watch(request, route)
        if verb == "list":
            return self._list(request, route)
        if verb == "get":
            if route.subresource == "log":
                return await self._pod_log(request, route)
            return self._respond(request, rtype, store.get(rtype, namespace, route.name or ""))
        if verb == "deletecollection":
            return self._delete_collection(request, route)

        body = await self._read_body(request, verb)
        name = route.name or ""
        if verb == "create" and route.subresource == "binding":
            store.bind(namespace, name, body)
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
        if verb == "create":
            return self._respond(request, rtype, store.create(rtype, namespace, body), status=201)
        if verb == "update":
            return self._respond(
                request, rtype, store.update(rtype, namespace, name, body, route.subresource)
            )
        if verb == "patch":
            patch_type = _PATCH_TYPES[request.content_type]
            result = store.patch(rtype, namespace, name, patch_type, body, route.subresource)
            return self._respond(request, rtype, result)
        options = dict(body) if isinstance(body, dict) else {}
        for key in ("gracePeriodSeconds", "propagationPolicy"):
            if key in request.query:
                options[key] = request.query[key]
        return self._respond(request, rtype, store.delete(rtype, namespace, name, options))

    async def _read_body(self, request: web.Request, verb: str) -> Any:
        if verb == "patch" and request.content_type not in _PATCH_TYPES:
            raise _unsupported_media_type(request.content_type)
        raw = await request.read()
        if not raw:
            return {}
        declared = request.headers.get("Content-Type", "")  # the Python client may send none
        if declared and "json" not in declared and "yaml" not in declared:
            # e.g. protobuf, which kubectl's typed generators (kubectl create ns) send.
            raise _unsupported_media_type(declared)
        try:
            if "yaml" in request.content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"the request body could not be decoded: {exc}") from None

    def _present(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as served under the requested version (CRD versions share one storage)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        return {**obj, "apiVersion": rtype.api_version}

    def _respond(
        self, request: web.Request, rtype: ResourceType, obj: dict[str, Any], status: int = 200
    ) -> web.Response:
        if _wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return _json(
                tables.render_table(
                    rtype,
                    [obj],
                    resource_version=obj["metadata"]["resourceVersion"],
                    include_object=include,
                ),
                status,
            )
        return _json(self._present(rtype, obj), status)

    @staticmethod
    def _matcher(request: web.Request) -> Any:
        try:
            return object_matcher(
                request.query.get("labelSelector"), request.query.get("fieldSelector")
            )
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from None

    def _list(self, request: web.Request, route: _Route) -> web.Response:
        rtype = route.rtype
        items = self.store.list(rtype, route.namespace, self._matcher(request))
        if token := request.query.get("continue"):
            start = _decode_continue(token)
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        continue_token = None
        limit = int(request.query.get("limit") or 0)
        if 0 < limit < len(items):
            items = items[:limit]
            continue_token = _encode_continue(items[-1])
        resource_version = str(self.store.resource_version)
        if _wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            return _json(
                tables.render_table(
                    rtype,
                    items,
                    resource_version=resource_version,
                    include_object=include,
                    continue_token=continue_token,
                )
            )
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if continue_token:
            metadata["continue"] = continue_token
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": metadata,
            "items": [self._present(rtype, obj) for obj in items],
        }
        return _json(body)

    def _delete_collection(self, request: web.Request, route: _Route) -> web.Response:
        rtype = route.rtype
        deleted = []
        for obj in self.store.list(rtype, route.namespace, self._matcher(request)):
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):  # deleted meanwhile by garbage collection
                deleted.append(
                    self.store.delete(rtype, meta.get("namespace", ""), meta["name"], {})
                )
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "items": [self._present(rtype, obj) for obj in deleted],
        }
        return _json(body)

    async def _watch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        rtype = route.rtype
        query = request.query
        table = _wants_table(request)
        include = query.get("includeObject", "Metadata")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            watcher: Watcher | None = self.store.watch(
                rtype,
                route.namespace,
                self._matcher(request),
                query.get("resourceVersion"),
                send_initial_events=query.get("sendInitialEvents") == "true",
            )
            gone = None
        except ApiError as error:
            if error.code != 410:
                raise
            watcher, gone = None, error
        await response.prepare(request)
        if watcher is None:
            assert gone is not None
            await response.write(
                json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n"
            )
            return response

        def encode(event_type: str, obj: dict[str, Any]) -> bytes:
            if table and event_type != "BOOKMARK":
                version = obj["metadata"]["resourceVersion"]
                obj = tables.render_table(
                    rtype, [obj], resource_version=version, include_object=include
                )
            else:
                obj = self._present(rtype, obj)
            return (
                json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode()
                + b"\n"
            )

        # As in Kubernetes, 0 or no timeoutSeconds means the server's default; here: no timeout.
        timeout = float(query.get("timeoutSeconds") or 0) or None
        try:
            async with asyncio.timeout(timeout):
                while (item := await watcher.queue.get()) is not None:
                    chunk = [encode(*item)]
                    while (
                        not watcher.queue.empty()
                        and (item := watcher.queue.get_nowait()) is not None
                    ):
                        chunk.append(encode(*item))
                    await response.write(b"".join(chunk))
                    if item is None:
                        break
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self.store.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _pod_log(self, request: web.Request, route: _Route) -> web.StreamResponse:
        pods = route.rtype
        namespace, name = route.namespace or "", route.name or ""
        pod = self.store.get(pods, namespace, name)
        containers = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
        container = request.query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        path = self.logs_dir / namespace / f"{name}.log"
        if not path.exists():
            if pod.get("status", {}).get("phase", "Pending") == "Pending":
                raise ApiError.bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: '
                    "ContainerCreating"
                )
            return web.Response(body=b"", content_type="text/plain")
        data = path.read_bytes()
        if tail := request.query.get("tailLines"):
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :]) if int(tail) > 0 else b""
        if request.query.get("follow") not in ("true", "1"):
            if limit := request.query.get("limitBytes"):
                data = data[: int(limit)]
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(data)
        offset = path.stat().st_size
        while True:
            current = self.store.find(pods, namespace, name)
            finished = current is None or current.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            )
            with path.open("rb") as stream:
                stream.seek(offset)
                more = stream.read()
            if more:
                offset += len(more)
                await response.write(more)
            if finished or current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                break
            await asyncio.sleep(_LOG_FOLLOW_POLL_SECONDS)
        await response.write_eof()
        return response


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; print the URL once ready and write the kubeconfig if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    parser.add_argument(
        "--logs-dir", help="pod logs: <dir>/<namespace>/<pod>.log (the kubelet's --logs-dir)"
    )
    parser.add_argument("--request-log", help="append every resource request as a JSON line here")
    parser.add_argument(
        "--history-limit", type=int, default=10_000, help="watch events kept per resource"
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    logs_dir = args.logs_dir
    if logs_dir:
        Path(logs_dir).mkdir(parents=True, exist_ok=True)
    server = KubeApiServer(
        host=args.host,
        port=args.port,
        logs_dir=logs_dir,
        request_log_path=args.request_log,
        history_limit=args.history_limit,
    )
    with server:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(
            f"emulated kube-apiserver serving on {server.url} (logs: {server.logs_dir})", flush=True
        )
        stopping.wait()


if __name__ == "__main__":
    main()
