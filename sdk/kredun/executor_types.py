"""The catalogue of executor types: what `type = ...` in an executor's configuration may
name, which keys that configuration may have and which task options the type reads.

Configuration and task-option checks consult it without importing any executor; executors
and the operator add themselves with `register_executor_type`.
"""

from __future__ import annotations

from .options import register_task_options

# Executor types by name: "module:Class", imported only when a run uses them. The operator
# adds its own ("k8s") when it is imported: the SDK never names operator code.
EXECUTOR_TYPES: dict[str, str] = {
    "local": "kredun.executors.local:LocalExecutor",
    "process": "kredun.executors.process:ProcessExecutor",
}
# Types that exist only where something registers them, and what to do instead here.
ELSEWHERE = {
    "k8s": "the k8s executor runs inside the kredun operator; send workflows to the cluster "
    "with kredun.submit() or an Execution resource",
}
# The configuration keys of each executor type, besides `type` (None: not checked).
CONFIG_KEYS: dict[str, tuple[str, ...] | None] = {
    "local": ("max_workers",),
    "process": ("max_workers", "start_method"),
    "k8s": ("fallback", "fallback_after", "max_cpus", "max_memory", "max_gpus"),
}


def register_executor_type(
    kind: str,
    target: str,
    *,
    config_keys: tuple[str, ...] | None = None,
    task_options: tuple[str, ...] = (),
) -> None:
    """Make `type = kind` in an executor's configuration create `target` ("module:Class").

    `config_keys` lists the keys its configuration may have (None: keep what is known, or
    do not check); `task_options` the task options it reads, so `@task(...)` accepts them."""
    EXECUTOR_TYPES[kind] = target
    if config_keys is not None or kind not in CONFIG_KEYS:
        CONFIG_KEYS[kind] = config_keys
    register_task_options(kind, task_options)


def executor_config_keys(kind: str) -> tuple[str, ...] | None:
    """The keys an executor type's configuration may have besides `type` (None: any)."""
    return CONFIG_KEYS.get(kind)
