"""redun's top-level API where kredun has no other home for it: `run(expr, config_dir=...)`,
and the names redun exports that kredun does not provide, each with what to use instead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotSupportedError

if TYPE_CHECKING:
    from .scheduler import Scheduler

# One scheduler per configuration directory, as redun keeps one per config_dir: its
# in-memory results and executors are reused by later run() calls.
_schedulers: dict[Path, Scheduler] = {}


def run(expr: Any, config_dir: str | Path | None = None, **run_options: Any) -> Any:
    """Evaluate `expr` with the scheduler `kredun run` would use: configured by
    `.kredun/kredun.toml` in the working directory (or $KREDUN_CONFIG), or by the
    `kredun.toml` in `config_dir`, with its database and value store defaulting to that
    directory. `run_options` go to `Scheduler.run()` (`cache=False`, `context={...}`, ...)."""
    from .config import CONFIG_DIR, project_config
    from .scheduler import Scheduler

    if config_dir is not None:
        key = Path(config_dir).resolve()
    elif os.environ.get("KREDUN_CONFIG"):
        key = Path(os.environ["KREDUN_CONFIG"]).resolve()
    else:
        key = (Path.cwd() / CONFIG_DIR).resolve()
    scheduler = _schedulers.get(key)
    if scheduler is None:
        scheduler = Scheduler(config=project_config(config_dir))
        scheduler.load()
        _schedulers[key] = scheduler
    return scheduler.run(expr, **run_options)


_EXECUTOR_ADVICE = (
    'kredun configures executors by type in kredun.toml ([executors.NAME] type = "local", '
    '"process" or "batch"; "k8s" through the operator) and adds types with '
    "kredun.executors.register_executor_type()"
)

# Names redun exports that kredun does not, by module, with what to use instead.
UNSUPPORTED: dict[str, dict[str, str]] = {
    "kredun": {
        "Handle": "kredun has no Handles (redun's stateful, forkable values); pass values "
        "between tasks, or keep the state in a File or a database the tasks share",
        "merge_handles": "kredun has no Handles to merge; see Handle",
        "ShardedS3Dataset": "kredun has no dataset type; pass a Dir (or a list of Files) "
        "of the shards",
        "register_executor": "kredun's executors do not implement redun's Executor class; "
        + _EXECUTOR_ADVICE,
        **{
            name: f"redun's executor classes do not run in kredun; {_EXECUTOR_ADVICE}"
            for name in (
                "AliasExecutor",
                "AWSBatchExecutor",
                "AWSGlueExecutor",
                "DockerExecutor",
                "GCPBatchExecutor",
                "K8SExecutor",
                "LocalExecutor",
            )
        },
    },
    "kredun.functools": {
        "no_prov": "kredun records provenance for every call (it writes it in batches, so "
        "the cost no_prov saves in redun is small); evaluate the expression itself",
    },
}


def unsupported(module: str, name: str) -> AttributeError | NotSupportedError:
    """The error for `from module import name`: NotSupportedError (an ImportError) naming
    what to use instead for a redun name kredun lacks, else the usual AttributeError."""
    advice = UNSUPPORTED.get(module, {}).get(name)
    if advice is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}", name=name)
    return NotSupportedError(f"{module}.{name} (from redun) is not supported: {advice}")
