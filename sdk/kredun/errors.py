"""Exceptions users can catch. Every error kredun raises on purpose derives from KredunError."""


class KredunError(Exception):
    """Base class for kredun's own errors."""


class ConfigError(KredunError):
    """A configuration file or option is invalid."""


class DatabaseURIError(ConfigError):
    """The provenance database URI cannot be used."""


class StoreError(KredunError):
    """The provenance store or value store failed."""


class NotFoundError(StoreError, LookupError):
    """No provenance record matches the given id or prefix (every provenance store)."""


class AmbiguousIdError(StoreError):
    """An id prefix matches more than one provenance record (every provenance store)."""


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


class NamespaceWarning(UserWarning):
    """Tasks without a namespace are registered: their names may clash with other modules'
    tasks (silence with `warnings.filterwarnings("ignore", category=NamespaceWarning)`)."""


class TaskOptionError(KredunError, TypeError):
    """A task option nobody reads (a typo), or a value it cannot take."""


class TaskNameError(KredunError, ValueError):
    """A task name or namespace that is not a dotted Python identifier."""


class ResourceError(ConfigError):
    """A `cpus`, `memory` or `gpus` option in a form kredun cannot read."""


class InvalidHashError(KredunError, ValueError):
    """A value or plan hash is not 40 lowercase hex digits (no path or key is built from it)."""


class LimitExceededError(KredunError):
    """Input exceeds a size, depth or count limit; the message names the limit."""


class FileError(KredunError):
    """A File or Dir path cannot be used: an unsupported scheme, or storage that failed."""


class ScriptError(KredunError):
    """A `script()` command (or `@task(script=True)`) exited with a non-zero status; the
    message ends with its last lines of stderr, `stderr` holds all of it."""

    def __init__(self, message: str, stderr: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.stderr, self.returncode))


class TagError(KredunError, ValueError):
    """A tag is malformed: tags are (key, value) pairs of text, keys non-empty."""


class OutcomeError(KredunError):
    """A job's outcome (what its worker reported back) is malformed, or does not match the
    result blob it names; the message names the field or the hash."""


class FragmentError(KredunError):
    """A subrun job's provenance fragment (the records its nested scheduler kept) is
    malformed, too large or does not match what its outcome says; the message names the
    field. The receiver drops the fragment and keeps the job's result."""


class RemoteTaskError(KredunError):
    """A task raised in a job that ran elsewhere (a Pod, a Batch job). `classes` are the
    qualified names along the exception's class hierarchy, `value_hash` the pickled
    exception's blob in the value store (None if it could not be pickled)."""

    def __init__(self, message: str, classes: tuple[str, ...] = (),
                 value_hash: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.classes = classes
        self.value_hash = value_hash

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.classes, self.value_hash))


class NoCurrentScheduler(KredunError):
    """`get_current_scheduler()` was called where no Scheduler is running: outside
    `Scheduler.run()`, or in a task's own thread or process (as in redun)."""


class NotSupportedError(KredunError, ImportError):
    """A name redun provides that kredun does not; the message says what to use instead.
    An ImportError, so `from kredun import Handle` fails at the import line."""
