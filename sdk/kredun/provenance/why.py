"""`kredun log --why JOB`: why a job ran rather than replaying a cached result, or where
the result it replayed came from.

The job is compared with the closest earlier call of the same task: the one whose
arguments differ least, the newest among equals (for a replayed job, the newest earlier
call with the same code and arguments). What differs is the answer: the task's code (with
a diff of its source) or its version or hash_includes, arguments (which, from what to
what; a context key for one a `get_context` default filled in), input files, an explicit
cache=False, and the tasks under the call. A replayed call is reused only while every task
in the subtree that produced it keeps its hash (check_valid="full"), so when one of those
changed, the calls under it ran again although the call itself replayed: the answer names
each task whose hash differs and those added to or gone from the subtree.

A job that ran a subrun is never replayed as a whole (cache=False): its nested execution,
recorded under it, replays what it can call by call. The answer for such a job lists the
nested execution's jobs that ran, each with the one-line reason it ran.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any

from . import hashed
from .base import ProvenanceBackend
from .records import ArgumentRecord, ExecutionRecord, FileRecord, JobRecord

# Earlier calls of the task considered when looking for the closest one.
CANDIDATES = 200
_DIFF_LINES = 40
# Jobs named in "ran under it"; the rest are counted.
_RAN_SHOWN = 10
_FINISHED = frozenset({"DONE", "CACHED"})
# Fewer for a dry run's explanations: it gives one for every job that would run.
_MISS_CANDIDATES = 20
# JobRecord.cache_off for a task whose cache_scope keeps it from the recorded cache.
_SCOPES = {
    "scope:CSE": "it reuses only results of its own execution.",
    "scope:NONE": "it never reuses a result.",
}


@dataclass(slots=True)
class TaskChange:
    """A task whose hashes under the job differ from those under the compared call (a
    task's hashes are usually one): `old` empty means it was not under that call (added),
    `new` empty that it is no longer under this one (gone)."""

    task: str
    old: list[str]
    new: list[str]


@dataclass(slots=True)
class HashChange:
    """A difference in the call's hash besides source and plain arguments: `kind` "option"
    (the task's `version` or `hash_includes`) or "context" (a context key read into
    `argument`); `old` and `new` are previews, None when it was or is not there."""

    kind: str
    name: str
    old: str | None
    new: str | None
    argument: str | None = None


@dataclass(slots=True)
class InnerJob:
    """A job of a subrun's nested execution that ran rather than replayed, and why."""

    job_id: str
    task: str
    status: str
    reason: str


@dataclass(slots=True)
class SubrunRun:
    """A nested execution run inside the job: how many jobs it had, the first of those
    that ran (not replayed) with their reasons, and how many more ran."""

    execution_id: str
    jobs: int
    ran: list[InnerJob]
    more: int


@dataclass(slots=True)
class Explanation:
    lines: list[str]
    compared_with: str | None = None  # the id of the earlier job the answer compares with
    task_changes: list[TaskChange] = field(default_factory=list)
    subruns: list[SubrunRun] = field(default_factory=list)
    hash_changes: list[HashChange] = field(default_factory=list)


def explain(store: ProvenanceBackend, job: JobRecord) -> Explanation:
    """Why `job` ran or what it replayed, as lines and the facts behind them; for a job
    that ran a subrun, also which jobs of its nested execution ran and why."""
    answer = _explain(store, job)
    for execution in store.subruns_of(job.id):
        nested = _subrun_run(store, execution)
        answer.subruns.append(nested)
        answer.lines += _subrun_text(nested)
    return answer


def _subrun_run(store: ProvenanceBackend, execution: ExecutionRecord) -> SubrunRun:
    jobs = store.jobs_of(execution.id)
    ran = [job for job in jobs if job.status != "CACHED"]
    # The nested jobs' own subruns are not descended into: one level answers "which inner
    # call re-ran", and each explanation costs queries.
    shown = [
        InnerJob(job.id, job.task_name, job.status, _reason(job, _explain(store, job).lines))
        for job in ran[:_RAN_SHOWN]
    ]
    return SubrunRun(execution.id, len(jobs), shown, len(ran) - len(shown))


def _subrun_text(nested: SubrunRun) -> list[str]:
    head = (
        f"  it ran a subrun: its nested execution {nested.execution_id[:8]} ({nested.jobs} "
        "jobs) replays call by call"
    )
    if not nested.ran:
        return [head + ", and replayed every one."]
    count = len(nested.ran) + nested.more
    lines = [head + f"; {count} ran:"]
    lines += [
        f"    {inner.task} (job {inner.job_id[:8]}"
        + (f", {inner.status}" if inner.status != "DONE" else "")
        + f"): {inner.reason}"
        for inner in nested.ran
    ]
    if nested.more:
        lines.append(f"    and {nested.more} more")
    return lines


def _reason(job: JobRecord, lines: list[str]) -> str:
    """An explanation in one line: what it lists (the lines one level in; deeper ones are
    details such as a source diff), else its first line."""
    listed = [line.strip().rstrip(":") for line in lines[1:] if not line.startswith("    ")]
    if listed:
        return "; ".join(listed)
    return lines[0].removeprefix(f"{job.task_name} ran because ")


def _explain(store: ProvenanceBackend, job: JobRecord) -> Explanation:
    if job.status == "CACHED":
        return _with_subtree(store, job, _replayed(store, job), _last_same_call(store, job))
    if job.cache_off == "task":
        return Explanation(
            [f"{job.task_name} ran because the task has cache=False: it never replays."]
        )
    if job.cache_off in _SCOPES:
        scope = job.cache_off.removeprefix("scope:")
        return Explanation([
            f"{job.task_name} ran because the task has cache_scope={scope}: "
            + _SCOPES[job.cache_off]
        ])  # fmt: skip
    if job.cache_off == "run":
        return Explanation([
            f"{job.task_name} ran because its execution was started with the cache off "
            "(--no-cache or run(cache=False))."
        ])  # fmt: skip
    earlier = store.find_jobs(task=job.task_name, before=job.start_time, limit=CANDIDATES)
    if not earlier:
        return Explanation(
            [f"{job.task_name} ran because no earlier call of it is recorded: a first run."]
        )
    arguments = _by_name(job_arguments(store, job))
    closest, differences = min(
        (
            (other, _differences(arguments, _by_name(job_arguments(store, other))))
            for other in earlier
        ),
        key=lambda pair: len(pair[1]),
    )  # min keeps the first (newest) of equally close calls
    where = _where(closest)
    if closest.eval_hash == job.eval_hash:
        return _with_subtree(store, job, _same_call(store, job, closest, where), closest)
    lines = [f"{job.task_name} ran: compared with the closest earlier call, {where}:"]
    old_options = hashed.decode(_hashed_of(store, closest))[0]
    new_options, context = hashed.decode(job.hashed)
    changes = _option_changes(old_options, new_options)
    if closest.task_hash != job.task_hash:
        # With a version, the source is not part of the task hash.
        versioned = "version" in old_options and "version" in new_options
        diff = [] if versioned else _source_diff(store, closest.task_hash, job.task_hash)
        if diff:
            lines.append(f"  the code of task {job.task_name} changed:")
            lines += ["    " + line for line in diff]
        elif not changes:
            # Rows recorded before jobs kept their version and hash_includes.
            why = "source not recorded" if diff is None else "same source: version or name"
            lines += [
                f"  the code of task {job.task_name} changed:",
                f"    task hash {closest.task_hash[:8]} -> {job.task_hash[:8]} ({why})",
            ]
    lines += [f"  option {c.name}: {c.old or '(none)'} -> {c.new or '(none)'}" for c in changes]
    # Arguments this call took from its context (what the earlier call did matters not:
    # the new value came from there).
    read_into = _read_into(context)
    inputs = _input_files(store, closest.id)
    for name, (old, new) in differences.items():
        key = read_into.get(name)
        if key is not None and old is not None and new is not None:
            changes.append(HashChange("context", key, old.preview, new.preview, name))
            lines.append(f"  context key {key}: {old.preview} -> {new.preview} (argument {name!r})")
        else:
            lines.append(_argument_change(name, old, new, inputs, _input_files(store, job.id)))
    if len(lines) == 1:
        lines.append(
            "  the same code and arguments, yet a different call hash, for a reason that "
            "was not recorded"
        )
    answer = _with_subtree(store, job, lines, closest)
    answer.hash_changes = changes
    return answer


def _hashed_of(store: ProvenanceBackend, job: JobRecord) -> str | None:
    """A job's `hashed` record; a replayed job's is that of the job that computed its
    result (the same eval hash: the same task hash and arguments)."""
    if job.hashed or job.status != "CACHED" or job.eval_hash is None:
        return job.hashed
    origin = store.find_jobs(eval_hash=job.eval_hash, status="DONE", limit=1)
    return origin[0].hashed if origin else None


def _read_into(context: dict[str, Any]) -> dict[Any, str]:
    """argument -> the context key a `get_context` default read into it."""
    return {entry.get("argument"): key for key, entry in context.items() if isinstance(entry, dict)}


def _option_changes(old: dict[str, Any], new: dict[str, Any]) -> list[HashChange]:
    """The task's version and hash_includes that differ between two jobs' records."""
    changes = []
    for name in ("version", "hash_includes"):
        before, after = old.get(name), new.get(name)
        if not (isinstance(before, dict) or isinstance(after, dict)):
            continue
        before = before if isinstance(before, dict) else {}
        after = after if isinstance(after, dict) else {}
        if before.get("hash") != after.get("hash"):
            changes.append(HashChange("option", name, before.get("preview"), after.get("preview")))
    return changes


def job_arguments(store: ProvenanceBackend, job: JobRecord) -> list[ArgumentRecord]:
    """A job's arguments; a replayed job's are those of the job that computed its result
    (the scheduler does not record them twice)."""
    arguments = store.arguments_of(job.id)
    if arguments or job.status != "CACHED" or job.eval_hash is None:
        return arguments
    origin = store.find_jobs(eval_hash=job.eval_hash, status="DONE", limit=1)
    return [replace(a, job_id=job.id) for a in store.arguments_of(origin[0].id)] if origin else []


def _last_same_call(store: ProvenanceBackend, job: JobRecord) -> JobRecord | None:
    """The newest earlier job of the same call that has a result: what a replayed job's
    subtree is compared with (its result's origin may be many runs older)."""
    if job.eval_hash is None:
        return None
    earlier = store.find_jobs(eval_hash=job.eval_hash, before=job.start_time, limit=CANDIDATES)
    return next((other for other in earlier if other.status in _FINISHED), None)


def _with_subtree(
    store: ProvenanceBackend, job: JobRecord, lines: list[str], earlier: JobRecord | None
) -> Explanation:
    """`lines`, followed by what changed among the tasks under `job` since `earlier`. A
    call that did not finish has only part of its subtree recorded: nothing to compare."""
    if earlier is None:
        return Explanation(lines)
    if not {job.status, earlier.status} <= _FINISHED:
        return Explanation(lines, earlier.id)
    earlier, then_jobs = _recorded_subtree(store, earlier)
    _, now_jobs = _recorded_subtree(store, job)
    old, new = _tasks([earlier, *then_jobs]), _tasks([job, *now_jobs])
    if earlier.task_hash != job.task_hash:
        # Reported above with its source diff.
        old.pop(job.task_name, None)
        new.pop(job.task_name, None)
    changes = [
        TaskChange(name, sorted(old.get(name, ())), sorted(new.get(name, ())))
        for name in sorted({*old, *new})
        if old.get(name) != new.get(name)
    ]
    if not changes:
        return Explanation(lines, earlier.id)
    if job.status == "CACHED":
        lines.append(
            f"  but tasks under it changed since {_where(earlier)}, so the calls under it "
            "were checked again:"
        )
    else:
        lines.append(f"  tasks under it changed since {_where(earlier)}:")
    lines += ["    " + _change_text(change) for change in changes]
    changed = {change.task for change in changes if change.new}
    ran = [other for other in now_jobs if other.status != "CACHED" and other.task_name in changed]
    if ran:
        shown = ", ".join(f"{other.task_name} (job {other.id[:8]})" for other in ran[:_RAN_SHOWN])
        more = f" and {len(ran) - _RAN_SHOWN} more" if len(ran) > _RAN_SHOWN else ""
        lines.append(f"  ran under it: {shown}{more}")
    return Explanation(lines, earlier.id, changes)


def _recorded_subtree(
    store: ProvenanceBackend, job: JobRecord
) -> tuple[JobRecord, list[JobRecord]]:
    """The job whose recorded subtree stands for `job`'s, and the jobs under it.

    A job that reused a check_valid="shallow" call's final value has no jobs under it: the
    tasks under it are those of the newest earlier run of the same call with jobs under it,
    which the final value was recorded from (kredun_final keeps only the newest task hashes
    of a call, so it cannot answer for an older job).
    """
    jobs = store.descendants(job.id)
    if jobs or job.status != "CACHED" or job.eval_hash is None:
        return job, jobs
    earlier = store.find_jobs(eval_hash=job.eval_hash, before=job.start_time, limit=CANDIDATES)
    origin = next((other for other in reversed(earlier) if other.status == "DONE"), None)
    if origin is None or not store.descendants(origin.id):
        return job, []  # the call returned a value: nothing ran under it
    for other in earlier:
        jobs = store.descendants(other.id) if other.status in _FINISHED else []
        if jobs:
            return other, jobs
    return job, []


def _tasks(jobs: list[JobRecord]) -> dict[str, set[str]]:
    """task name -> the hashes it had among `jobs`."""
    tasks: dict[str, set[str]] = {}
    for job in jobs:
        tasks.setdefault(job.task_name, set()).add(job.task_hash)
    return tasks


def _change_text(change: TaskChange) -> str:
    old = ", ".join(h[:8] for h in change.old)
    new = ", ".join(h[:8] for h in change.new)
    if not change.old:
        return f"task {change.task} added ({new})"
    if not change.new:
        return f"task {change.task} gone ({old})"
    return f"task {change.task} changed: {old} -> {new}"


def _where(job: JobRecord) -> str:
    return f"job {job.id[:8]} (execution {job.execution_id[:8]}, {_when(job)})"


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
    if earlier.status not in _FINISHED:
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


def input_files(store: ProvenanceBackend, job_id: str) -> list[FileRecord]:
    """The files and directories a job read."""
    return [f for f in store.files_of(job_id) if f.role == "input"]


def _input_files(store: ProvenanceBackend, job_id: str) -> dict[str, FileRecord]:
    return {f.path: f for f in input_files(store, job_id)}


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


def _source_diff(store: ProvenanceBackend, old_hash: str, new_hash: str) -> list[str] | None:
    """The diff of two tasks' sources (shortened): empty when they are the same, None when
    either is not recorded."""
    old, new = store.get_task(old_hash), store.get_task(new_hash)
    if old is None or new is None or not (old.source or new.source):
        return None
    diff = list(
        difflib.unified_diff(
            old.source.splitlines(), new.source.splitlines(), "before", "now", lineterm=""
        )
    )
    return diff[:_DIFF_LINES] + (["..."] if len(diff) > _DIFF_LINES else [])


def _when(job: JobRecord) -> Any:
    return job.start_time.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def explain_miss(
    store: ProvenanceBackend,
    task_name: str,
    task_hash: str,
    arguments: list[ArgumentRecord],
    hashed_text: str | None = None,
) -> str:
    """Why a call that a dry run found would have to run misses the cache, in redun's three
    kinds: the task's code (or version, or hash_includes) changed but an earlier call had
    these arguments; the code is known but the arguments are new; or both are new.
    `hashed_text` is the call's `hashed` record, to name those options and context keys."""
    now = _by_name(arguments)
    options, context = hashed.decode(hashed_text)
    earlier = store.find_jobs(task=task_name, limit=_MISS_CANDIDATES)
    same_code: JobRecord | None = None
    for other in earlier:
        if other.status not in _FINISHED:
            continue
        same_arguments = not _differences(now, _by_name(job_arguments(store, other)))
        if same_arguments and other.task_hash != task_hash:
            changes = _option_changes(hashed.decode(_hashed_of(store, other))[0], options)
            named = "".join(
                f"; option {c.name}: {c.old or '(none)'} -> {c.new or '(none)'}" for c in changes
            )
            return (
                f"New task '{task_name}()' with previous arguments (code changed since "
                f"{_where(other)}: task hash {other.task_hash[:8]} --> {task_hash[:8]}{named})"
            )
        if same_arguments:
            # The same task hash and arguments, so the same call: neither its options nor
            # the context values it reads differ.
            return (
                f"Existing task '{task_name}()' with previous arguments ({_where(other)}): "
                "the same call, but the cache is off for it, or its cached result failed a "
                "check (a task under it or an output file changed) or is in another cache "
                "scope or context"
            )
        if same_code is None and other.task_hash == task_hash:
            same_code = other
    if same_code is not None:
        changed = _differences(now, _by_name(job_arguments(store, same_code)))
        read_into = _read_into(context)
        names = [
            f"{name} (context key {read_into[name]})" if name in read_into else name
            for name in changed
        ]
        return (
            f"Existing task '{task_name}()' is called with new arguments ({', '.join(names)} "
            f"differ from {_where(same_code)})"
        )
    return f"New task '{task_name}()' is called with new arguments"
