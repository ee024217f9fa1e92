"""Which `kredun run`s of this machine are alive, so the next run against a database marks
the ones that were killed (SIGKILL, a lost terminal) as interrupted instead of leaving their
execution and jobs RUNNING forever.

A run leaves a marker file while it runs: `<state dir>/runs/<database key>-<execution id>`
holding its pid and the process's start time (so a reused pid is not mistaken for it). The
database key is a hash of its URI: no password is written to disk. The state directory is
$KREDUN_STATE_DIR, or ~/.local/state/kredun.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from ..errors import NotFoundError
from ..hashing import hash_text
from ..provenance.base import ProvenanceBackend
from ..provenance.records import ProvenanceBatch

STATE_VARIABLE = "KREDUN_STATE_DIR"
UNFINISHED = ("PENDING", "RUNNING")
INTERRUPTED = "interrupted: its kredun run process ended without finishing (killed?)"


def _state_dir() -> Path:
    base = os.environ.get(STATE_VARIABLE) or Path.home() / ".local" / "state" / "kredun"
    return Path(base) / "runs"


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


class RunMarkers:
    """The markers of runs against one database."""

    def __init__(self, database_uri: str) -> None:
        self.directory = _state_dir()
        self.prefix = hash_text(database_uri)[:16]

    def begin(self, execution_id: str) -> Path | None:
        """Mark this process as running `execution_id`; None if it cannot (no marker: an
        interrupted run then stays RUNNING, as before)."""
        path = self.directory / f"{self.prefix}-{execution_id}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"pid": os.getpid(), "started": _started(os.getpid())}))
        except OSError:
            return None
        return path

    @staticmethod
    def end(path: Path | None) -> None:
        if path is not None:
            path.unlink(missing_ok=True)

    def dead(self) -> list[Path]:
        """Markers of runs against this database whose process is gone."""
        found = []
        for path in sorted(self.directory.glob(f"{self.prefix}-*")):
            try:
                marker = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            started = _started(int(marker.get("pid", 0)))
            if started is None or started != marker.get("started"):
                found.append(path)
        return found

    def mark_interrupted(self, store: ProvenanceBackend) -> list[str]:
        """Record the dead runs' executions, and their unfinished jobs, as interrupted
        (status CANCELLED); their ids."""
        marked = []
        for path in self.dead():
            execution_id = path.name.split("-", 1)[1]
            try:
                execution = store.find_execution(execution_id)
            except NotFoundError:
                path.unlink(missing_ok=True)
                continue
            now = datetime.now(UTC)
            batch = ProvenanceBatch()
            for job in store.jobs_of(execution.id):
                if job.status in UNFINISHED:
                    job.status, job.end_time, job.error = "CANCELLED", now, INTERRUPTED
                    batch.jobs.append(job)
            if execution.status == "RUNNING":
                execution.status, execution.end_time = "CANCELLED", now
                execution.error = INTERRUPTED
                marked.append(execution.id)
            batch.executions.append(execution)
            store.write(batch)
            path.unlink(missing_ok=True)
        return marked
