"""kredun: redun's programming model — lazy task expressions, graph reduction, content-hash
caching and SQL provenance — running on a laptop or as a Kubernetes operator."""

from .context import get_context
from .control import (
    SchedulerTask,
    Thread,
    catch,
    catch_all,
    cond,
    fork_thread,
    join_thread,
    throw,
)
from .expression import (
    Expression,
    QuotedExpression,
    SchedulerExpression,
    SimpleExpression,
    TaskExpression,
    ValueExpression,
    quote,
)
from .scheduler import Scheduler
from .submit import ExecutionHandle, submit
from .subrun import subrun
from .task import CacheCheckValid, CacheScope, PartialTask, Task, get_task, namespace, task

__version__ = "0.1.0"

__all__ = [
    "CacheCheckValid",
    "CacheScope",
    "ExecutionHandle",
    "Expression",
    "PartialTask",
    "QuotedExpression",
    "Scheduler",
    "SchedulerExpression",
    "SchedulerTask",
    "SimpleExpression",
    "Task",
    "TaskExpression",
    "Thread",
    "ValueExpression",
    "catch",
    "catch_all",
    "cond",
    "fork_thread",
    "get_context",
    "get_task",
    "join_thread",
    "namespace",
    "quote",
    "submit",
    "subrun",
    "task",
    "throw",
]
