"""The one registry of task options kredun knows, and the checks made where they are written.

An option nobody reads is a silent bug (`retires=3` would never retry), so `@task(...)` and
`task.options(...)` reject any name not listed here, naming the valid ones. Executors list
the options they read from tasks; an executor type added with `register_executor_type` can
list its own with `register_task_options`. `tests/engine/test_options.py` checks that every option
the engine, the executors and the operator read is listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import ResourceError, TaskOptionError
from .resources import parse_cpus, parse_gpus, parse_memory

Check = Callable[[Any], str | None]  # a problem with the value, or None


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _name(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must name an executor"


def _count(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return "must be a whole number >= 0"


def _optional_count(value: Any) -> str | None:
    return None if value is None else _count(value)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _pull_policy(value: Any) -> str | None:
    if value in ("Always", "IfNotPresent", "Never"):
        return None
    return "must be one of Always, IfNotPresent, Never"


def _string_map(value: Any) -> str | None:
    if isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        return None
    return 'must be a map of strings, e.g. {"disktype": "ssd"}'


def _list_of_maps(value: Any) -> str | None:
    if isinstance(value, list | tuple) and all(isinstance(item, dict) for item in value):
        return None
    return 'must be a list of maps, e.g. [{"key": "gpu", "operator": "Exists"}]'


def _seconds(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return None
    return "must be a number of seconds >= 0"


def _resource(parse: Callable[[Any, str], Any], name: str) -> Check:
    def check(value: Any) -> str | None:
        try:
            parse(value, name)
        except ResourceError as error:
            return str(error).removeprefix(name + " ")
        return None

    return check


def _check_valid(value: Any) -> str | None:
    return (
        None
        if str(getattr(value, "value", value)) in ("full", "shallow")
        else ("must be 'full' or 'shallow'")
    )


def _cache_scope(value: Any) -> str | None:
    if str(getattr(value, "value", value)) in ("NONE", "CSE", "BACKEND"):
        return None
    return "must be CacheScope.NONE, CSE or BACKEND (or 'NONE', 'CSE', 'BACKEND')"


def _limits(value: Any) -> str | None:
    if isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        return None
    if isinstance(value, dict) and all(
        isinstance(name, str) and _count(count) is None for name, count in value.items()
    ):
        return None
    return "must be a list of limit names or a dict of name -> whole number >= 0"


def job_limits(value: Any) -> dict[str, int]:
    """A task's `limits` option as name -> amount (a list means 1 of each)."""
    if not value:
        return {}
    return {name: 1 for name in value} if isinstance(value, list | tuple) else dict(value)


def _hash_includes(value: Any) -> str | None:
    if value is None or isinstance(value, list | tuple):
        return None
    return "must be a list of values to hash"


def _dict(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a dict"


def _tags(value: Any) -> str | None:
    from .errors import TagError
    from .tags import check_tags  # imports the control module, which imports this one

    try:
        check_tags(value)
    except TagError as error:
        return str(error).removeprefix("tags: ")
    return None


# Options every executor honours: name -> value check (None: any value).
CORE_OPTIONS: dict[str, Check | None] = {
    "cache": _bool,
    "executor": _name,
    "retries": _count,
    "nout": _optional_count,
    "check_valid": _check_valid,
    "script": _bool,  # the body returns a shell command, which the job runs (kredun.scripting)
    "cache_scope": _cache_scope,
    "hash_includes": _hash_includes,
    "limits": _limits,
    "_context_override": _dict,  # set by task.update_context()
    "_export": None,  # names of options a job passes down (task.export_options)
    "tags": _tags,  # recorded on every job of the task (kredun.tags)
}
# Read by the k8s executor (kredun_operator.podspec and .pods).
K8S_TASK_OPTIONS = (
    "cpus", "vcpus", "memory", "gpus", "image", "image_pull_policy", "service_account",
    "node_selector", "tolerations", "timeout", "fallback", "fallback_after",
)  # fmt: skip
# Checks of the k8s options' values: a wrong shape fails the job with the option's name
# instead of breaking the Pod manifest (a plan can carry options no @task ever checked).
K8S_OPTION_CHECKS: dict[str, Check] = {
    "cpus": _resource(parse_cpus, "cpus"),
    "vcpus": _resource(parse_cpus, "vcpus"),
    "memory": _resource(parse_memory, "memory"),
    "gpus": _resource(parse_gpus, "gpus"),
    "image": _text,
    "image_pull_policy": _pull_policy,
    "service_account": _text,
    "node_selector": _string_map,
    "tolerations": _list_of_maps,
    "timeout": _seconds,
    "fallback": _name,
    "fallback_after": _seconds,
}
# redun options kredun does not implement: refused with a reason instead of ignored.
UNSUPPORTED_OPTIONS: dict[str, str] = {
    "config_args": "config_args are not supported; every argument is hashed",
    "compat": "compat is not supported; use version=",
}

# Executor-specific options by the executor type that reads them.
_EXECUTOR_OPTIONS: dict[str, tuple[str, ...]] = {"k8s": K8S_TASK_OPTIONS}
_known: frozenset[str] | None = None


def register_task_options(executor_type: str, names: Iterable[str]) -> None:
    """Declare the task options an executor type reads, so `@task` accepts them."""
    global _known
    _EXECUTOR_OPTIONS[executor_type] = (*_EXECUTOR_OPTIONS.get(executor_type, ()), *names)
    _known = None


def _executor_options() -> dict[str, tuple[str, ...]]:
    return _EXECUTOR_OPTIONS


def known_task_options() -> frozenset[str]:
    global _known
    if _known is None:
        names = set(CORE_OPTIONS)
        for options in _executor_options().values():
            names.update(options)
        _known = frozenset(names)
    return _known


def describe_known_options() -> str:
    # Names starting with "_" are set by kredun's own helpers, not written by users.
    groups = [", ".join(sorted(name for name in CORE_OPTIONS if not name.startswith("_")))]
    for kind, names in sorted(_executor_options().items()):
        extra = sorted(set(names) - set(CORE_OPTIONS))
        if extra:
            groups.append(f"{kind}: {', '.join(extra)}")
        else:
            groups.append(f"{kind}: (none beyond the above)")
    return "; ".join(groups)


def retry_limit(value: Any, cap: int | None = None) -> int:
    """How many times a failed job may be retried: its `retries` option, at most `cap` (the
    operator's `[jobs] max_retries`). A value @task would refuse, which a hand-made plan
    can carry, allows none."""
    retries = value if value is not None and _count(value) is None else 0
    return retries if cap is None else min(retries, cap)


# Options needed before a call's context is known (to build or hash the call): their value
# cannot be read from the context.
_NOT_FROM_CONTEXT = ("nout", "hash_includes", "script", "_export", "_context_override")


def reads_context(value: Any) -> bool:
    """Whether an option's value is `get_context(...)`: read from the context of each job,
    as in redun (`@task(executor=get_context("tool.executor", "default"))`)."""
    from .expression import SchedulerExpression

    return isinstance(value, SchedulerExpression) and value.task.fullname == "kredun.get_context"


def check_task_options(options: dict[str, Any], where: str) -> None:
    """Raise TaskOptionError for an option no executor reads or a value that cannot work."""
    if not options:
        return
    known = known_task_options()
    for name, value in options.items():
        if name in UNSUPPORTED_OPTIONS:
            raise TaskOptionError(f"{where}: option {name!r}: {UNSUPPORTED_OPTIONS[name]}")
        if name not in known:
            raise TaskOptionError(
                f"{where}: unknown option {name!r} (valid: {describe_known_options()})"
            )
        if reads_context(value):
            if name in _NOT_FROM_CONTEXT:
                raise TaskOptionError(f"{where}: option {name} cannot be read from the context")
            continue  # checked when a job's context gives it a value
        check = CORE_OPTIONS.get(name) or K8S_OPTION_CHECKS.get(name)
        problem = check(value) if check is not None else None
        if problem is not None:
            raise TaskOptionError(f"{where}: option {name}={value!r} {problem}")
