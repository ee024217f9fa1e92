"""Shell commands as tasks: `script()` and `@task(script=True)`.

`script(command, inputs=[...], outputs=...)` is one call of the `kredun.script` task. Its job
(a thread, a process, a Pod or a Batch job: wherever the executor puts it) copies the
staged inputs to its disk, runs the command, copies the staged outputs back and returns a
value shaped like `outputs`, with Files in place of stagings. The input Files are arguments
and the output Files are in the result, so an edited input re-runs the script and a
deleted or changed output makes the cached result stale (see kredun.files).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any

from .errors import ScriptError
from .files import Dir, File, _Staging
from .hashing import hash_parts, is_namedtuple
from .task import task

DEFAULT_SHELL = "#!/usr/bin/env bash\nset -eo pipefail"
STDOUT = "-"  # an output File with this path stands for the command's standard output
ERROR_LINES = 20  # lines of stderr quoted in a failure's message


def prepare_command(command: str | list[str]) -> str:
    """The script to run: an argv list quoted, a string dedented; bash with `set -eo
    pipefail` unless the script names its own interpreter with `#!`."""
    if isinstance(command, list | tuple):
        command = shlex.join(str(part) for part in command)
    if not isinstance(command, str):
        raise TypeError(f"a script command must be a string or a list, not {command!r}")
    command = textwrap.dedent(command).strip()
    return command if command.startswith("#!") else f"{DEFAULT_SHELL}\n{command}"


def run_command(command: str, cwd: str | None = None) -> bytes:
    """Run a prepared script; return its stdout. A non-zero exit raises ScriptError with
    the end of its stderr in the message."""
    descriptor, script_path = tempfile.mkstemp(prefix="kredun-script-", suffix=".sh")
    try:
        with os.fdopen(descriptor, "w") as script_file:
            script_file.write(command + "\n")
        os.chmod(script_path, stat.S_IRWXU)
        done = subprocess.run([script_path], cwd=cwd, capture_output=True, check=False)
    finally:
        os.remove(script_path)
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace")
        tail = "\n".join(stderr.rstrip().splitlines()[-ERROR_LINES:])
        summary = f"script exited with status {done.returncode}"
        raise ScriptError(
            f"{summary}; stderr:\n{tail}" if tail else summary, stderr, done.returncode
        )
    return done.stdout


def script_function(func: Callable) -> Callable:
    """The function a `@task(script=True)` job runs: the task's body returns a command,
    which runs here; the job's result is its stdout (bytes)."""
    if getattr(func, "__kredun_script__", False):
        return func

    @functools.wraps(func)
    def run_script(*args: Any, **kwargs: Any) -> bytes:
        return run_command(prepare_command(func(*args, **kwargs)))

    run_script.__kredun_script__ = True  # type: ignore[attr-defined]
    return run_script


def map_nested(function: Callable[[Any], Any], value: Any) -> Any:
    """`function` applied to every leaf of nested lists, tuples, dicts, sets, namedtuples."""
    if isinstance(value, list | set | frozenset) or type(value) is tuple:
        return type(value)(map_nested(function, item) for item in value)
    if is_namedtuple(value):
        return type(value)(*(map_nested(function, item) for item in value))
    if isinstance(value, dict):
        return {key: map_nested(function, item) for key, item in value.items()}
    return function(value)


def _under(directory: str | None, value: Any) -> Any:
    """A File/Dir whose relative local path is taken inside `directory` (the tempdir)."""
    if directory is None or os.path.isabs(value.path) or "://" in value.path:
        return value
    return type(value)(os.path.join(directory, value.path))


def _stage_input(workdir: str | None, value: Any) -> Any:
    if isinstance(value, _Staging):
        type(value)(_under(workdir, value.local), value.remote).stage()
    return value


class _StandardOutput:
    """Where `File("-")` was in `outputs`: the command's stdout goes there."""

    def __kredun_hash__(self) -> str:
        return hash_parts("kredun.script.stdout", [])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StandardOutput)

    def __hash__(self) -> int:
        return hash(_StandardOutput)

    def __repr__(self) -> str:
        return 'File("-")'


def _collect_output(workdir: str | None, stdout: bytes, value: Any) -> Any:
    if isinstance(value, _StandardOutput):
        return stdout
    if not isinstance(value, _Staging):
        return value
    local = _under(workdir, value.local)
    if not local.exists():
        raise ScriptError(f"the script did not write its output {value.local.path}")
    return type(value)(local, value.remote).unstage()


@task(namespace="kredun", name="script", version="1")
def script_task(command: str, inputs: Any, outputs: Any, tempdir: bool, input_files: Any) -> Any:
    """The job of a `script()` call. `input_files` (the inputs' remote Files) is there only
    so that their hashes are part of the call's identity."""
    workdir = tempfile.mkdtemp(prefix="kredun-script-") if tempdir else None
    try:
        map_nested(functools.partial(_stage_input, workdir), inputs)
        stdout = run_command(command, cwd=workdir)
        return map_nested(functools.partial(_collect_output, workdir, stdout), outputs)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _output_spec(value: Any) -> Any:
    """`File("-")` is the stdout; an output File/Dir not staged stages to its own path."""
    if isinstance(value, File | Dir):
        return _StandardOutput() if value.path == STDOUT else value.stage(value.path)
    return value


def _remote(value: Any) -> Any:
    return value.remote if isinstance(value, _Staging) else value


def script(
    command: str | list[str],
    inputs: Any = (),
    outputs: Any = None,
    tempdir: bool = False,
    **task_options: Any,
) -> Any:
    """A call that runs a shell command as a task.

    `inputs`: nested Files and `File(remote).stage(local)` stagings copied to the job's disk
    first; `outputs`: nested Files (written in place), stagings (`File(remote).stage(local)`:
    copied back to `remote` after the command) and `File("-")` (the command's stdout, the
    default). The call evaluates to `outputs` with stagings replaced by their remote Files
    and `File("-")` by the stdout bytes. `tempdir=True` runs the command in a fresh temporary
    directory, where relative local paths are taken. `task_options` (`executor`, `memory`,
    ...) go to the job.
    """
    outputs = _StandardOutput() if outputs is None else outputs
    call_task = script_task.options(**task_options) if task_options else script_task
    return call_task(
        prepare_command(command),
        inputs,
        map_nested(_output_spec, outputs),
        bool(tempdir),
        map_nested(_remote, inputs),
    )
