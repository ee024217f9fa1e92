"""Run one expression the ways a user can: local threads, the `process` executor, and inside
`subrun` (a nested scheduler in a process job). Tests parametrize over `MODES`."""

from __future__ import annotations

import logging
from typing import Any

from kredun import Scheduler, subrun

MODES = ("threads", "process", "subrun")
PROCESS = {"executors": {"default": {"type": "process", "max_workers": 2}}}


def run_in(mode: str, expr: Any, **run_options: Any) -> Any:
    """Evaluate `expr` in `mode` on a fresh in-memory scheduler and return its value. The
    scheduler's log is quiet meanwhile, and as loud as before afterwards (later tests in
    this process may read it)."""
    logger = logging.getLogger("kredun")
    saved_level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        if mode == "threads":
            scheduler = Scheduler()
        elif mode == "process":
            scheduler = Scheduler(config=PROCESS)
        elif mode == "subrun":
            scheduler = Scheduler()
            expr = subrun(expr, executor="process", config={})
        else:
            raise ValueError(f"unknown mode {mode!r}")
        try:
            return scheduler.run(expr, **run_options)
        finally:
            scheduler.close()
    finally:
        logger.setLevel(saved_level)
