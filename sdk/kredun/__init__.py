"""kredun: redun's programming model — lazy task expressions, graph reduction, content-hash
caching and SQL provenance — running on a laptop or as a Kubernetes operator."""

from typing import Any

from .compat import run
from .compat import unsupported as _unsupported
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
from .files import ContentDir, ContentFile, Dir, File, StagingDir, StagingFile, glob_file
from .scheduler import Scheduler, get_current_scheduler, set_current_scheduler
from .scripting import script
from .submit import ExecutionHandle, submit
from .subrun import subrun
from .tags import apply_tags
from .task import (
    CacheCheckValid,
    CacheScope,
    PartialTask,
    Task,
    get_current_namespace,
    get_task,
    get_task_registry,
    namespace,
    task,
)
from .wrapping import wraps_task

__version__ = "0.1.0"
version = __version__

__all__ = [
    "CacheCheckValid",
    "CacheScope",
    "ContentDir",
    "ContentFile",
    "Dir",
    "ExecutionHandle",
    "Expression",
    "File",
    "PartialTask",
    "QuotedExpression",
    "Scheduler",
    "SchedulerExpression",
    "SchedulerTask",
    "SimpleExpression",
    "StagingDir",
    "StagingFile",
    "Task",
    "TaskExpression",
    "Thread",
    "ValueExpression",
    "apply_tags",
    "catch",
    "catch_all",
    "cond",
    "fork_thread",
    "get_context",
    "get_current_namespace",
    "get_current_scheduler",
    "get_task",
    "get_task_registry",
    "glob_file",
    "join_thread",
    "namespace",
    "quote",
    "run",
    "script",
    "set_current_scheduler",
    "submit",
    "subrun",
    "task",
    "throw",
    "version",
    "wraps_task",
]


def __getattr__(name: str) -> Any:
    # redun names kredun lacks fail with what to use instead (kredun.compat.UNSUPPORTED).
    raise _unsupported(__name__, name)
