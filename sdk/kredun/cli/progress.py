"""Live progress for `kredun run` on a terminal (rich); plain log lines otherwise."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..scheduler import STATUSES, log_status_table


class LiveProgress:
    """Shows the job status table while a run goes on, instead of a line per job."""

    REFRESH_SECONDS = 0.2

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._saved_level = logger.level
        self._live = Live(console=Console(stderr=True), transient=True, auto_refresh=False)
        self._last = 0.0
        self._started = time.monotonic()
        self._counts: dict[str, list[int]] = {}

    def __enter__(self) -> LiveProgress:
        # Per-job lines would scroll the table away; the final table is logged on exit.
        self.logger.setLevel(logging.WARNING)
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._live.stop()
        self.logger.setLevel(self._saved_level)
        if self._counts:
            log_status_table(self.logger, self._counts, time.monotonic() - self._started)

    def update(self, counts: dict[str, list[int]]) -> None:
        self._counts = counts
        now = time.monotonic()
        if now - self._last < self.REFRESH_SECONDS:
            return
        self._last = now
        table = Table(title="kredun run", title_justify="left")
        table.add_column("TASK")
        for status in (*STATUSES, "TOTAL"):
            table.add_column(status, justify="right")
        for name, row in sorted(counts.items()):
            total = row[0] + row[1] + row[2] + row[4]
            table.add_row(name, *map(str, row), str(total))
        self._live.update(table, refresh=True)
