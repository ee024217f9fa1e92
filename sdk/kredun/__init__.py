"""kredun: redun's programming model — lazy task expressions, graph reduction, content-hash
caching and SQL provenance — running on a laptop or as a Kubernetes operator."""

from .control import SchedulerTask, catch, catch_all, cond, throw
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
from .scheduler import Scheduler
from .scripting import script
from .submit import ExecutionHandle, submit
from .subrun import subrun
from .tags import apply_tags
from .task import PartialTask, Task, get_task, task

__version__ = "0.1.0"

__all__ = [
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
    "ValueExpression",
    "apply_tags",
    "catch",
    "catch_all",
    "cond",
    "get_task",
    "glob_file",
    "quote",
    "script",
    "submit",
    "subrun",
    "task",
    "throw",
]
