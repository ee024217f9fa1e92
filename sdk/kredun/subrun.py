"""subrun: evaluate a sub-expression under a nested scheduler inside one job.

The parent schedules a single job (on, say, the `process` executor or a Pod); inside it a
new Scheduler, configured by `config`, evaluates the quoted expression with its own
executors, and the value returns to the parent as the job's result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import config_from_dict
from .expression import QuotedExpression, TaskExpression
from .task import task

if TYPE_CHECKING:
    from .config import Config


# Never replayed across executions: the parent sees only the final value, not the calls that
# made it, so it could not tell whether the code of any of them changed. The nested
# scheduler caches each inner call itself, with full validity checks.
@task(namespace="kredun", name="subrun", version="1", cache=False)
def _subrun(
    quoted: QuotedExpression, config: dict[str, Any], context: dict[str, Any] | None = None
) -> Any:
    from .scheduler import Scheduler

    scheduler = Scheduler(config=config)
    try:
        # `context`: the parent job's, filled in by the parent scheduler when it is not empty.
        return scheduler.run(quoted.expr, context=context)
    finally:
        scheduler.close()


def subrun(
    expr: Any, executor: str = "default", config: dict[str, Any] | None = None, **options: Any
) -> TaskExpression:
    """Run `expr` under a nested scheduler in one job on `executor`.

    `config` configures the nested scheduler (executors, database, value store), like the
    dict form of `.kredun/kredun.toml`; `options` are the job's task options (memory, ...).
    """
    config_from_dict(config or {}, "subrun config")  # a typo fails here, not inside the job
    return _subrun.options(executor=executor, **options)(QuotedExpression(expr), config or {})


def is_subrun_call(task: Any) -> bool:
    return getattr(task, "fullname", None) == _subrun.fullname


def with_parent_config(args: list[Any], parent: Config) -> list[Any]:
    """A subrun given no configuration runs on its parent's database and value store, so
    its inner calls are cached and recorded where the parent's are."""
    quoted, config = args
    if config:
        return args
    inherited = {
        "database": {"uri": parent.database_uri},
        "value_store": {"uri": parent.value_store_uri},
        "executors": dict(parent.executors),
    }
    return [quoted, inherited]
