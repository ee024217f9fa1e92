"""`kredun log`, `kredun tag` and `kredun db upgrade`: reading and maintaining the
provenance store."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections import defaultdict
from datetime import datetime
from typing import Any

from ..config import project_config
from ..errors import AmbiguousIdError, NotFoundError, TagError
from ..provenance.base import normalize_id
from ..provenance.records import (
    ExecutionRecord,
    FileRecord,
    JobRecord,
    ProvenanceBatch,
    TagRecord,
)
from ..provenance.store import ProvenanceStore
from ..provenance.why import explain, input_files, job_arguments
from ..tags import parse_tag
from ..tenancy import check_scope


def _open_store(args: argparse.Namespace) -> ProvenanceStore:
    """The store, reading values in the scope `--scope` names, else the configuration's:
    executions and jobs are shown whatever their scope, but a value's preview only from
    the scope it was recorded in (on a cluster's database: `ns/<namespace>`)."""
    config = project_config()
    chosen = getattr(args, "scope", None)  # `kredun tag` reads no values
    scope = config.cache_scope if chosen is None else check_scope(chosen, "--scope")
    return ProvenanceStore(args.database or config.require_database_uri(), scope)


def _duration(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.2f}s" if start and end else "-"


def _time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _execution_line(record: ExecutionRecord) -> str:
    line = (
        f"{record.id[:8]}  {_time(record.start_time)}  {record.status:<9} "
        f"{_duration(record.start_time, record.end_time):>9}  {record.args}"
    )
    return line + (f"  (subrun in job {record.parent_job_id[:8]})" if record.parent_job_id else "")


def _job_line(job: JobRecord, depth: int = 0) -> str:
    how = {"CACHED": "cached", "DONE": "ran"}.get(job.status, job.status.lower())
    line = (
        f"{'  ' * depth}{job.id[:8]}  {job.status:<9} {how:<8} "
        f"{_duration(job.start_time, job.end_time):>9}  {job.task_name}"
    )
    if job.error:
        line += f"  !! {job.error}"
    return line


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None  # serialized data is not for reading here
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _tag_filter(args: argparse.Namespace) -> tuple[str, str | None] | None:
    if not args.tag:
        return None
    key, equals, value = args.tag.partition("=")
    if not key:
        raise TagError(f"--tag {args.tag!r}: expected KEY or KEY=VALUE")
    return key, value if equals else None


def log_command(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        store.ensure_schema()
        result = _answer(store, args)
        output = (
            [json.dumps(_jsonable(result[1]), indent=2)] if args.format == "json" else result[0]
        )
        return _print_lines(output)


def _print_lines(lines: list[str]) -> int:
    """Print, ending quietly when the reader goes away (`kredun log | head`)."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the failed flush at exit again: point stdout at nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _answer(store: ProvenanceStore, args: argparse.Namespace) -> tuple[list[str], Any]:
    """What to show, as (text lines, the same for --format json)."""
    tag = _tag_filter(args)
    if args.why is not None:
        job = store.find_job(args.why)
        answer = explain(store, job)
        return answer.lines, {
            "job": job, "compared_with": answer.compared_with,
            "task_changes": answer.task_changes, "hash_changes": answer.hash_changes,
            "subruns": answer.subruns,
            "explanation": answer.lines,
        }  # fmt: skip
    if args.file is not None:
        return _file_history(store, args.file)
    if args.id is not None:
        return _show(store, args.id)
    if args.task is not None or args.jobs:
        jobs = store.find_jobs(task=args.task, status=args.status, tag=tag, limit=args.limit)
        return [_job_line(job) for job in jobs] or ["No matching jobs."], jobs
    if tag is not None and args.status is None:
        return _tagged(store, *tag)
    executions = store.find_executions(status=args.status, tag=tag, limit=args.limit)
    lines = [_execution_line(record) for record in executions]
    return lines or ["No executions recorded yet."], executions


def _find_record(store: ProvenanceStore, text: str) -> tuple[str, Any] | None:
    """The execution, job or value whose id or hash `text` is or starts with, as (kind,
    record); None when there is none. Raises AmbiguousIdError when several match."""
    found: list[tuple[str, Any]] = []
    ambiguous: list[str] = []
    lookups = (
        ("execution", lambda: store.find_execution(normalize_id(text))),
        ("job", lambda: store.find_job(text)),
        ("value", lambda: store.find_value(text)),
    )
    for kind, lookup in lookups:
        try:
            found.append((kind, lookup()))
        except AmbiguousIdError as error:
            ambiguous.append(str(error))
        except NotFoundError:
            continue
    if len(found) + len(ambiguous) > 1:
        kinds = [kind for kind, _ in found] + ["more"] * len(ambiguous)
        raise AmbiguousIdError(f"{text!r} matches a {' and a '.join(kinds)}; give more characters")
    if ambiguous:
        raise AmbiguousIdError(ambiguous[0])
    return found[0] if found else None


def _show(store: ProvenanceStore, text: str) -> tuple[list[str], Any]:
    """An execution, job, value or task by id, hash (a prefix will do) or task name."""
    found = _find_record(store, text)
    if found is not None:
        kind, record = found
        if kind == "execution":
            return _execution_details(store, record)
        if kind == "job":
            return _job_details(store, record)
        tags = store.tags_of(record.hash)
        return [
            f"Value {record.hash}  {record.type_name}  {record.size} bytes",
            f"  preview: {record.preview}",
            *(f"  tag: {t.key}={t.value}" for t in tags),
        ], {"value": record, "tags": tags}
    jobs = store.find_jobs(task=text, limit=20)
    if jobs:
        task = store.get_task(jobs[0].task_hash)
        lines = [f"Task {text}  (hash {jobs[0].task_hash[:8]}), latest jobs:"]
        lines += [_job_line(job, 1) for job in jobs]
        if task is not None and task.source:
            lines += ["  source:", *("    " + line for line in task.source.splitlines())]
        return lines, {"task": task, "jobs": jobs}
    raise NotFoundError(f"no execution, job, value or task matches {text!r}")


def _execution_details(store: ProvenanceStore, execution: ExecutionRecord) -> tuple[list, Any]:
    lines = [f"Execution {execution.id}  {execution.status}  {execution.args}"]
    if execution.parent_job_id:
        lines.append(f"  inside job: {execution.parent_job_id}  (a subrun)")
    tags = store.tags_of(execution.id)
    lines += [f"  tag: {t.key}={t.value}" for t in tags]
    if execution.error:
        lines.append(f"  error: {execution.error}")
    if execution.result_preview is not None:
        lines.append(f"  result: {execution.result_preview}")
    jobs = store.jobs_of(execution.id)
    children: dict[str | None, list[JobRecord]] = defaultdict(list)
    ids = {job.id for job in jobs}
    for job in jobs:
        children[job.parent_id if job.parent_id in ids else None].append(job)
    # Depth-first without recursion: deep job trees are normal (recursive workflows).
    stack = [(job, 0) for job in reversed(children[None])]
    while stack:
        job, depth = stack.pop()
        lines.append(_job_line(job, depth))
        stack.extend((child, depth + 1) for child in reversed(children[job.id]))
    return lines, {"execution": execution, "tags": tags, "jobs": jobs}


def _job_details(store: ProvenanceStore, job: JobRecord) -> tuple[list[str], Any]:
    arguments = job_arguments(store, job)
    edges = store.edges_of(job.id)
    files = store.files_of(job.id)
    tags = store.tags_of(job.id)
    task = store.get_task(job.task_hash)
    result = (
        store.value_records([job.result_hash]).get(job.result_hash) if job.result_hash else None
    )
    inner = store.subruns_of(job.id)
    sources: dict[str, list[str]] = {}
    for edge in edges:
        if edge.dst_job_id == job.id:  # an argument may gather several jobs' results
            sources.setdefault(edge.name, []).append(edge.src_job_id[:8])
    lines = [
        f"Job {job.id}  {job.status}  {job.task_name}",
        f"  execution: {job.execution_id}   executor: {job.executor}   attempt: {job.attempt}",
        f"  started: {_time(job.start_time)}   took: {_duration(job.start_time, job.end_time)}",
    ]
    if job.parent_id:
        lines.append(f"  called by: job {job.parent_id}")
    if job.cache_off:
        how = {"task": "task cache=False", "run": "run"}.get(job.cache_off)
        scope = job.cache_off.removeprefix("scope:")
        lines.append(f"  cache: off ({how or 'task cache_scope=' + scope})")
    lines += [f"  tag: {t.key}={t.value}" for t in tags]
    lines.append("  arguments:")
    for argument in arguments:
        fed_by = sources.get(argument.name)
        source = f"  <- job{'s' if len(fed_by) > 1 else ''} {', '.join(fed_by)}" if fed_by else ""
        lines.append(
            f"    {argument.name} = {argument.preview}  [{argument.value_hash[:8]}]{source}"
        )
    if result is not None:
        lines.append(f"  result: {result.preview}  [{result.hash[:8]}]")
    lines += [f"  fed: job {e.dst_job_id[:8]} ({e.name})" for e in edges if e.src_job_id == job.id]
    lines += [f"  {f.role}: {f.kind} {f.path}  [{f.hash[:8]}]" for f in files]
    lines += [f"  subrun: execution {e.id}  {e.status}" for e in inner]
    if job.error:
        lines.append(f"  error: {job.error}")
    if job.traceback:
        lines += ["  traceback:", *("    " + line for line in job.traceback.splitlines())]
    if task is not None and task.source:
        lines += ["  source:", *("    " + line for line in task.source.splitlines())]
    details = {
        "job": job, "arguments": arguments, "edges": edges, "files": files, "tags": tags,
        "result": result, "task": task, "subruns": inner,
    }  # fmt: skip
    return lines, details


def _file_history(store: ProvenanceStore, path: str) -> tuple[list[str], Any]:
    """Where a file came from: the jobs that wrote it, each with its inputs, newest first."""
    if "://" not in path:
        path = os.path.abspath(path)
    history = store.file_history(path)
    if not history:
        raise NotFoundError(f"no job recorded reading or writing {path!r}")
    lines = [f"File {path}"]
    answer = []
    for file, job in history:
        verb = {"output": "written by", "input": "read by"}.get(file.role, "staged by")
        lines.append(
            f"  {verb} job {job.id[:8]} {job.task_name} ({job.status}, {_time(job.start_time)}, "
            f"execution {job.execution_id[:8]})  [{file.hash[:8]}]"
        )
        inputs = input_files(store, job.id)
        arguments = job_arguments(store, job) if file.role == "output" else []
        upstream = _upstream_inputs(store, job.id) if file.role == "output" else []
        if file.role == "output":
            lines += [f"    from {f.kind} {f.path}  [{f.hash[:8]}]" for f in inputs]
            lines += [f"    with {a.name} = {a.preview}" for a in arguments]
            lines += [
                f"    derived from {f.kind} {f.path}  [{f.hash[:8]}]  (read by job "
                f"{reader.id[:8]} {reader.task_name})"
                for f, reader in upstream
            ]
        answer.append({
            "file": file, "job": job, "inputs": inputs, "arguments": arguments,
            "upstream": [{"file": f, "job_id": reader.id} for f, reader in upstream],
        })  # fmt: skip
    return lines, answer


# How far `--file` follows the jobs whose results fed the writer of a file.
_UPSTREAM_JOBS = 200


def _upstream_inputs(store: ProvenanceStore, job_id: str) -> list[tuple[FileRecord, JobRecord]]:
    """The input files of the jobs whose results fed `job_id`, directly or through other
    jobs (its file lineage), nearest first; at most _UPSTREAM_JOBS jobs are visited."""
    seen, queue = {job_id}, [job_id]
    found: list[tuple[FileRecord, JobRecord]] = []
    while queue and len(seen) <= _UPSTREAM_JOBS:
        current = queue.pop(0)
        for edge in store.edges_of(current):
            if edge.dst_job_id != current or edge.src_job_id in seen:
                continue
            seen.add(edge.src_job_id)
            queue.append(edge.src_job_id)
            files = input_files(store, edge.src_job_id)
            if files:
                reader = store.find_job(edge.src_job_id)
                found += [(f, reader) for f in files]
    return found


def _tagged(store: ProvenanceStore, key: str, value: str | None) -> tuple[list[str], Any]:
    tags = store.tagged(key, value)
    lines = [f"{t.entity_kind:<9} {t.entity_id}  {t.key}={t.value}" for t in tags]
    return lines or ["Nothing carries that tag."], tags


# -- kredun tag -------------------------------------------------------------------------------


def _entity(store: ProvenanceStore, text: str) -> tuple[str, str]:
    """(kind, id) of the execution, job or value that `text` names."""
    found = _find_record(store, text)
    if found is None:
        raise NotFoundError(f"no execution, job or value id starts with {text!r}")
    kind, record = found
    return kind, record.hash if kind == "value" else record.id


def tag_command(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        store.ensure_schema()
        if args.tag_command == "list":
            if args.id is None:
                rows = store.all_tags()
                lines = [f"{key}={value}  ({count})" for key, value, count in rows]
                return _print_lines(lines or ["No tags recorded yet."])
            kind, entity_id = _entity(store, args.id)
            lines = [f"{t.key}={t.value}" for t in store.tags_of(entity_id)]
            return _print_lines([f"{kind} {entity_id}", *lines])
        kind, entity_id = _entity(store, args.id)
        if args.tag_command == "add":
            pairs = [parse_tag(text) for text in args.tags]
            store.write(ProvenanceBatch(tags=[TagRecord(entity_id, k, v, kind) for k, v in pairs]))
            print(f"Tagged {kind} {entity_id}: {', '.join(f'{k}={v}' for k, v in pairs)}")
            return 0
        removed = 0
        for text in args.tags:
            key, equals, value = text.partition("=")
            removed += store.remove_tags(entity_id, key, value if equals else None)
        print(f"Removed {removed} tag(s) from {kind} {entity_id}")
        return 0


def db_upgrade_command(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        old, new = store.upgrade()
        if old == new:
            print(f"Database is up to date (revision {new}).")
        else:
            print(f"Upgraded database from revision {old or 'none'} to {new}.")
    return 0
