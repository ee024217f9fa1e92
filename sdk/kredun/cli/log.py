"""`kredun log` and `kredun db upgrade`: reading and maintaining the provenance store."""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import datetime

from ..config import project_config
from ..provenance.records import ExecutionRecord, JobRecord
from ..provenance.store import ProvenanceStore


def _open_store(args: argparse.Namespace) -> ProvenanceStore:
    config = project_config()
    store = ProvenanceStore(args.database or config.require_database_uri())
    return store


def _duration(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.2f}s" if start and end else "-"


def _execution_line(record: ExecutionRecord) -> str:
    started = record.start_time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{record.id[:8]}  {started}  {record.status:<9} "
        f"{_duration(record.start_time, record.end_time):>9}  {record.args}"
    )


def _job_line(job: JobRecord, depth: int) -> str:
    how = {"CACHED": "cached", "DONE": "ran"}.get(job.status, job.status.lower())
    line = (
        f"{'  ' * depth}{job.id[:8]}  {job.status:<9} {how:<8} "
        f"{_duration(job.start_time, job.end_time):>9}  {job.task_name}"
    )
    if job.error:
        line += f"  !! {job.error}"
    return line


def log_command(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        store.ensure_schema()
        if args.execution is None:
            executions = store.recent_executions(args.limit)
            if not executions:
                print("No executions recorded yet.")
            for record in executions:
                print(_execution_line(record))
            return 0
        execution = store.find_execution(args.execution)
        print(f"Execution {execution.id}  {execution.status}  {execution.args}")
        if execution.error:
            print(f"  error: {execution.error}")
        if execution.result_preview is not None:
            print(f"  result: {execution.result_preview}")
        jobs = store.jobs_of(execution.id)
        children: dict[str | None, list[JobRecord]] = defaultdict(list)
        ids = {job.id for job in jobs}
        for job in jobs:
            children[job.parent_id if job.parent_id in ids else None].append(job)
        # Depth-first without recursion: deep job trees are normal (recursive workflows).
        stack = [(job, 0) for job in reversed(children[None])]
        while stack:
            job, depth = stack.pop()
            print(_job_line(job, depth))
            stack.extend((child, depth + 1) for child in reversed(children[job.id]))
        return 0


def db_upgrade_command(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        old, new = store.upgrade()
        if old == new:
            print(f"Database is up to date (revision {new}).")
        else:
            print(f"Upgraded database from revision {old or 'none'} to {new}.")
    return 0
