"""An Execution's `status`, written as coalesced merge patches of the status subresource.

The scheduler reports progress several times a second; the API server sees at most one
patch per `interval` per Execution (plus the final one), and each carries only the fields
that changed since the last. Per-job detail never goes here: it lives in the provenance
store.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kredun.scheduler import CACHED, DONE, FAILED, PENDING, RUNNING

from .errors import KubeApiError
from .kube import MERGE_PATCH, KubeClient, executions_path
from .text import lines, one_line

logger = logging.getLogger(__name__)

TRACEBACK_LIMIT = 4096  # characters of a failure's traceback kept in the status
MESSAGE_LIMIT = 1024


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_counts(counts: Mapping[str, list[int]]) -> dict[str, int]:
    """Totals over tasks of the scheduler's job counts (task -> [pending, running, failed,
    cached, done]); `done` includes `cached`."""
    totals = [sum(row[column] for row in counts.values()) for column in range(5)]
    jobs = {
        "pending": totals[PENDING],
        "running": totals[RUNNING],
        "failed": totals[FAILED],
        "cached": totals[CACHED],
        "done": totals[DONE],
    }
    jobs["total"] = jobs["pending"] + jobs["running"] + jobs["failed"] + jobs["done"]
    return jobs


def tail(text: str, limit: int = TRACEBACK_LIMIT) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


# Status fields that hold many lines by nature (log tails); every other string is one line.
MULTILINE_FIELDS = ("traceback",)


def _shown(key: str, value: Any) -> Any:
    """A status value with the control characters of its strings escaped: they may come
    from plans and job output (see `text`)."""
    if isinstance(value, str):
        return lines(value) if key in MULTILINE_FIELDS else one_line(value)
    if isinstance(value, dict):
        return {name: _shown(name, item) for name, item in value.items()}
    if isinstance(value, list):
        return [_shown(key, item) for item in value]
    return value


class StatusWriter:
    """The status of one Execution, as this operator last wrote it and wants it."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        current: Mapping[str, Any],
        interval: float = 1.0,
    ) -> None:
        self._kube = kube
        self._path = executions_path(namespace, name, "status")
        self._interval = interval
        self._written: dict[str, Any] = copy.deepcopy(dict(current))
        self._wanted: dict[str, Any] = {}
        self._conditions = {c.get("type"): c for c in current.get("conditions") or []}
        self._last_write = 0.0
        self.gone = False  # the Execution no longer exists

    def get(self, key: str) -> Any:
        return self._wanted.get(key, self._written.get(key))

    def update(self, **fields: Any) -> None:
        self._wanted.update({key: _shown(key, value) for key, value in fields.items()})

    def condition(self, kind: str, status: bool, reason: str, message: str = "") -> None:
        """Set a condition; its lastTransitionTime moves only when its status changes."""
        value = "True" if status else "False"
        old = self._conditions.get(kind) or {}
        changed = old.get("status") != value
        new = {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": one_line(message)[:MESSAGE_LIMIT],
            "lastTransitionTime": now_timestamp() if changed else old.get("lastTransitionTime"),
        }
        if new != old:
            self._conditions[kind] = new
            self._wanted["conditions"] = sorted(self._conditions.values(), key=lambda c: c["type"])

    def flush(self, force: bool = False) -> bool:
        """Patch what changed, unless the last patch is too recent (and not `force`).
        False if a patch was due but failed; the changes are kept for the next try."""
        changes = {k: v for k, v in self._wanted.items() if self._written.get(k) != v}
        if not changes or self.gone:
            self._wanted.clear()
            return True
        if not force and time.monotonic() - self._last_write < self._interval:
            return True
        try:
            self._kube.request(
                "PATCH", self._path, body={"status": changes}, content_type=MERGE_PATCH
            )
        except KubeApiError as error:
            if error.status == 404:
                self.gone = True
                return True
            logger.warning("cannot write status to %s: %s", self._path, error)
            return False
        self._written.update(copy.deepcopy(changes))
        self._wanted.clear()
        self._last_write = time.monotonic()
        return True
