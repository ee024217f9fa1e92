"""One benchmark measurement, in one fresh process, for either kredun or redun.

    python bench/workloads.py --engine kredun|redun --workload W --n N \
        --store memory|sqlite [--db PATH]

prints exactly one JSON line on stdout (the measurement) and exits 0 when the result was
correct, 1 when the engine returned a wrong result, 2 when the run raised.

Why one process per measurement: both engines keep global state (task registries, connection
pools, caches, thread pools) and peak RSS is only meaningful for a process that ran nothing
else. `bench/run.py` drives this script under each engine's own interpreter, so this file must
work with either engine installed and must not import an engine at module import time (a test
may import it, and the redun virtualenv has no kredun and vice versa).

Workloads (N = --n):
  fanout          [add(i, 1) for i in range(N)]                                    N jobs
  chain           x = 0; for i in range(N): x = add(x, i)   (an N-deep expression) N jobs
  divide          add_many(list(range(N))), the recursive halving task from redun's
                  scheduler walkthrough                                            3N-2 jobs
  nested          [{"id": i, "price": add(i, 2)} for i in range(N)]                N jobs
  cached          fanout, then a timed SECOND fanout run on the same scheduler and store
                  (every job is a cache hit)                                       N jobs
  cached_cli      `<engine> run wf.py main --n N` once in a fresh working dir, then a timed
                  second CLI process on the same store (whole-process time)       N+2 jobs
  startup         `<engine> run hello.py main` (one trivial task) in a fresh working dir,
                  whole-process time (cold: no store yet)                          1 job
  startup_cached  the same, timed on the second run in that dir (cache hit)        1 job
  files           N local input files (made untimed): shout(File) per file reads it and
                  writes an upper-cased File, then total_size(outputs); the timed first
                  run, then an untimed-in-`seconds` cached rerun (extra.cached_seconds)
                                                                                   N+1 jobs
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ENGINES = ("kredun", "redun")
STORES = ("memory", "sqlite")
IN_PROCESS_WORKLOADS = ("fanout", "chain", "divide", "nested", "cached", "files")
CLI_WORKLOADS = ("cached_cli", "startup", "startup_cached")
WORKLOADS = IN_PROCESS_WORKLOADS + CLI_WORKLOADS

# redun walks (and repr()s) expressions recursively: an N-deep chain needs a few Python frames
# per level, so redun gets a raised limit; kredun must run at Python's default (1000).
REDUN_MIN_RECURSION_LIMIT = 10_000

EXIT_OK = 0
EXIT_WRONG_RESULT = 1
EXIT_ERROR = 2


@dataclass
class Measurement:
    """What one run reports; run.py parses this from the JSON line."""

    engine: str
    workload: str
    store: str
    n: int
    jobs: int
    status: str = "error"  # "ok" | "wrong" | "error"
    seconds: float | None = None  # timed part: scheduler.run(), or the whole CLI process
    jobs_per_s: float | None = None
    rss_mb: float | None = None  # peak RSS of the measured process
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class WrongResultError(Exception):
    """The engine returned something other than the known answer."""


def job_count(workload: str, n: int) -> int:
    """Number of task calls (user jobs) a workload makes; engine-internal root jobs excluded."""
    if workload == "divide":
        # add_many over a list of N leaves: 2N-1 add_many calls and N-1 add calls.
        return max(3 * n - 2, 1)
    if workload == "cached_cli":
        return n + 2  # main, N adds, total
    if workload == "files":
        return n + 1  # N shouts, total_size
    if workload in ("startup", "startup_cached"):
        return 1
    return n


def store_label(workload: str, store: str) -> str:
    """CLI workloads always use the CLI's own SQLite store, whatever --store says."""
    return "sqlite" if workload in CLI_WORKLOADS else store


def quiet_engine_logging(engine: str) -> None:
    """Keep per-job INFO lines (redun logs every job) from dominating the measurement."""
    logging.getLogger(engine).setLevel(logging.WARNING)


def load_engine(engine: str) -> tuple[Any, Callable[..., Any], type]:
    """Import `Scheduler, task, File` from the chosen engine, the way a user would."""
    module = importlib.import_module(engine)
    quiet_engine_logging(engine)  # redun sets its logger to INFO at import
    return module.Scheduler, module.task, module.File


def make_scheduler(engine: str, scheduler_cls: Any, store: str, db_path: Path | None) -> Any:
    """A scheduler with the default local thread executor and the requested store."""
    if store == "memory":
        scheduler = scheduler_cls()
    elif engine == "redun":
        from redun.config import Config  # type: ignore[import-not-found]

        assert db_path is not None
        config = Config({"backend": {"db_uri": f"sqlite:///{db_path}"}})
        scheduler = scheduler_cls(config=config)
        # Only the in-memory backend is loaded by the constructor; a file db needs load()
        # (the redun CLI does the same), which also creates the schema.
        scheduler.load()
    else:
        assert db_path is not None
        scheduler = scheduler_cls(db_uri=f"sqlite:///{db_path}")
        # Open the database and create the schema before timing, as redun's load() above.
        scheduler.store  # noqa: B018
    logger = getattr(scheduler, "logger", None)
    if isinstance(logger, logging.Logger):
        logger.setLevel(logging.WARNING)
    return scheduler


def define_tasks(task: Callable[..., Any]) -> SimpleNamespace:
    """The benchmark's tasks, defined against whichever engine's `task` decorator."""

    @task(namespace="bench")
    def add(a, b):
        return a + b

    @task(namespace="bench")
    def add_many(values, init=0):
        if len(values) == 0:
            return init
        elif len(values) == 1:
            return values[0]
        else:
            k = len(values) // 2
            sum1 = add_many(values[:k])
            sum2 = add_many(values[k:])
            return add(sum1, sum2)

    return SimpleNamespace(add=add, add_many=add_many)


def define_file_tasks(task: Callable[..., Any], file_class: type) -> SimpleNamespace:
    """A file pipeline's tasks, against either engine's `task` and `File`."""

    @task(namespace="bench")
    def shout(source, out_dir):
        output = file_class(out_dir + "/" + source.basename())
        output.write(source.read().upper())
        return output

    @task(namespace="bench")
    def total_size(outputs):
        return sum(len(output.read()) for output in outputs)

    return SimpleNamespace(shout=shout, total_size=total_size)


def make_input_files(directory: Path, n: int) -> tuple[list[str], int]:
    """N small input files; the total size of their upper-cased copies."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = directory / f"sample{i:05d}.txt"
        path.write_text(f"sample {i}\n" * 3)
        paths.append(str(path))
    return paths, sum(len(f"sample {i}\n" * 3) for i in range(n))


def build_files(tasks: SimpleNamespace, file_class: type, paths: list[str], out_dir: str) -> Any:
    return tasks.total_size([tasks.shout(file_class(path), out_dir) for path in paths])


def build(tasks: SimpleNamespace, workload: str, n: int) -> tuple[Any, Any]:
    """The expression to run and the answer it must produce."""
    add = tasks.add
    if workload in ("fanout", "cached"):
        return [add(i, 1) for i in range(n)], [i + 1 for i in range(n)]
    if workload == "chain":
        x: Any = 0
        for i in range(n):
            x = add(x, i)
        return x, n * (n - 1) // 2
    if workload == "divide":
        return tasks.add_many(list(range(n))), n * (n - 1) // 2
    if workload == "nested":
        expr = [{"id": i, "price": add(i, 2)} for i in range(n)]
        return expr, [{"id": i, "price": i + 2} for i in range(n)]
    raise ValueError(f"not an in-process workload: {workload}")


def check(result: Any, expected: Any, what: str) -> None:
    if result != expected:
        shown = repr(result)
        shown = shown if len(shown) < 300 else shown[:300] + "..."
        raise WrongResultError(f"{what}: wrong result {shown}")


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def run_in_process(m: Measurement, db_path: Path | None, workdir: Path) -> None:
    """Time scheduler.run() (expression building and engine import are not timed)."""
    if m.engine == "redun":
        limit = max(REDUN_MIN_RECURSION_LIMIT, 10 * m.n + 1000)
        sys.setrecursionlimit(limit)
        m.notes.append(f"sys.setrecursionlimit({limit}) (redun recurses over deep expressions)")
    start = time.perf_counter()
    scheduler_cls, task, file_class = load_engine(m.engine)
    m.extra["import_seconds"] = round(time.perf_counter() - start, 4)
    # Not part of `seconds`: redun creates its schema here (constructor or load()), while
    # kredun may open its store lazily inside the first run(); reported so that shows.
    start = time.perf_counter()
    scheduler = make_scheduler(m.engine, scheduler_cls, m.store, db_path)
    m.extra["setup_seconds"] = round(time.perf_counter() - start, 4)
    if m.workload == "files":
        run_files(m, scheduler, task, file_class, workdir)
        return
    tasks = define_tasks(task)
    expr, expected = build(tasks, m.workload, m.n)

    start = time.perf_counter()
    result = scheduler.run(expr)
    elapsed = time.perf_counter() - start
    check(result, expected, m.workload)

    if m.workload == "cached":
        m.extra["first_run_seconds"] = round(elapsed, 4)
        expr, expected = build(tasks, m.workload, m.n)  # fresh expression objects
        start = time.perf_counter()
        result = scheduler.run(expr)
        elapsed = time.perf_counter() - start
        check(result, expected, "cached (second run)")

    m.seconds = elapsed
    m.rss_mb = peak_rss_mb()


def run_files(m: Measurement, scheduler: Any, task: Any, file_class: type, workdir: Path) -> None:
    """Time the file pipeline's first run; its cached rerun (every File checked against the
    disk, nothing run) goes to extra.cached_seconds."""
    paths, expected = make_input_files(workdir / "inputs", m.n)
    out_dir = str(workdir / "outputs")
    tasks = define_file_tasks(task, file_class)
    start = time.perf_counter()
    result = scheduler.run(build_files(tasks, file_class, paths, out_dir))
    m.seconds = time.perf_counter() - start
    check(result, expected, "files")
    start = time.perf_counter()
    result = scheduler.run(build_files(tasks, file_class, paths, out_dir))
    m.extra["cached_seconds"] = round(time.perf_counter() - start, 4)
    check(result, expected, "files (cached rerun)")
    m.rss_mb = peak_rss_mb()


FANOUT_WORKFLOW = '''\
"""Benchmark workflow: a fan-out of N trivial tasks, gathered into one total."""
from {engine} import task

{engine}_namespace = "bench"


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def total(values: list) -> int:
    return sum(values)


@task()
def main(n: int = 10) -> int:
    return total([add(i, 1) for i in range(n)])
'''

HELLO_WORKFLOW = '''\
"""Benchmark workflow: one trivial task, to measure CLI start-up."""
from {engine} import task

{engine}_namespace = "bench"


@task()
def main() -> str:
    return "hello"
'''


@dataclass
class CliRun:
    seconds: float
    rss_mb: float
    returncode: int
    stdout: str
    stderr_tail: str


def cli_executable(engine: str) -> Path:
    """The engine's console script next to the interpreter running this file (its venv)."""
    path = Path(sys.executable).parent / engine
    if not path.exists():
        raise FileNotFoundError(f"{engine} CLI not found at {path}")
    return path


def cli_env(engine: str, workdir: Path) -> dict[str, str]:
    """The caller's environment minus anything that would point the CLI at another store.

    Both CLIs also search for their config dir in parent directories (redun) or honour
    $KREDUN_CONFIG / $KREDUN_DATABASE_URI (kredun); the benchmark wants the working dir's own.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KREDUN_", "REDUN_"))}
    if engine == "redun":
        env["REDUN_CONFIG"] = str(workdir / ".redun")
    return env


def run_cli(argv: list[str], cwd: Path, label: str, env: dict[str, str]) -> CliRun:
    """Run one CLI process; time it whole, and take its own peak RSS via wait4().

    wait4() gives this child's rusage alone, whereas RUSAGE_CHILDREN would report the maximum
    over every child waited for so far (the first, un-timed run included).
    """
    out_path, err_path = cwd / f"{label}.stdout", cwd / f"{label}.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_text(errors="replace")
    return CliRun(
        seconds=elapsed,
        rss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr_tail=stderr[-2000:],
    )


def check_cli(run: CliRun, expected: str, what: str) -> None:
    """The CLI must exit 0 and print the result as its last stdout line."""
    if run.returncode != 0:
        raise RuntimeError(f"{what}: exit code {run.returncode}\n{run.stderr_tail}")
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if last.strip("'\"") != expected:
        raise WrongResultError(
            f"{what}: expected {expected!r} as the last output line, got {last!r}"
        )


def run_cli_workload(m: Measurement, workdir: Path) -> None:
    """Whole-process timing of `<engine> run ...` in a fresh working directory."""
    exe = str(cli_executable(m.engine))
    if m.workload == "cached_cli":
        (workdir / "wf.py").write_text(FANOUT_WORKFLOW.format(engine=m.engine))
        argv = [exe, "run", "wf.py", "main", "--n", str(m.n)]
        expected = str(sum(i + 1 for i in range(m.n)))
    else:
        (workdir / "hello.py").write_text(HELLO_WORKFLOW.format(engine=m.engine))
        argv = [exe, "run", "hello.py", "main"]
        expected = "hello"
    m.extra["command"] = " ".join([m.engine, *argv[1:]])
    env = cli_env(m.engine, workdir)

    if m.workload in ("cached_cli", "startup_cached"):
        first = run_cli(argv, workdir, "first", env)
        check_cli(first, expected, f"{m.workload} (first run)")
        m.extra["first_run_seconds"] = round(first.seconds, 4)
        m.extra["first_run_rss_mb"] = round(first.rss_mb, 1)
    timed = run_cli(argv, workdir, "timed", env)
    check_cli(timed, expected, m.workload)
    m.seconds = timed.seconds
    m.rss_mb = timed.rss_mb


def measure(engine: str, workload: str, n: int, store: str, db: Path | None) -> Measurement:
    """Run one workload and fill in a Measurement (status tells how it went)."""
    if workload in ("startup", "startup_cached"):
        n = 1  # one task whatever --n says
    m = Measurement(engine, workload, store_label(workload, store), n, job_count(workload, n))
    with tempfile.TemporaryDirectory(prefix=f"kredun-bench-{engine}-") as tmp:
        workdir = Path(tmp)
        try:
            if workload in CLI_WORKLOADS:
                run_cli_workload(m, workdir)
            else:
                db_path = (db or workdir / "bench.db") if store == "sqlite" else None
                run_in_process(m, db_path, workdir)
            m.status = "ok"
        except WrongResultError as exc:
            m.status, m.error = "wrong", str(exc)
        except BaseException as exc:  # RecursionError, engine errors, KeyboardInterrupt
            m.status = "error"
            m.error = f"{type(exc).__name__}: {exc}"[:2000]
            traceback.print_exc(file=sys.stderr)
    if m.seconds:
        m.jobs_per_s = m.jobs / m.seconds
    return m


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--store", choices=STORES, default="memory")
    parser.add_argument("--db", type=Path, help="SQLite file for --store sqlite (default: temp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    real_stdout = sys.stdout
    # Anything the engine prints goes to stderr: stdout carries exactly one JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        m = measure(args.engine, args.workload, args.n, args.store, args.db)
    real_stdout.write(json.dumps(asdict(m)) + "\n")
    real_stdout.flush()
    return {"ok": EXIT_OK, "wrong": EXIT_WRONG_RESULT}.get(m.status, EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main())
