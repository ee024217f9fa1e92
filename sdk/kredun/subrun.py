"""subrun: evaluate a sub-expression under a nested scheduler inside one job.

The parent schedules a single job (on, say, the `process` executor or a Pod); inside it a
new Scheduler, configured by `config`, evaluates the quoted expression with its own
executors, and the value returns to the parent as the job's result.
"""

from __future__ import annotations

from typing import Any

from .config import config_from_dict
from .expression import QuotedExpression, TaskExpression
from .scheduler import SUBRUN_TASK
from .task import task

_NAMESPACE, _, _NAME = SUBRUN_TASK.rpartition(".")


# Never replayed across executions: the parent sees only the final value, not the calls that
# made it, so it could not tell whether the code of any of them changed. The nested
# scheduler caches each inner call itself, with full validity checks.
@task(namespace=_NAMESPACE, name=_NAME, version="1", cache=False)
def _subrun(quoted: QuotedExpression, config: dict[str, Any], parent_job: str = "") -> Any:
    from .scheduler import Scheduler

    scheduler = Scheduler(config=config)
    try:
        return scheduler.run(quoted.expr, parent_job_id=parent_job or None)
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
