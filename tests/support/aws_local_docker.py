"""A stand-in for the Docker client that moto's AWS Batch uses, running containers as processes.

moto's Batch backend (``moto.batch.models.Job.run``) drives a job through its states and runs
the job's container with ``self.docker_client.containers.run(...)``. There is no Docker engine
on CI or development machines, so the tests swap that client for :class:`LocalDockerClient`:
``containers.run()`` starts the job's *command* as a local process (the image is ignored) with
an environment shaped like the one AWS Batch gives a container. Everything else - state
transitions, ``dependsOn``, timeouts, ``terminate_job``, CloudWatch Logs, exit code to
SUCCEEDED/FAILED - stays moto's.

Only the small part of docker-py's container API that moto calls is implemented:
``containers.run(detach=True, ...)``, ``reload()``, ``status``, ``attrs``, ``logs()``,
``wait()``, ``kill()`` and ``remove()``.

This module is internal to :mod:`tests.support.aws`; tests use :class:`tests.support.aws.MotoBatch`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.batch.models import Job

#: Called once per output line as it is read: (unix time in ms, line without newline).
LogSink = Callable[[int, str], None]

#: Variables copied from the test process into every job, so that console scripts installed in
#: the test's virtualenv (``kredun``) and the interpreter itself work in the job. Everything
#: else of the test process stays out, like on a real Batch host.
PASSTHROUGH_VARIABLES = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "TMPDIR", "LANG", "LC_ALL")

#: Exit code Docker reports for a container that never ran its command (cancelled, closed).
EXIT_CODE_NOT_STARTED = 137
#: Exit code Docker reports when the command is not found in the container.
EXIT_CODE_COMMAND_NOT_FOUND = 127

# How long to wait for the output readers of an exited process. Output can stay open after the
# main process exits when it started a daemon that left the process group; don't hang on it.
_READER_JOIN_SECONDS = 5.0


def _now_ms_and_iso() -> tuple[int, str]:
    """Current time as CloudWatch milliseconds and as the RFC 3339 text Docker logs carry."""
    now = datetime.now(UTC)
    return int(now.timestamp() * 1000), now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def docker_exit_code(returncode: int) -> int:
    """Map a ``Popen.returncode`` to what Docker reports: a signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class _LogLine:
    timestamp_ms: int
    timestamp_iso: str
    text: str


class _OutputReader:
    """Drains one pipe of a job process line by line, stamping each line with its read time.

    The pipe must be drained continuously or a chatty job blocks once the pipe buffer is full,
    which is why this is a thread and why forwarding errors never stop it.
    """

    def __init__(self, pipe: Any, sink: LogSink | None, name: str) -> None:
        self.lines: list[_LogLine] = []
        self._pipe = pipe
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._pipe:
            for raw in iter(self._pipe.readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text.strip():
                    continue  # CloudWatch (and moto's log collection) drop blank lines
                ms, iso = _now_ms_and_iso()
                self.lines.append(_LogLine(ms, iso, text))
                if self._sink is not None:
                    with contextlib.suppress(Exception):
                        self._sink(ms, text)

    def join(self) -> None:
        self._thread.join(_READER_JOIN_SECONDS)


class LocalContainer:
    """One job container, backed by a local process group (or by nothing, if it never started).

    The process gets its own session so that :meth:`kill` reaches everything the command
    started (``sh -c`` children, ``kredun`` workers), as killing a Docker container does.
    """

    def __init__(
        self,
        name: str,
        process: subprocess.Popen[bytes] | None,
        *,
        log_sink: LogSink | None,
        stop_grace_seconds: float,
        exit_code: int | None = None,
        message: str = "",
    ) -> None:
        self.name = name
        self.process = process
        self._stop_grace_seconds = stop_grace_seconds
        self._preset_exit_code = exit_code
        self._forwarded_live = log_sink is not None
        self._readers: dict[str, _OutputReader] = {}
        self._preset_stderr: list[_LogLine] = []
        if process is not None:
            assert process.stdout is not None and process.stderr is not None
            for stream, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
                self._readers[stream] = _OutputReader(pipe, log_sink, f"{name}-{stream}")
        elif message:
            ms, iso = _now_ms_and_iso()
            self._preset_stderr.append(_LogLine(ms, iso, message))
            if log_sink is not None:
                with contextlib.suppress(Exception):
                    log_sink(ms, message)

    # --- what moto calls ----------------------------------------------------------------

    @property
    def status(self) -> str:
        """Docker's container status: ``running`` until the process has exited."""
        if self.process is not None and self.process.poll() is None:
            return "running"
        return "exited"

    @property
    def attrs(self) -> dict[str, Any]:
        """Enough of ``docker inspect`` for moto's multi-node jobs to find the main node's IP."""
        return {
            "State": {"Status": self.status, "ExitCode": self.exit_code or 0},
            "NetworkSettings": {"IPAddress": "127.0.0.1", "Networks": {}},
        }

    def reload(self) -> None:
        """No-op: :attr:`status` is read live from the process."""

    def wait(self, timeout: float | None = None, **_: Any) -> dict[str, Any]:
        """Wait for the process and its output, returning Docker's ``{"StatusCode": n}``."""
        if self.process is not None:
            self.process.wait(timeout)
        self._join_readers()
        return {"StatusCode": self.exit_code, "Error": None}

    def logs(
        self,
        stdout: bool = True,
        stderr: bool = True,
        timestamps: bool = False,
        **_: Any,
    ) -> bytes:
        """The output captured so far, one ``"<RFC 3339 time> <line>"`` per line like Docker.

        ``since`` is ignored: a container here only ever holds one attempt's output. When the
        lines were already forwarded live to CloudWatch this returns nothing, so that moto
        (which uploads whatever this returns once the job ends) does not store them twice.
        """
        if self.status == "exited":
            self._join_readers()
        if self._forwarded_live:
            return b""
        lines: list[_LogLine] = []
        if stdout and "stdout" in self._readers:
            lines += self._readers["stdout"].lines
        if stderr:
            lines += self._readers["stderr"].lines if "stderr" in self._readers else []
            lines += self._preset_stderr
        lines.sort(key=lambda line: line.timestamp_ms)
        rendered = [f"{ln.timestamp_iso} {ln.text}" if timestamps else ln.text for ln in lines]
        return "".join(f"{text}\n" for text in rendered).encode()

    def kill(self, signal_number: int | None = None) -> None:
        """Stop the job like AWS Batch does: SIGTERM to the whole group, SIGKILL after a grace.

        An explicit signal (docker-py's ``kill(signal=...)``) is sent as is, without escalation.
        """
        if self.process is None or self.process.poll() is not None:
            self.kill_group(signal.SIGKILL)  # stragglers the main process left behind
            return
        if signal_number is not None:
            self.kill_group(signal_number)
            return
        self.kill_group(signal.SIGTERM)
        try:
            self.process.wait(self._stop_grace_seconds)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            self.process.wait()

    def remove(self, **_: Any) -> None:
        """Make sure nothing of the container is left running."""
        self.kill_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    # --- helpers --------------------------------------------------------------------------

    @property
    def exit_code(self) -> int | None:
        if self.process is None:
            return self._preset_exit_code
        returncode = self.process.poll()
        return None if returncode is None else docker_exit_code(returncode)

    def kill_group(self, signal_number: int) -> None:
        """Signal the container's process group; a group that is already gone is fine."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal_number)

    def _join_readers(self) -> None:
        for reader in self._readers.values():
            reader.join()


class _Containers:
    """The ``docker_client.containers`` collection, bound to one moto job."""

    def __init__(self, runner: LocalBatchRunner, job: Job) -> None:
        self._runner = runner
        self._job = job

    def run(
        self,
        image: str,
        command: str | Sequence[str] | None = None,
        *,
        environment: Mapping[str, Any] | None = None,
        name: str | None = None,
        **_ignored: Any,
    ) -> LocalContainer:
        """Start the container's command; ``mounts``, networks, ``privileged`` are ignored."""
        return self._runner.start_container(self._job, image, command, environment or {}, name)


class LocalDockerClient:
    """The ``docker.DockerClient`` look-alike handed to one moto job."""

    def __init__(self, runner: LocalBatchRunner, job: Job) -> None:
        self.containers = _Containers(runner, job)


class LocalBatchRunner:
    """Runs moto Batch job containers as local processes and keeps track of them.

    One runner belongs to one :class:`tests.support.aws.MotoBatch`; ``close()`` kills every
    process it started and refuses to start new ones, so that no job outlives its test.
    """

    def __init__(
        self,
        *,
        client_env: Mapping[str, str],
        moto_host: str,
        moto_port: int,
        workdir: Path,
        image_entrypoints: Mapping[str, Sequence[str]] | None = None,
        extra_job_env: Mapping[str, str] | None = None,
        stop_grace_seconds: float = 2.0,
        live_logs: bool = True,
    ) -> None:
        self.client_env = dict(client_env)
        self.moto_host = moto_host
        self.moto_port = moto_port
        self.workdir = workdir
        self.image_entrypoints = {k: list(v) for k, v in (image_entrypoints or {}).items()}
        self.extra_job_env = dict(extra_job_env or {})
        self.stop_grace_seconds = stop_grace_seconds
        self.live_logs = live_logs
        self._lock = threading.Lock()
        self._closed = False
        self._containers: list[LocalContainer] = []
        # Serializes uploads to moto's log backend, which is not thread-safe.
        self._log_lock = threading.Lock()

    def docker_client_for(self, job: Job) -> LocalDockerClient:
        return LocalDockerClient(self, job)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """Every process started so far (running or not), oldest first; for assertions."""
        with self._lock:
            return [c.process for c in self._containers if c.process is not None]

    def close(self) -> None:
        """Kill every job process and start no more."""
        with self._lock:
            self._closed = True
            containers = list(self._containers)
        for container in containers:
            container.kill_group(signal.SIGKILL)
            if container.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    container.process.wait(_READER_JOIN_SECONDS)

    # --- container start ------------------------------------------------------------------

    def start_container(
        self,
        job: Job,
        image: str,
        command: str | Sequence[str] | None,
        environment: Mapping[str, Any],
        name: str | None,
    ) -> LocalContainer:
        container_name = name or f"job-{job.job_id}"
        sink = self._live_log_sink(job) if self.live_logs else None
        argv = self.argv_for(image, command)
        env = self.child_env(job, environment)
        with self._lock:
            if self._closed or job.stop:
                # Cancelled (or the server is going away) between moto's checks and here: a
                # real Batch never starts the container then, so neither do we.
                container = LocalContainer(
                    container_name,
                    None,
                    log_sink=None,
                    stop_grace_seconds=0,
                    exit_code=EXIT_CODE_NOT_STARTED,
                )
            else:
                container = self._spawn(container_name, argv, env, sink)
            self._containers.append(container)
        return container

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], sink: LogSink | None
    ) -> LocalContainer:
        try:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
            # Docker fails such a container with exit code 127 and says why; do the same,
            # so that the job FAILS and the reason is in its log.
            return LocalContainer(
                name,
                None,
                log_sink=sink,
                stop_grace_seconds=0,
                exit_code=EXIT_CODE_COMMAND_NOT_FOUND,
                message=f"local batch runner: cannot execute {argv!r}: {err}",
            )
        return LocalContainer(
            name, process, log_sink=sink, stop_grace_seconds=self.stop_grace_seconds
        )

    def argv_for(self, image: str, command: str | Sequence[str] | None) -> list[str]:
        """The image's entrypoint (if one was configured for it) followed by the command.

        moto hands the command over as a list (exec form). A plain string is split like a
        shell would, because that is what a person writing one would expect.
        """
        if command is None:
            args: list[str] = []
        elif isinstance(command, str):
            args = shlex.split(command)
        else:
            args = [str(part) for part in command]
        return [*self.image_entrypoints.get(image, []), *args]

    def child_env(self, job: Job, container_env: Mapping[str, Any]) -> dict[str, str]:
        """The process environment of a job, built in layers, later ones winning.

        1. A few variables of the test process, with the test interpreter's ``bin`` first on
           ``PATH`` so ``python`` and ``kredun`` are the test virtualenv's even when the tests
           were started without activating it.
        2. Client settings pointing every AWS SDK at the moto server, and AWS config files
           disabled so a developer's ``~/.aws`` cannot leak in.
        3. ``extra_job_env`` of the runner.
        4. The job's own environment (job definition + container overrides), as moto built it.
        5. What AWS Batch itself sets and a job cannot override (``AWS_BATCH_*``) plus moto's
           ``MOTO_*`` helper variables, corrected to this server.
        """
        env = {key: os.environ[key] for key in PASSTHROUGH_VARIABLES if key in os.environ}
        interpreter_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([interpreter_bin, env.get("PATH", os.defpath)])
        if sys.prefix != sys.base_prefix:
            env["VIRTUAL_ENV"] = sys.prefix
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env.update(self.client_env)
        env.update(self.extra_job_env)
        env.update({str(k): str(v) for k, v in container_env.items()})
        env["MOTO_HOST"] = f"http://{self.moto_host}"
        env["MOTO_PORT"] = str(self.moto_port)
        env["MOTO_HTTP_ENDPOINT"] = f"{env['MOTO_HOST']}:{env['MOTO_PORT']}"
        env.update(batch_variables(job))
        return env

    def _live_log_sink(self, job: Job) -> LogSink | None:
        """Make the job's log stream exist now and forward each line to it as it is printed.

        moto itself creates the stream and uploads the output only when the job has stopped;
        real Batch streams output while the job runs, which log followers rely on. Relies on
        moto's private ``_log_backend``, ``_log_group`` and ``_stream_name`` of the job; when
        they are missing, fall back to moto's upload at the end.
        """
        try:
            backend = job._log_backend
            group = job._log_group
            stream = job._stream_name
            with self._log_lock:
                backend.ensure_log_group(group)
                backend.ensure_log_stream(group, stream)
            job.log_stream_name = stream
        except Exception:
            return None

        def sink(timestamp_ms: int, message: str) -> None:
            with self._log_lock:
                backend.put_log_events(
                    group, stream, [{"timestamp": timestamp_ms, "message": message}]
                )

        return sink


def array_index_of(job_id: str) -> int | None:
    """The array index of an array child job id ``<parent-id>:<index>``, else ``None``."""
    _, sep, suffix = job_id.rpartition(":")
    return int(suffix) if sep and suffix.isdigit() else None


def batch_variables(job: Job) -> dict[str, str]:
    """The ``AWS_BATCH_*`` variables AWS Batch sets in every container, as far as moto knows.

    moto sets only ``AWS_BATCH_JOB_ID``. ``AWS_BATCH_JOB_ATTEMPT`` counts moto's attempt
    records, which moto appends right before starting the container.
    """
    variables = {
        "AWS_BATCH_JOB_ID": job.job_id,
        "AWS_BATCH_JQ_NAME": job.job_queue.name,
        "AWS_BATCH_JOB_ATTEMPT": str(max(1, len(job.attempts))),
    }
    if job.job_queue.environments:
        variables["AWS_BATCH_CE_NAME"] = job.job_queue.environments[0].name
    index = array_index_of(job.job_id)
    if index is not None:
        variables["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    return variables


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds passed; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
