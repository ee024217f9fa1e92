"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

kubectl renders whatever columns the server sends, so this decides what ``kubectl get`` shows:
NAME plus a CRD's ``additionalPrinterColumns`` (NAME and AGE if it declares none), and a few
familiar columns for the built-in kinds.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tests.support.kube.resources import ResourceType

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\['([^']*)'\]|\[\?\(@\.([\w.\-/]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[\*\]"
)


def evaluate_json_path(obj: Any, path: str) -> Any:
    """Evaluate the simple JSONPath subset CRD printer columns use.

    Supports ``.field``, ``[0]``, ``['key.with.dots']``, ``[*]`` and ``[?(@.type=="Ready")]``
    (filters and wildcards keep the first match, as a printer column shows one value).
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    position, node = 0, obj
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return None
        position = match.end()
        field, index, quoted, filter_key, filter_value = match.groups()
        if field is not None or quoted is not None:
            key = field if field is not None else quoted
            node = node.get(key) if isinstance(node, Mapping) else None
        elif index is not None:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        elif filter_key is not None:
            candidates = node if isinstance(node, list) else []
            node = next(
                (c for c in candidates if str(_dig(c, filter_key.split("."))) == filter_value), None
            )
        else:  # [*]
            node = node[0] if isinstance(node, list) and node else None
        if node is None:
            return None
    return node


def _dig(node: Any, keys: list[str]) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def human_duration(timestamp: str | None) -> str:
    """Age the way kubectl prints it: 5s, 3m12s, 2h, 4d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _cell(value: Any, column_type: str) -> Any:
    if value is None:
        return None
    if column_type == "integer" and isinstance(value, int | float | str):
        try:
            return int(value)
        except ValueError:
            return value
    if column_type == "number" and isinstance(value, int | float):
        return value
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if column_type == "date" and isinstance(value, str):
        return human_duration(value)  # kubectl prints the cell as is, so the server renders ages
    return str(value) if column_type == "string" else value


Column = tuple[Mapping[str, Any], Callable[[Mapping[str, Any]], Any]]


def _column(
    name: str, column_type: str, getter: Callable[[Mapping[str, Any]], Any], priority: int = 0
) -> Column:
    definition = {
        "name": name,
        "type": column_type,
        "format": "",
        "description": name,
        "priority": priority,
    }
    return definition, getter


def _age(obj: Mapping[str, Any]) -> str:
    return human_duration(obj.get("metadata", {}).get("creationTimestamp"))


def _pod_status(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") and status.get("phase") not in (
        "Succeeded",
        "Failed",
    ):
        return "Terminating"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        reason = (state.get("waiting") or state.get("terminated") or {}).get("reason")
        if reason:
            return reason
    return status.get("phase", "Pending")


def _pod_ready(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_restarts(pod: Mapping[str, Any]) -> int:
    return sum(
        s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _involved_object(event: Mapping[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


_NAME_COLUMN = (
    {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name of the object",
        "priority": 0,
    },
    lambda obj: obj.get("metadata", {}).get("name"),
)

_BUILTIN_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        _column("Ready", "string", _pod_ready),
        _column("Status", "string", _pod_status),
        _column("Restarts", "integer", _pod_restarts),
        _column("Age", "string", _age),
        _column("IP", "string", lambda pod: (pod.get("status") or {}).get("podIP"), priority=1),
        _column("Node", "string", lambda pod: (pod.get("spec") or {}).get("nodeName"), priority=1),
    ],
    ("", "namespaces"): [
        _column("Status", "string", lambda ns: (ns.get("status") or {}).get("phase")),
        _column("Age", "string", _age),
    ],
    ("", "configmaps"): [
        _column(
            "Data",
            "integer",
            lambda cm: len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
        ),
        _column("Age", "string", _age),
    ],
    ("", "events"): [
        _column("Type", "string", lambda ev: ev.get("type")),
        _column("Reason", "string", lambda ev: ev.get("reason")),
        _column("Object", "string", _involved_object),
        _column("Message", "string", lambda ev: ev.get("message")),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _column(
            "Created At", "string", lambda crd: crd.get("metadata", {}).get("creationTimestamp")
        ),
    ],
}


def columns_for(rtype: ResourceType) -> list[Column]:
    """The NAME column followed by the kind's own columns."""
    if rtype.crd_name is not None:
        printer_columns = rtype.printer_columns or (
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        )
        custom = [
            (
                {
                    "name": column["name"],
                    "type": column.get("type", "string"),
                    "format": column.get("format", ""),
                    "description": column.get("description", ""),
                    "priority": column.get("priority", 0),
                },
                _json_path_getter(column["jsonPath"], column.get("type", "string")),
            )
            for column in printer_columns
        ]
        return [_NAME_COLUMN, *custom]
    return [
        _NAME_COLUMN,
        *_BUILTIN_COLUMNS.get(rtype.storage_key, [_column("Age", "string", _age)]),
    ]


def _json_path_getter(path: str, column_type: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda obj: _cell(evaluate_json_path(obj, path), column_type)


def _row_object(obj: Mapping[str, Any], include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def render_table(
    rtype: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table with one row per object."""
    columns = columns_for(rtype)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [getter(obj) for _, getter in columns]}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [dict(definition) for definition, _ in columns],
        "rows": rows,
    }
