"""Side-by-side benchmark: kredun against redun 0.44.1, the speed anchor.

    python bench/run.py [--workloads fanout,chain,...] [--n 1000] [--engines kredun,redun]
                        [--stores memory,sqlite] [--quick] [--scale] [--timeout 600] [--reuse]

Every (engine, workload, store) combination runs in a FRESH subprocess of `bench/workloads.py`
(see its docstring for the workloads): kredun under this interpreter (the project venv), redun
under `bench/.venv-redun/bin/python`, a virtualenv created once with the PyPI package. Fresh
processes keep one engine's warm caches, thread pools and peak RSS out of the next measurement.

Writes a Markdown table to stdout and `bench/results/latest.md`, the raw records to
`bench/results/latest.json` (plus timestamped copies), and each run's stderr to
`bench/results/logs/`. Exits 1 if any run returned a wrong result or any kredun run failed;
redun failures (timeouts, RecursionError) are recorded, not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from workloads import (  # noqa: E402  (bench/ is not a package)
    CLI_WORKLOADS,
    STORES,
    WORKLOADS,
    job_count,
    store_label,
)

REPO_DIR = BENCH_DIR.parent
WORKLOADS_PY = BENCH_DIR / "workloads.py"
RESULTS_DIR = BENCH_DIR / "results"
REDUN_VENV = BENCH_DIR / ".venv-redun"
REDUN_VERSION = "0.44.1"
ENGINES = ("kredun", "redun")

# `startup` on the command line means both the cold and the cached start-up rows.
ALIASES = {"startup": ("startup", "startup_cached")}
DEFAULT_WORKLOADS = (
    "fanout", "chain", "divide", "nested", "cached", "files", "cached_cli", "startup",
)  # fmt: skip
QUICK_N = 100

# kredun-only runs at a scale redun cannot reach: (workload, store, N).
SCALE_RUNS = (("fanout", "sqlite", 100_000), ("chain", "memory", 100_000))

ROW_LABELS = {"startup": "startup (cold)", "startup_cached": "startup (cached)"}
THROUGHPUT_WORKLOADS = ("fanout", "chain", "divide", "nested")
THROUGHPUT_TARGET = 50.0  # redun/kredun time ratio
CACHED_TARGET = 100.0
SCALE_FANOUT_SECONDS = 60.0
SCALE_RSS_MB = 1024.0
STARTUP_SECONDS = 0.5


@dataclass(frozen=True)
class Combo:
    """One measurement to take."""

    engine: str
    workload: str
    store: str
    n: int
    scale: bool = False

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.engine, self.workload, self.store, self.n)

    def describe(self) -> str:
        return f"{self.engine} {self.workload} {self.store} N={self.n}"


# ---------------------------------------------------------------------------- environment


def redun_installed_version(python: Path) -> str | None:
    """The redun version in that interpreter, read from metadata (importing redun takes ~2 s)."""
    code = "import importlib.metadata as m; print(m.version('redun'))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_redun_venv() -> Path:
    """Create `bench/.venv-redun` with redun from PyPI once; later calls reuse it."""
    python = REDUN_VENV / "bin" / "python"
    if python.exists() and redun_installed_version(python) == REDUN_VERSION:
        return python
    if not python.exists():
        log(f"creating {REDUN_VENV} ...")
        subprocess.run([sys.executable, "-m", "venv", str(REDUN_VENV)], check=True)
    log(f"installing redun=={REDUN_VERSION} into {REDUN_VENV} ...")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         f"redun=={REDUN_VERSION}"],
        check=True,
    )  # fmt: skip
    return python


def interpreter(engine: str) -> Path:
    return Path(sys.executable) if engine == "kredun" else REDUN_VENV / "bin" / "python"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- running


def failed_record(combo: Combo, status: str, error: str) -> dict[str, Any]:
    return {
        "engine": combo.engine,
        "workload": combo.workload,
        "store": combo.store,
        "n": combo.n,
        "jobs": job_count(combo.workload, combo.n),
        "status": status,
        "seconds": None,
        "jobs_per_s": None,
        "rss_mb": None,
        "error": error,
        "notes": [],
        "extra": {},
    }


def run_combo(combo: Combo, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process group; a timeout kills the whole group."""
    logs_dir = RESULTS_DIR / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"{combo.engine}-{combo.workload}-{combo.store}-{combo.n}.log"
    with tempfile.TemporaryDirectory(prefix="kredun-bench-run-") as tmp:
        cmd = [
            str(interpreter(combo.engine)), str(WORKLOADS_PY),
            "--engine", combo.engine, "--workload", combo.workload, "--n", str(combo.n),
            "--store", combo.store, "--db", str(Path(tmp) / "bench.db"),
        ]  # fmt: skip
        start = time.perf_counter()
        with log_path.open("w") as stderr:
            stderr.write("$ " + shlex.join(cmd) + "\n")
            stderr.flush()
            proc = subprocess.Popen(
                cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=stderr, text=True,
                start_new_session=True,  # own process group: CLI grandchildren die with it
            )  # fmt: skip
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return failed_record(combo, "timeout", f"no result within {timeout:g} s")
        process_seconds = time.perf_counter() - start

    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = log_path.read_text(errors="replace")[-1500:]
        return failed_record(combo, "error", f"exit {proc.returncode}, no JSON line; {tail}")
    record: dict[str, Any] = json.loads(lines[-1])
    record["extra"]["process_seconds"] = round(process_seconds, 3)
    record["extra"]["load_avg_1min"] = round(os.getloadavg()[0], 2)  # others' work skews times
    return record


def run_repeated(combo: Combo, timeout: float, repeat: int) -> dict[str, Any]:
    """Best of `repeat` runs: the machine is shared, and noise only ever adds time.

    Any run that fails or returns a wrong result wins over the successful ones, so a flaky
    wrong answer is never hidden by a good one.
    """
    records = []
    for _ in range(max(repeat, 1)):
        record = run_combo(combo, timeout)
        if record["status"] != "ok":
            return record
        records.append(record)
    best = min(records, key=lambda r: r["seconds"])
    if len(records) > 1:
        best["extra"]["repeats_seconds"] = [round(r["seconds"], 4) for r in records]
    return best


def expand_workloads(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for workload in ALIASES.get(name, (name,)):
            if workload not in WORKLOADS:
                raise SystemExit(f"unknown workload {workload!r}; choose from {WORKLOADS}")
            if workload not in out:
                out.append(workload)
    return out


def plan(args: argparse.Namespace) -> list[Combo]:
    """Every combination to measure, kredun and redun interleaved per row."""
    combos: list[Combo] = []
    for workload in expand_workloads(args.workloads):
        # CLI workloads always use the CLI's own SQLite store: one row, not one per store.
        stores = ["sqlite"] if workload in CLI_WORKLOADS else args.stores
        for store in stores:
            for engine in args.engines:
                n = args.n if engine == "kredun" else args.redun_n
                if workload in ("startup", "startup_cached"):
                    n = 1
                combo = Combo(engine, workload, store_label(workload, store), n)
                if combo not in combos:
                    combos.append(combo)
    if args.scale:
        combos += [Combo("kredun", w, s, n, scale=True) for w, s, n in SCALE_RUNS]
    return combos


def load_previous(paths: list[Path]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Successful records of earlier runs, for --reuse (redun rows take minutes each).

    With several files, the fastest record per key wins: the same best-of rule as --repeat.
    """
    best: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for path in paths:
        for r in json.loads(path.read_text()).get("records", []):
            key = (r["engine"], r["workload"], r["store"], r["n"])
            if r.get("status") == "ok" and (key not in best or r["seconds"] < best[key]["seconds"]):
                best[key] = r
    return best


def run_all(args: argparse.Namespace, combos: list[Combo]) -> list[dict[str, Any]]:
    previous = load_previous(args.reuse or [])
    records: list[dict[str, Any]] = []
    for index, combo in enumerate(combos, 1):
        prefix = f"[{index}/{len(combos)}] {combo.describe()}"
        fallback_key = (combo.engine, combo.workload, combo.store, args.redun_fallback_n)
        if combo.engine == "redun" and combo.key not in previous and fallback_key in previous:
            combo_key = fallback_key  # an earlier run already fell back to the smaller N
        else:
            combo_key = combo.key
        if combo_key in previous:
            record = dict(previous[combo_key], reused=True)
            log(f"{prefix}: reused ({record['seconds']:.3f} s)")
        else:
            log(f"{prefix} ...")
            record = run_repeated(combo, args.timeout, args.repeat)
            # Policy for redun's slowest rows: a timeout at full N is re-measured at a
            # smaller N, and the table compares jobs/s instead of times (labelled).
            fallback = args.redun_fallback_n
            if (
                record["status"] == "timeout"
                and combo.engine == "redun"
                and fallback
                and fallback < combo.n
                and combo.workload not in ("startup", "startup_cached")
            ):
                log(f"{prefix}: timeout; re-measuring redun at N={fallback}")
                retry = Combo(combo.engine, combo.workload, combo.store, fallback)
                record = run_repeated(retry, args.timeout, args.repeat)
                record.setdefault("notes", []).append(
                    f"timed out at N={combo.n} within {args.timeout:g} s; measured at N={fallback}"
                )
            shown = f"{record['seconds']:.3f} s" if record["seconds"] is not None else ""
            log(f"{prefix}: {record['status']} {shown} {record.get('error') or ''}".rstrip())
        record["scale"] = combo.scale
        records.append(record)
    return records


# ---------------------------------------------------------------------------- reporting


def fmt_seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 0.1:
        return f"{value:.2f} s"
    return f"{value * 1000:.1f} ms"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def cells(record: dict[str, Any] | None) -> list[str]:
    """time | jobs/s | RSS cells for one engine's record."""
    if record is None:
        return ["—", "—", "—"]
    if record["status"] != "ok":
        label = {"timeout": "timeout", "wrong": "**WRONG RESULT**"}.get(record["status"], "failed")
        return [label, "—", "—"]
    return [
        fmt_seconds(record["seconds"]),
        fmt_rate(record["jobs_per_s"]),
        f"{record['rss_mb']:.0f}",
    ]


def ratio(kredun: dict[str, Any] | None, redun: dict[str, Any] | None) -> tuple[float, bool] | None:
    """redun time / kredun time; (value, scaled) where scaled means the Ns differ."""
    if not kredun or not redun or kredun["status"] != "ok" or redun["status"] != "ok":
        return None
    if kredun["n"] == redun["n"]:
        return redun["seconds"] / kredun["seconds"], False
    return kredun["jobs_per_s"] / redun["jobs_per_s"], True


def row_key(record: dict[str, Any]) -> tuple[str, str]:
    return (record["workload"], record["store"])


def comparison_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, store), in workload then store order."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("scale"):
            continue
        row = rows.setdefault(row_key(record), {"workload": record["workload"],
                                                "store": record["store"]})  # fmt: skip
        row[record["engine"]] = record
    order = {w: i for i, w in enumerate(WORKLOADS)}
    return sorted(rows.values(), key=lambda r: (order[r["workload"]], STORES.index(r["store"])))


def comparison_table(rows: list[dict[str, Any]]) -> tuple[list[str], bool]:
    header = (
        "| workload | store | N | kredun time | kredun jobs/s | kredun RSS MB "
        "| redun time | redun jobs/s | redun RSS MB | redun/kredun time ratio |"
    )
    lines = [header, "|" + "---|" * 10]
    any_scaled = False
    for row in rows:
        kredun, redun = row.get("kredun"), row.get("redun")
        ns = sorted({r["n"] for r in (kredun, redun) if r})
        n_cell = str(ns[0]) if len(ns) == 1 else f"{kredun['n']} (redun: {redun['n']})"  # type: ignore[index]
        r = ratio(kredun, redun)
        if r is None:
            ratio_cell = "—"
        elif r[1]:
            ratio_cell = f"{r[0]:,.0f}x †"
            any_scaled = True
        else:
            ratio_cell = f"{r[0]:,.1f}x" if r[0] < 10 else f"{r[0]:,.0f}x"
        label = ROW_LABELS.get(row["workload"], row["workload"])
        store = f"{row['store']} (CLI)" if row["workload"] in CLI_WORKLOADS else row["store"]
        lines.append(
            f"| {label} | {store} | {n_cell} | " + " | ".join(cells(kredun)) + " | "
            + " | ".join(cells(redun)) + f" | {ratio_cell} |"
        )  # fmt: skip
    return lines, any_scaled


def scale_table(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| workload | store | N | kredun time | kredun jobs/s | kredun RSS MB |",
        "|---" * 6 + "|",
    ]
    for r in records:
        if r.get("scale"):
            lines.append(
                f"| {r['workload']} | {r['store']} | {r['n']:,} | " + " | ".join(cells(r)) + " |"
            )
    return lines


def targets(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The README's targets, each PASS / FAIL / n/a against this run."""
    out: list[str] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "**FAIL**")

    for row in rows:
        r = ratio(row.get("kredun"), row.get("redun"))
        workload = row["workload"]
        if workload in THROUGHPUT_WORKLOADS:
            goal = THROUGHPUT_TARGET
        elif workload in ("cached", "cached_cli"):
            goal = CACHED_TARGET
        else:
            continue
        shown = (f"{r[0]:,.0f}x" + (" (jobs/s ratio †)" if r[1] else "")) if r else "no ratio"
        ok = None if r is None else r[0] >= goal
        out.append(f"- {workload} / {row['store']}: ≥{goal:.0f}x redun — {shown}: {verdict(ok)}")
    for r in records:
        if r["engine"] != "kredun":
            continue
        good = r["status"] == "ok"
        if r.get("scale") and r["workload"] == "fanout":
            ok = good and r["seconds"] < SCALE_FANOUT_SECONDS and r["rss_mb"] < SCALE_RSS_MB
            got = f"{r['seconds']:.1f} s, {r['rss_mb']:.0f} MB" if good else r["status"]
            out.append(
                f"- fanout N={r['n']:,} {r['store']}: < {SCALE_FANOUT_SECONDS:.0f} s and "
                f"< {SCALE_RSS_MB:.0f} MB RSS — {got}: {verdict(ok)}"
            )
        elif r.get("scale") and r["workload"] == "chain":
            got = f"{r['seconds']:.1f} s" if good else f"{r['status']}: {r.get('error')}"
            out.append(
                f"- chain N={r['n']:,} {r['store']} at the default recursion limit — "
                f"{got}: {verdict(good)}"
            )
        elif r["workload"] in ("startup", "startup_cached"):
            ok = good and r["seconds"] < STARTUP_SECONDS
            got = f"{r['seconds']:.2f} s" if good else r["status"]
            out.append(
                f"- `kredun run` one-task workflow ({ROW_LABELS[r['workload']]}) "
                f"< {STARTUP_SECONDS} s — {got}: {verdict(ok)}"
            )
    return out


def git_revision() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return "no commit"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "sdk"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return proc.stdout.strip() + (" (sdk/ modified)" if dirty else "")


def report(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    rows = comparison_rows(records)
    table, any_scaled = comparison_table(rows)
    lines = [
        "# kredun vs redun benchmark",
        "",
        f"{meta['date']} · {meta['machine']} (1-min load average at start: "
        f"{meta['load_avg_at_start']}) · Python {meta['python']} · "
        f"kredun {meta['kredun_revision']} · redun {REDUN_VERSION}",
        "",
        f"`{meta['command']}`",
        "",
        *table,
        "",
    ]
    if any_scaled:
        lines += [
            "† redun ran at a smaller N (it timed out, or `--redun-n` was given): the ratio is "
            "kredun jobs/s ÷ redun jobs/s, not a ratio of times for the same work.",
            "",
        ]
    lines += [
        "Time: `scheduler.run()` wall time (for `cached`, the second run); for CLI rows the whole "
        "`<engine> run` process. jobs/s = task calls ÷ time. RSS: peak of the measured process.",
        "",
    ]
    scale = scale_table(records)
    if len(scale) > 2:
        lines += ["## Scale (kredun only)", "", *scale, ""]
    goals = targets(records, rows)
    if goals:
        lines += ["## Targets", "", *goals, ""]
    notes = sorted({f"{r['engine']}: {note}" for r in records for note in r.get("notes") or []})
    problems = [
        f"- {r['engine']} {r['workload']} {r['store']} N={r['n']}: {r['status']}: "
        + " ".join(str(r.get("error") or "").split())[:300]
        for r in records
        if r["status"] != "ok"
    ]
    reused = sum(1 for r in records if r.get("reused"))
    if reused:
        notes.append(f"{reused} records reused from earlier runs (--reuse; fastest kept)")
    if notes or problems:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), *problems, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    csv = lambda text: [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
    parser.add_argument(
        "--workloads",
        type=csv,
        default=list(DEFAULT_WORKLOADS),
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument("--n", type=int, default=None, help="N for every workload (default 1000)")
    parser.add_argument("--redun-n", type=int, default=None, help="N for redun runs (default: --n)")
    parser.add_argument(
        "--redun-fallback-n",
        type=int,
        default=200,
        help="re-measure a redun run that timed out at this N (0: don't)",
    )
    parser.add_argument("--engines", type=csv, default=list(ENGINES))
    parser.add_argument("--stores", type=csv, default=list(STORES))
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N} unless --n is given")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="add kredun-only runs: fanout 100k on SQLite, chain 100k",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per combination; the fastest is reported"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument(
        "--reuse",
        nargs="*",
        type=Path,
        metavar="JSON",
        help="reuse successful records with the same key from earlier runs' raw JSON "
        "(default: results/latest.json; with several files the fastest record wins)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    args.n = args.n or (QUICK_N if args.quick else 1000)
    args.redun_n = args.redun_n or args.n
    if args.reuse == []:
        args.reuse = [RESULTS_DIR / "latest.json"]
    for name, allowed in (("engines", ENGINES), ("stores", STORES)):
        bad = set(getattr(args, name)) - set(allowed)
        if bad:
            parser.error(f"--{name}: unknown {sorted(bad)}; choose from {allowed}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "redun" in args.engines:
        ensure_redun_venv()
    combos = plan(args)
    started = dt.datetime.now().astimezone()
    load_at_start = os.getloadavg()[0]
    records = run_all(args, combos)
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_avg_at_start": round(load_at_start, 2),
        "python": platform.python_version(),
        "kredun_revision": git_revision(),
        "command": "python bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
    }
    markdown = report(records, meta)
    print(markdown)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    raw = json.dumps({"meta": meta, "records": records}, indent=2)
    for name in ("latest", stamp):
        (RESULTS_DIR / f"{name}.md").write_text(markdown + "\n")
        (RESULTS_DIR / f"{name}.json").write_text(raw + "\n")
    log(f"wrote {RESULTS_DIR / 'latest.md'} and {RESULTS_DIR / 'latest.json'}")

    wrong = [r for r in records if r["status"] == "wrong"]
    kredun_failed = [r for r in records if r["engine"] == "kredun" and r["status"] != "ok"]
    for r in wrong:
        log(
            f"!!! WRONG RESULT: {r['engine']} {r['workload']} {r['store']} N={r['n']}: {r['error']}"
        )
    for r in kredun_failed:
        if r["status"] != "wrong":
            log(f"!!! kredun {r['workload']} {r['store']} N={r['n']} {r['status']}: {r['error']}")
    return 1 if wrong or kredun_failed else 0


if __name__ == "__main__":
    sys.exit(main())
