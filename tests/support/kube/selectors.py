"""Label and field selectors, parsed the way the Kubernetes API server reads them.

Both the emulated API server (for lists and watches) and the local kubelet (for node selectors)
use these, so one parser keeps their understanding of a selector identical.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQUALITY_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s,()]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")


class SelectorError(ValueError):
    """A selector string that the real API server would reject with 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    """One comma-separated term of a selector, e.g. ``app in (a,b)`` or ``!tier``."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, present: bool, value: str | None) -> bool:
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects that lack the key altogether, as in Kubernetes.
        return not present or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside the parentheses of a set requirement."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in terms if term.strip()]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``labelSelector`` syntax: ``=``, ``==``, ``!=``, ``in``, ``notin``, ``k``, ``!k``."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if match := _SET_REQUIREMENT.match(term):
            key, operator, raw_values = match.groups()
            values = frozenset(v.strip() for v in raw_values.split(",") if v.strip())
            requirements.append(Requirement(key, operator, values))
        elif match := _EQUALITY_REQUIREMENT.match(term):
            key, operator, value = match.groups()
            requirements.append(
                Requirement(key, "!=" if operator == "!=" else "=", frozenset({value}))
            )
        elif match := _EXISTS_REQUIREMENT.match(term):
            negated, key = match.groups()
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return tuple(requirements)


def parse_field_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``fieldSelector`` syntax, which only knows ``=``, ``==`` and ``!=``."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        match = _EQUALITY_REQUIREMENT.match(term)
        if not match:
            raise SelectorError(f"invalid field selector: {term!r}")
        key, operator, value = match.groups()
        requirements.append(Requirement(key, "!=" if operator == "!=" else "=", frozenset({value})))
    return tuple(requirements)


def labels_match(requirements: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    """True if a label mapping satisfies every requirement (an empty selector matches all)."""
    labels = labels or {}
    return all(req.matches(req.key in labels, labels.get(req.key)) for req in requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """Resolve a dotted field path the way field selectors compare it: as a string, "" if unset."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def fields_match(requirements: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    """True if an object satisfies every field requirement."""
    return all(req.matches(True, field_value(obj, req.key)) for req in requirements)


def object_matcher(
    label_selector: str | None, field_selector: str | None
) -> Callable[[Mapping[str, Any]], bool]:
    """Compile both selectors of a request into one predicate over whole objects."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector)
    if not labels and not fields:
        return lambda _obj: True

    def matches(obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        return labels_match(labels, metadata.get("labels")) and fields_match(fields, obj)

    return matches
