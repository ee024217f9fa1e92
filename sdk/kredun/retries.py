"""Store I/O that waits out an outage: a database or value-store restart pauses a job or
a receiver instead of failing it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import NotFoundError, StoreError, ValueNotFoundError

RETRY_VARIABLE = "KREDUN_STORE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 600.0
T = TypeVar("T")


def with_store_retries(what: str, action: Callable[[], T], seconds: float | None = None) -> T:
    """`action()`, retried with backoff while the stores cannot be reached (for `seconds`,
    default $KREDUN_STORE_RETRY_SECONDS); then its error. A store that answers that
    something is missing is not an outage: that error is raised at once."""
    if seconds is None:
        seconds = float(os.environ.get(RETRY_VARIABLE) or DEFAULT_RETRY_SECONDS)
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            return action()
        except (ValueNotFoundError, NotFoundError):
            raise
        except (StoreError, OSError) as error:
            if time.monotonic() + delay > deadline:
                raise
            print(f"kredun: {what}: {error}; retrying in {delay:.1f}s", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
