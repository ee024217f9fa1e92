"""Exceptions users can catch. Every error kredun raises on purpose derives from KredunError."""


class KredunError(Exception):
    """Base class for kredun's own errors."""


class ConfigError(KredunError):
    """A configuration file or option is invalid."""


class DatabaseURIError(ConfigError):
    """The provenance database URI cannot be used."""


class StoreError(KredunError):
    """The provenance store or value store failed."""


class ValueNotFoundError(StoreError):
    """A value hash is referenced but its bytes are in neither store."""


class SerializationError(KredunError):
    """A task argument or result cannot be serialized."""


class WorkflowLoadError(KredunError):
    """A workflow file or a task in it cannot be found or imported."""


class ParameterError(KredunError):
    """A command-line parameter does not fit the task's signature."""


class PlanError(KredunError):
    """A plan (the JSON form of an expression graph) is malformed."""


class ExecutorError(KredunError):
    """An executor could not run a job (as opposed to the task raising)."""


class CancelledError(KredunError):
    """The execution was cancelled."""


class DryRunResult(KredunError):
    """A dry run found jobs that would have to run: `would_run` lists them (calls as the log
    shows them), `cached` the jobs that would replay from the cache."""

    def __init__(self, would_run: list[str], cached: list[str]) -> None:
        super().__init__(
            f"dry run: {len(would_run)} job(s) would run, {len(cached)} would replay from the cache"
        )
        self.would_run = would_run
        self.cached = cached


class TaskOptionError(KredunError, TypeError):
    """A task option nobody reads (a typo), or a value it cannot take."""


class TaskNameError(KredunError, ValueError):
    """A task name or namespace that is not a dotted Python identifier."""
