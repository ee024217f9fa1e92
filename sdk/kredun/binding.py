"""Binding call arguments to parameters by a plain description of the signature.

Both a live `Task` (from `inspect`) and a task reference in a plan (from JSON, where the
operator may not import the task) describe their parameters this way, so both hash a call
identically: by parameter name, with defaults filled in.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from .hashing import hash_parts, hash_value

POSITIONAL_ONLY = "POSITIONAL_ONLY"
POSITIONAL_OR_KEYWORD = "POSITIONAL_OR_KEYWORD"
VAR_POSITIONAL = "VAR_POSITIONAL"
KEYWORD_ONLY = "KEYWORD_ONLY"
VAR_KEYWORD = "VAR_KEYWORD"
PARAMETER_KINDS = {
    POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD, VAR_POSITIONAL, KEYWORD_ONLY, VAR_KEYWORD
}  # fmt: skip


class Parameter(NamedTuple):
    name: str
    kind: str
    default_hash: str | None  # None: no default


def describe_signature(signature: inspect.Signature) -> list[Parameter]:
    return [
        Parameter(
            p.name,
            p.kind.name,
            None if p.default is inspect.Parameter.empty else hash_value(p.default),
        )
        for p in signature.parameters.values()
    ]


def bind(parameters: list[Parameter], positional: list[Any], named: dict[str, Any]) -> dict:
    """Map arguments to parameter names as Python would (raising the same TypeErrors);
    *args collect into a tuple, **kwargs into a dict. Defaults are not filled in."""
    bound: dict[str, Any] = {}
    remaining = list(positional)
    for parameter in parameters:
        if parameter.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD) and remaining:
            bound[parameter.name] = remaining.pop(0)
        elif parameter.kind == VAR_POSITIONAL:
            bound[parameter.name] = tuple(remaining)
            remaining = []
    if remaining:
        raise TypeError("too many positional arguments")
    extra: dict[str, Any] = {}
    by_name = {p.name: p for p in parameters}
    var_keyword = next((p.name for p in parameters if p.kind == VAR_KEYWORD), None)
    for name, value in named.items():
        target = by_name.get(name)
        if target is None or target.kind in (POSITIONAL_ONLY, VAR_POSITIONAL, VAR_KEYWORD):
            if var_keyword is None:
                raise TypeError(f"got an unexpected keyword argument {name!r}")
            extra[name] = value
        elif name in bound:
            raise TypeError(f"multiple values for argument {name!r}")
        else:
            bound[name] = value
    if var_keyword is not None:
        bound[var_keyword] = extra
    for parameter in parameters:
        if parameter.name not in bound and parameter.default_hash is None:
            if parameter.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD):
                raise TypeError(f"missing a required argument: {parameter.name!r}")
            if parameter.kind == KEYWORD_ONLY:
                raise TypeError(f"missing a required keyword-only argument: {parameter.name!r}")
    return bound


def hash_call_arguments(
    parameters: list[Parameter], positional: list[str], named: dict[str, str]
) -> str:
    """The arguments hash of a call, from its arguments' value hashes."""
    bound = bind(parameters, positional, named)
    parts = []
    for parameter in parameters:
        if parameter.name in bound:
            given = bound[parameter.name]
            if parameter.kind == VAR_POSITIONAL:
                given = hash_parts("varargs", list(given))
            elif parameter.kind == VAR_KEYWORD:
                given = hash_parts("varkw", [f"{k}={v}" for k, v in sorted(given.items())])
        elif parameter.default_hash is not None:
            given = parameter.default_hash
        else:
            continue
        parts.append(f"{parameter.name}={given}")
    return hash_parts("args", parts)
