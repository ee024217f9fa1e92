"""`kredun log --why JOB`: why a job ran rather than replaying a cached result, or where
the result it replayed came from.

The job is compared with the closest earlier call of the same task: the one whose
arguments differ least, the newest among equals. What differs is the answer: the task's
code (with a diff of its source), arguments (which, from what to what), input files, or
an explicit cache=False.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from .base import ProvenanceBackend
from .records import ArgumentRecord, FileRecord, JobRecord

# Earlier calls of the task considered when looking for the closest one.
CANDIDATES = 200
_DIFF_LINES = 40


def explain(store: ProvenanceBackend, job: JobRecord) -> list[str]:
    """Lines saying why `job` ran or what it replayed."""
    if job.status == "CACHED":
        return _replayed(store, job)
    if job.cache_off == "task":
        return [f"{job.task_name} ran because the task has cache=False: it never replays."]
    if job.cache_off == "run":
        return [
            f"{job.task_name} ran because its execution was started with the cache off "
            "(--no-cache or run(cache=False))."
        ]
    earlier = store.find_jobs(task=job.task_name, before=job.start_time, limit=CANDIDATES)
    if not earlier:
        return [f"{job.task_name} ran because no earlier call of it is recorded: a first run."]
    arguments = _by_name(job_arguments(store, job))
    closest, differences = min(
        (
            (other, _differences(arguments, _by_name(job_arguments(store, other))))
            for other in earlier
        ),
        key=lambda pair: len(pair[1]),
    )  # min keeps the first (newest) of equally close calls
    where = f"job {closest.id[:8]} (execution {closest.execution_id[:8]}, {_when(closest)})"
    if closest.eval_hash == job.eval_hash:
        return _same_call(store, job, closest, where)
    lines = [f"{job.task_name} ran: compared with the closest earlier call, {where}:"]
    if closest.task_hash != job.task_hash:
        lines.append(f"  the code of task {job.task_name} changed:")
        lines += ["    " + line for line in _source_diff(store, closest.task_hash, job.task_hash)]
    inputs = _input_files(store, closest.id)
    for name, (old, new) in differences.items():
        lines.append(_argument_change(name, old, new, inputs, _input_files(store, job.id)))
    if len(lines) == 1:
        lines.append(
            "  the same code and arguments, yet a different call hash: a task option or "
            "context that takes part in the hash differs"
        )
    return lines


def job_arguments(store: ProvenanceBackend, job: JobRecord) -> list[ArgumentRecord]:
    """A job's arguments; a replayed job's are those of the job that computed its result
    (the scheduler does not record them twice)."""
    arguments = store.arguments_of(job.id)
    if arguments or job.status != "CACHED" or job.eval_hash is None:
        return arguments
    origin = store.find_jobs(eval_hash=job.eval_hash, status="DONE", limit=1)
    return [replace(a, job_id=job.id) for a in store.arguments_of(origin[0].id)] if origin else []


def _replayed(store: ProvenanceBackend, job: JobRecord) -> list[str]:
    origin = store.find_jobs(eval_hash=job.eval_hash, status="DONE", before=job.start_time, limit=1)
    if not origin:
        return [
            f"{job.task_name} replayed a cached result (same code and arguments); the job "
            "that computed it is not in this database."
        ]
    first = origin[0]
    return [
        f"{job.task_name} replayed the cached result of job {first.id[:8]} from execution "
        f"{first.execution_id} ({_when(first)}): the same task code and arguments."
    ]


def _same_call(
    store: ProvenanceBackend, job: JobRecord, earlier: JobRecord, where: str
) -> list[str]:
    if earlier.status not in ("DONE", "CACHED"):
        return [
            f"{job.task_name} ran: the same call (code and arguments) in {where} did not "
            f"succeed ({earlier.status}), so there was no result to reuse."
        ]
    lines = [
        f"{job.task_name} ran although the same call (code and arguments) ran in {where}: "
        "its cached result was no longer valid."
    ]
    outputs = [f for f in store.files_of(earlier.id) if f.role == "output"]
    if outputs:
        lines.append("  it returned files, and a changed or deleted output invalidates it:")
        lines += [f"    {f.kind} {f.path} (hash then {f.hash[:8]})" for f in outputs]
    else:
        lines.append(
            "  a task value it holds was redefined, its stored value could not be read, or "
            "it was cached in another scope"
        )
    return lines


def _by_name(arguments: list[ArgumentRecord]) -> dict[str, ArgumentRecord]:
    return {argument.name: argument for argument in arguments}


def _differences(
    new: dict[str, ArgumentRecord], old: dict[str, ArgumentRecord]
) -> dict[str, tuple[ArgumentRecord | None, ArgumentRecord | None]]:
    return {
        name: (old.get(name), new.get(name))
        for name in dict.fromkeys([*new, *old])
        if (old[name].value_hash if name in old else None)
        != (new[name].value_hash if name in new else None)
    }


def _input_files(store: ProvenanceBackend, job_id: str) -> dict[str, FileRecord]:
    return {f.path: f for f in store.files_of(job_id) if f.role == "input"}


def _argument_change(
    name: str,
    old: ArgumentRecord | None,
    new: ArgumentRecord | None,
    old_files: dict[str, FileRecord],
    new_files: dict[str, FileRecord],
) -> str:
    if old is None or new is None:
        state = "given" if old is None else "not given"
        return f"  argument {name!r} is now {state}"
    changed = [
        f"{file.kind} {path} changed (hash {old_files[path].hash[:8]} -> {file.hash[:8]})"
        for path, file in new_files.items()
        if path in old_files and old_files[path].hash != file.hash
    ]
    if changed and (old.preview != new.preview or any(p in new.preview for p in new_files)):
        return f"  argument {name!r}: input " + "; ".join(changed)
    return f"  argument {name!r} changed: {old.preview} -> {new.preview}"


def _source_diff(store: ProvenanceBackend, old_hash: str, new_hash: str) -> list[str]:
    old, new = store.get_task(old_hash), store.get_task(new_hash)
    if old is None or new is None or not (old.source or new.source):
        return [f"task hash {old_hash[:8]} -> {new_hash[:8]} (source not recorded)"]
    diff = list(
        difflib.unified_diff(
            old.source.splitlines(), new.source.splitlines(), "before", "now", lineterm=""
        )
    )
    if not diff:
        return [f"task hash {old_hash[:8]} -> {new_hash[:8]} (same source: version or name)"]
    return diff[:_DIFF_LINES] + (["..."] if len(diff) > _DIFF_LINES else [])


def _when(job: JobRecord) -> Any:
    return job.start_time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
