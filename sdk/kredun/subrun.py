"""subrun: evaluate a sub-expression under a nested scheduler inside one job.

The parent schedules a single job (on, say, the `process` executor or a Pod); inside it a
new Scheduler, configured by `config`, evaluates the quoted expression with its own
executors, and the value returns to the parent as the job's result.
"""

from __future__ import annotations

from typing import Any

from .config import config_from_dict
from .errors import ConfigError
from .expression import QuotedExpression, TaskExpression
from .scheduler import SUBRUN_TASK
from .task import task

_NAMESPACE, _, _NAME = SUBRUN_TASK.rpartition(".")


# Never replayed across executions: the parent sees only the final value, not the calls that
# made it, so it could not tell whether the code of any of them changed. The nested
# scheduler caches each inner call itself, with full validity checks.
@task(namespace=_NAMESPACE, name=_NAME, version="1", cache=False)
def _subrun(
    quoted: QuotedExpression,
    config: dict[str, Any],
    context: dict[str, Any] | None = None,
    config_dir: str | None = None,
    load_modules: list[str] | None = None,
    parent_job: str = "",
) -> Any:
    import importlib
    from pathlib import Path

    from .config import CONFIG_FILE, load_config_file
    from .provenance.callindex import CallIndexStore
    from .provenance.memory import MEMORY_URI
    from .scheduler import Scheduler
    from .valuestore import open_value_store
    from .worker import take_subrun_job

    job = take_subrun_job()
    for module in load_modules or ():
        importlib.import_module(module)
    # The configuration comes with the call, or from a kredun.toml where the job runs.
    nested = (
        load_config_file(Path(config_dir) / CONFIG_FILE)
        if config_dir
        else config_from_dict(config, "subrun config")
    )
    # In a job, which has no database, the nested scheduler records in memory, keeps its
    # values in the job's value store (unless told otherwise) and its cache entries there
    # too, for the next subrun of this cache scope to replay.
    if nested.database_uri not in (None, MEMORY_URI):
        job = None  # a database of its own: provenance and cache entries go there
    index = None
    if job is not None:
        nested.value_store_uri = nested.value_store_uri or job.value_store.uri
        index = CallIndexStore(open_value_store(nested.value_store_uri, nested.cache_scope))
    scheduler = Scheduler(config=nested, provenance=index)
    try:
        # `context`: the parent job's, filled in by the parent scheduler when it is not empty.
        return scheduler.run(quoted.expr, context=context, parent_job_id=parent_job or None)
    finally:
        # What the nested run recorded in memory goes back with the job's outcome, for the
        # receiver to record under this job.
        if job is not None and index is not None:
            job.sink(index)
        scheduler.close()


def subrun(
    expr: Any,
    executor: str = "default",
    config: dict[str, Any] | None = None,
    config_dir: str | None = None,
    new_execution: bool = True,
    load_modules: list[str] | None = None,
    **options: Any,
) -> TaskExpression:
    """Run `expr` under a nested scheduler in one job on `executor`.

    `config` configures the nested scheduler (executors, database, value store), like the
    dict form of `.kredun/kredun.toml`, or in redun's shape (`{"executors.default": {"type":
    "local", "max_workers": "4"}, "backend": {"db_uri": ...}}`); `config_dir` names a
    directory holding a kredun.toml where the job runs instead. `load_modules` are imported
    in the job first. The nested run is always recorded as an execution of its own
    (`new_execution=False`, redun's extension of the parent execution, is refused).
    `options` are the job's task options (memory, ...).
    """
    if config and config_dir is not None:
        raise ConfigError("subrun(): give config or config_dir, not both")
    if not new_execution:
        raise ConfigError("subrun(new_execution=False) is not supported: the nested run is "
                          "recorded as an execution of its own")  # fmt: skip
    config = from_redun_config(config or {})
    config_from_dict(config, "subrun config")  # a typo fails here, not inside the job
    extra: dict[str, Any] = {}
    if config_dir is not None:
        extra["config_dir"] = str(config_dir)
    if load_modules:
        extra["load_modules"] = list(load_modules)
    return _subrun.options(executor=executor, **options)(QuotedExpression(expr), config, **extra)


# redun's config keys that kredun reads: section -> {key: (kredun section, kredun key)}.
_REDUN_KEYS = {"backend": {"db_uri": ("database", "uri")}}


def from_redun_config(config: dict[str, Any]) -> dict[str, Any]:
    """A subrun config in redun's two-level shape (`"executors.NAME"` sections, string
    values, `backend.db_uri`) as kredun's; a config in kredun's shape is returned as is."""
    if not any("." in key or key in _REDUN_KEYS for key in config):
        return config
    converted: dict[str, Any] = {}
    for section, table in config.items():
        kind, _, name = section.partition(".")
        if kind == "executors" and name:
            converted.setdefault("executors", {})[name] = _from_redun_executor(table)
        elif section in _REDUN_KEYS:
            for key, value in table.items():
                if key not in _REDUN_KEYS[section]:
                    supported = ", ".join(_REDUN_KEYS[section])
                    raise ConfigError(
                        f"subrun config: [{section}] {key} is not supported ({supported})"
                    )
                target, target_key = _REDUN_KEYS[section][key]
                converted.setdefault(target, {})[target_key] = value
        else:
            converted[section] = table
    return converted


def _from_redun_executor(table: dict[str, Any]) -> dict[str, Any]:
    """An executor section in redun's shape: its `local` type runs threads or, with
    `mode = process`, a process pool (kredun's `process` type)."""
    options = {key: int(value) if key == "max_workers" else value for key, value in table.items()}
    if options.get("type") == "local" and "mode" in options:
        mode = options.pop("mode")
        if mode not in ("thread", "process"):
            raise ConfigError(f"subrun config: executor mode {mode!r} (valid: thread, process)")
        if mode == "process":
            options["type"] = "process"
        else:
            options.pop("start_method", None)  # redun ignores it for threads
    return options
