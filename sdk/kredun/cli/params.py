"""Command-line parameters for a task, parsed by its signature and type hints."""

from __future__ import annotations

import inspect
import json
import typing
from typing import Any

from ..errors import ParameterError
from ..task import Task

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, text: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is inspect.Parameter.empty or hint is Any or hint is str:
        return text
    try:
        if hint is bool:
            lowered = text.lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError
        if hint in (int, float):
            return hint(text)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            options = [h for h in typing.get_args(hint) if h is not type(None)]
            return _convert(name, text, options[0]) if len(options) == 1 else json.loads(text)
        if hint in (list, dict) or origin in (list, dict, tuple, set):
            value = json.loads(text)
            return (origin or hint)(value)
        return hint(text)
    except (ValueError, TypeError, json.JSONDecodeError):
        kind = getattr(hint, "__name__", str(hint))
        raise ParameterError(f"parameter --{name}: expected {kind}, got {text!r}") from None


def parse_task_params(task: Task, argv: list[str]) -> dict[str, Any]:
    """`--name value` (or `--name=value`; `--flag`/`--no-flag` for bools) into kwargs."""
    signature = task.signature
    try:
        hints = typing.get_type_hints(task.func)
    except Exception:
        hints = {}
    parameters = {
        name.replace("_", "-"): parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    usage = " ".join(f"--{name}" for name in parameters) or "(none)"
    values: dict[str, Any] = {}
    position = 0
    while position < len(argv):
        word = argv[position]
        position += 1
        if not word.startswith("--"):
            raise ParameterError(f"unexpected argument {word!r}; task parameters: {usage}")
        key, has_value, text = word[2:].partition("=")
        negated = key.startswith("no-") and key[3:] in parameters and key not in parameters
        parameter = parameters.get(key[3:] if negated else key)
        if parameter is None:
            raise ParameterError(
                f"unknown parameter --{key} for task {task.fullname}; parameters: {usage}"
            )
        hint = hints.get(parameter.name, parameter.annotation)
        if hint is bool and not has_value:
            values[parameter.name] = not negated
            continue
        if not has_value:
            if position >= len(argv):
                raise ParameterError(f"parameter --{key} needs a value")
            text = argv[position]
            position += 1
        values[parameter.name] = _convert(key, text, hint)
    missing = [
        f"--{name}"
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and parameter.name not in values
    ]
    if missing:
        raise ParameterError(
            f"missing required parameter(s) for {task.fullname}: {' '.join(missing)}"
        )
    return values
