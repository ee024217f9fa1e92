"""A small JSON client for the Kubernetes API, safe to share between threads.

The operator's own requests (Pods, status, Events, watches) go through here rather than
through kopf: they are made from the scheduler threads, not kopf's event loop. The
`kubernetes` package provides the credentials (kubeconfig or in-cluster service account)
and the pooled HTTP stack; its generated model classes are not used, as plain dicts are all
the operator needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from kredun.resource import GROUP, PLURAL, VERSION

from .errors import KubeApiError, SettingsError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
POOL_SIZE = 64  # concurrent connections: watches, status patches, Pod creations

ErrorHook = Callable[[KubeApiError], None]


class KubeClient:
    def __init__(self, api_client: Any, on_error: ErrorHook | None = None) -> None:
        self._client = api_client
        self._on_error = on_error

    @classmethod
    def from_environment(cls, on_error: ErrorHook | None = None) -> KubeClient:
        """In a Pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
        import kubernetes.client
        import kubernetes.config

        configuration = kubernetes.client.Configuration()
        loaders: Any = kubernetes.config  # its loaders carry no annotations
        try:
            loaders.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            try:
                loaders.load_kube_config(client_configuration=configuration)
            except (kubernetes.config.ConfigException, OSError) as error:
                raise SettingsError(
                    f"no Kubernetes credentials: not in a Pod, and no usable kubeconfig "
                    f"($KUBECONFIG or ~/.kube/config): {error}"
                ) from None
        configuration.connection_pool_maxsize = POOL_SIZE
        return cls(kubernetes.client.ApiClient(configuration), on_error)

    def close(self) -> None:
        self._client.close()

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        method, url, headers, body, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self._client.rest_client.request(
                method, url, headers=headers, body=body, _request_timeout=timeout
            )
        except Exception as error:  # connection refused, timeouts, TLS: no answer at all
            raise self._failed(KubeApiError(0, "Unreachable", str(error))) from None

    def _failed(self, error: KubeApiError) -> KubeApiError:
        if self._on_error is not None:
            self._on_error(error)
        return error

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer. Raises KubeApiError."""
        response = self._send(method, path, query, body, content_type, timeout)
        data = response.read()
        if response.status >= 400:
            raise self._failed(_api_error(response.status, data))
        return json.loads(data) if data else {}

    def text(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """A plain-text GET, such as a Pod's log."""
        response = self._send("GET", path, query, None, JSON, 30.0)
        data = response.read()
        if response.status >= 400:
            raise self._failed(_api_error(response.status, data))
        text: str = data.decode("utf-8", errors="replace")
        return text

    def watch(
        self, path: str, query: Mapping[str, str], timeout: float
    ) -> Iterator[dict[str, Any]]:
        """Watch events (dicts with `type` and `object`) until the server ends the stream."""
        query = {**query, "watch": "true"}
        response = self._send("GET", path, query, None, JSON, (10.0, timeout))
        if response.status >= 400:
            raise self._failed(_api_error(response.status, response.read()))
        stream = response.response
        try:
            pending = b""
            for chunk in stream.stream(65536, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except Exception as error:
            raise self._failed(KubeApiError(0, "WatchBroken", str(error))) from None
        finally:
            stream.release_conn()


def _api_error(status: int, data: bytes) -> KubeApiError:
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or data.decode("utf-8", errors="replace")[:300]
    return KubeApiError(status, str(body.get("reason") or "Error"), message)


def pods_path(namespace: str | None, name: str = "", subresource: str = "") -> str:
    """The Pod collection of a namespace (None: of the cluster), or one Pod."""
    path = f"/api/v1/namespaces/{quote(namespace)}/pods" if namespace else "/api/v1/pods"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def executions_path(namespace: str, name: str, subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}"
    return f"{path}/{subresource}" if subresource else path


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/events"
