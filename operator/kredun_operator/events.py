"""Kubernetes Events on Executions: job failures, retries, and how the Execution ended.

Events are posted in the background: a slow or failing API must not hold up the scheduler,
and a lost Event is only a lost notification (the status says the same).
"""

from __future__ import annotations

import logging
import socket
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from kredun.resource import API_VERSION, KIND

from .errors import KubeApiError
from .kube import KubeClient, events_path
from .text import one_line

logger = logging.getLogger(__name__)

MESSAGE_LIMIT = 1024
COMPONENT = "kredun-operator"


class EventRecorder:
    """Posts Events about one Execution."""

    def __init__(
        self, kube: KubeClient, pool: Executor, namespace: str, name: str, uid: str
    ) -> None:
        self._kube = kube
        self._pool = pool
        self._involved = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        }

    def normal(self, reason: str, message: str) -> None:
        self._pool.submit(self._post, "Normal", reason, message)

    def warning(self, reason: str, message: str) -> None:
        self._pool.submit(self._post, "Warning", reason, message)

    def _post(self, kind: str, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = self._involved["namespace"]
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{self._involved['name']}.", "namespace": namespace},
            "involvedObject": self._involved,
            "type": kind,
            "reason": reason,
            "message": one_line(message)[:MESSAGE_LIMIT],
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
        }
        try:
            self._kube.request("POST", events_path(namespace), body=event)
        except KubeApiError as error:
            logger.warning("cannot post event %s on %s: %s", reason, self._involved["name"], error)
