"""The three PATCH flavours the Kubernetes API accepts, applied to plain JSON-like values.

- JSON merge patch (RFC 7386): used by kopf, kubectl for custom resources, the custom-objects API.
- JSON patch (RFC 6902): used by kopf for finalizers, guarded by a ``test`` of resourceVersion;
  a failed ``test`` must be a 422 so kopf retries on its next cycle.
- Strategic merge patch: used by kubectl apply and the Python client for built-in kinds. Only
  the directives those clients emit are understood: lists merged by a known key (containers by
  name, conditions by type, ...), ``$patch: delete|replace``, ``$setElementOrder/...`` and
  ``$deleteFromPrimitiveList/...``. Anything else falls back to merge-patch semantics.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied; the API server answers 422 Unprocessable Entity."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the new value (inputs are not mutated)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Lists that the real API server merges element-wise in strategic merge patches, with the
# candidate merge keys (the first key present in the patch's elements wins: container ports
# are keyed by containerPort, service ports by port).
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
}
# Lists of scalars that strategic merge patches union instead of replacing.
_MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch as produced by kubectl and the Python client."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = dict(target) if isinstance(target, dict) else {}
    element_orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            element_orders[key.partition("/")[2]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.partition("/")[2]
            result[field] = [item for item in result.get(field) or [] if item not in value]
        elif key.startswith("$"):
            continue  # $retainKeys and other directives: merge semantics are close enough.
        elif value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    for field, order in element_orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return value


def _merge_key(field: str, items: list[Any]) -> str | None:
    dicts = [item for item in items if isinstance(item, dict) and "$patch" not in item]
    for key in _MERGE_KEYS.get(field, ()):
        if dicts and all(key in item for item in dicts):
            return key
    return None


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    original_list = original if isinstance(original, list) else []
    if field in _MERGED_PRIMITIVE_LISTS and all(not isinstance(i, dict | list) for i in patch):
        return original_list + [item for item in patch if item not in original_list]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    key = _merge_key(field, patch)
    if key is None:
        return _strip_directives(patch)
    merged = list(original_list)
    for item in patch:
        if not isinstance(item, dict):
            continue
        position = next(
            (
                i
                for i, old in enumerate(merged)
                if isinstance(old, dict) and old.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
        elif position is None:
            merged.append(_strip_directives(item))
        else:
            merged[position] = strategic_merge_patch(merged[position], item)
    return merged


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, order) if order and isinstance(order[0], dict) else None
    ranks = {(entry.get(key) if key else entry): rank for rank, entry in enumerate(order)}

    def rank(item: Any) -> int:
        value = item.get(key) if key and isinstance(item, dict) else item
        return ranks.get(value, len(ranks)) if not isinstance(value, dict | list) else len(ranks)

    return sorted(items, key=rank)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        node = _child(node, part, path)
    return node


def _child(node: Any, part: str, path: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise PatchError(f"path {path!r} does not exist: missing key {part!r}")
        return node[part]
    if isinstance(node, list):
        index = _index(node, part, path, allow_end=False)
        return node[index]
    raise PatchError(f"path {path!r} does not exist: {part!r} is inside a scalar")


def _index(node: list[Any], part: str, path: str, *, allow_end: bool) -> int:
    if allow_end and part == "-":
        return len(node)
    if not part.isdigit():
        raise PatchError(f"invalid array index {part!r} in {path!r}")
    index = int(part)
    if index > len(node) or (index == len(node) and not allow_end):
        raise PatchError(f"array index {index} out of bounds in {path!r}")
    return index


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = _child(node, part, path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, parts[-1], path, allow_end=True), value)
    else:
        raise PatchError(f"cannot add at {path!r}: parent is a scalar")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve_parent(doc, parts, path)
    if isinstance(parent, dict):
        if parts[-1] not in parent:
            raise PatchError(f"cannot remove {path!r}: no such key")
        return doc, parent.pop(parts[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, parts[-1], path, allow_end=False))
    raise PatchError(f"cannot remove {path!r}: parent is a scalar")


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch; raise PatchError (422) on a failed ``test`` or bad path."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "test":
            try:
                actual = _get(doc, path)
            except PatchError:
                actual = None
            if actual != operation.get("value"):
                raise PatchError(
                    f"testing value {path} failed: expected {operation.get('value')!r}, "
                    f"found {actual!r}"
                )
        elif op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc, _ = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)  # must exist
            doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise PatchError(f"{op} needs a 'from' pointer")
            if op == "move":
                doc, value = _remove(doc, source)
            else:
                value = copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value)
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return doc
