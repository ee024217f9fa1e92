"""Errors of the operator. Each says what went wrong and, where a user can, how to fix it."""

from __future__ import annotations

from kredun.errors import ConfigError, ExecutorError, KredunError


class SettingsError(ConfigError):
    """The operator's configuration file or command line is invalid."""


class SpecError(KredunError):
    """An Execution's spec cannot be run as written; the message says what to change."""


class AnnotationError(SpecError):
    """An annotation of an Execution that the operator reads (its tags) is malformed."""


class KubeApiError(KredunError):
    """The Kubernetes API answered with an error, or did not answer (status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Kubernetes API error {status} ({reason}): {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying: no answer, throttling, or a server-side failure."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class PodFailedError(ExecutorError):
    """A job's Pod ended without the job succeeding."""

    def __init__(self, message: str, *, task: str, pod: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.task = task
        self.pod = pod
        self.log_tail = log_tail
