"""The operator against the emulated Kubernetes API: how much it adds to every job.

    python bench/operator_bench.py [--executions 50] [--jobs 20] [--kubelet-parallel 3]
    python bench/operator_bench.py --load      # 1,000 Executions x 3 jobs on PostgreSQL

Starts the emulated API server, the local kubelet and a real `kredun operator` process
(the test fixture in tests/support/operator.py) and runs two workloads:

* chain: one Execution of `jobs` calls, each ready only when the previous one ends, so
  every Pod is created alone: the operator's own latency;
* burst: `executions` Executions created at once, each a fan-out of `jobs - 1` trivial
  calls (distinct arguments: nothing from the cache) and one call summing them, so the
  operator must create about executions x jobs Pods at the same moment.

It prints a Markdown table of: the time from "job ready" (the scheduler hands it to the
Pod executor) to "Pod created" (the API server answered the POST), and from a job's Pod
end being seen to the scheduler having handled it, median and p95, estimated from the
operator's Prometheus histograms (linear within buckets); the operator's Kubernetes API
writes per job (Pod creations and deletions, Execution status and finalizer patches,
Events) from the emulator's request log; the burst's wall time; and the CPU the job
processes (`kredun worker`) used. Jobs are real processes, so on a small machine their
start-up, not the operator, bounds the wall time.

With `--postgres URI` (a server where the role may create databases; `--load` takes
$KREDUN_TEST_POSTGRES_URI) the provenance database is a fresh PostgreSQL database, and the
table adds the most client connections to it seen at once (sampled every 0.1 s from
`pg_stat_activity`, leaving out PostgreSQL's own autovacuum workers) against the
operator's pool size, and the operator's peak RSS. Job Pods hold no database credentials,
so every connection counted is the operator's. `--load` is the scenario of one operator
holding 1,000 concurrent Executions of 3 jobs each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import workflows as flow  # noqa: E402  (bench/ is not a package)
from tests.support.operator import OperatorCluster  # noqa: E402
from tests.support.postgres import URI_VARIABLE, fresh_postgres_database  # noqa: E402

POOL_SIZE = 10  # the operator's [operator] database_pool_size in this benchmark

OPERATOR_WRITES = {  # (verb, resource) the operator writes; the kubelet writes pods/status
    ("create", "pods", None),
    ("delete", "pods", None),
    ("patch", "executions", None),
    ("patch", "executions", "status"),
    ("update", "executions", None),
    ("create", "events", None),
}


def histogram(metrics: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a Prometheus histogram in exposition text."""
    buckets = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def operator_writes(request_log: Path, skip: int = 0) -> int:
    """The operator's writes in the emulator's request log, after the first `skip` lines."""
    writes = 0
    for line in request_log.read_text().splitlines()[skip:]:
        record = json.loads(line)
        if (record["verb"], record["resource"], record["subresource"]) in OPERATOR_WRITES:
            writes += 1
    return writes


def wait_finished(cluster: OperatorCluster, count: int) -> int:
    """Wait until `count` Executions finished; the number that failed."""
    while True:
        objects = cluster.api.objects("executions", group="kredun.dev", namespace="jobs")
        phases = [(obj.get("status") or {}).get("phase") for obj in objects]
        if sum(phase in ("Succeeded", "Failed") for phase in phases) == count:
            return phases.count("Failed")
        time.sleep(0.2)


def minus(
    after: list[tuple[float, float]], before: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The observations between two scrapes of a histogram."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def latencies(metrics: str, before: str) -> dict[str, float]:
    creating = minus(
        histogram(metrics, "kredun_pod_create_seconds"),
        histogram(before, "kredun_pod_create_seconds"),
    )
    reacting = minus(
        histogram(metrics, "kredun_reduction_seconds"),
        histogram(before, "kredun_reduction_seconds"),
    )
    return {
        "create_median": quantile(creating, 0.5),
        "create_p95": quantile(creating, 0.95),
        "react_median": quantile(reacting, 0.5),
        "react_p95": quantile(reacting, 0.95),
    }


class ConnectionSampler:
    """The most client connections to one PostgreSQL database seen at once, sampled on a
    thread (PostgreSQL's background workers, autovacuum's among them, are not clients)."""

    def __init__(self, database_uri: str) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        self.database = make_url(database_uri).database
        # Autocommit: within one transaction pg_stat_activity is a snapshot that never changes.
        self._engine = create_engine(database_uri, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with self._engine.connect() as connection:
            while not self._stop.wait(0.1):
                count = connection.execute(self._query, {"name": self.database}).scalar_one()
                self.most = max(self.most, count)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def provenance_database(postgres: str | None) -> Iterator[str | None]:
    if postgres is None:
        yield None
        return
    with fresh_postgres_database(postgres) as uri:
        yield uri


def run(
    executions: int, jobs: int, parallel: int, work: Path, database: str | None = None
) -> tuple[dict[str, float], dict[str, float], int]:
    """A chain of `jobs` calls (each ready alone), then the burst: `executions` x `jobs`.
    Returns the chain's measures, the burst's, and how many Executions failed."""
    config = f"[operator]\ndatabase_pool_size = {POOL_SIZE}\n"
    with OperatorCluster(
        work, kubelet_parallel=parallel, database=database, operator_config=config
    ) as cluster, contextlib.ExitStack() as sampling:  # fmt: skip
        sampler = None
        if database is not None:
            sampler = sampling.enter_context(ConnectionSampler(database))
        chain = 0
        for i in range(jobs):
            chain = flow.inc(chain) if i else flow.inc(-1_000_000)
        cluster.create("chain", cluster.plan_spec(chain))
        failed = wait_finished(cluster, 1)
        after_chain = cluster.metrics_text()
        requests_before = len((work / "api-requests.jsonl").read_text().splitlines())
        workers_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        for number in range(executions):
            calls = [flow.inc(number * 10_000 + i) for i in range(jobs - 1)]
            cluster.create(f"bench-{number}", cluster.plan_spec(flow.total(calls)))
        failed += wait_finished(cluster, 1 + executions)
        wall = time.monotonic() - started
        after_burst = cluster.metrics_text()
        workers_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert cluster.process is not None
        operator_rss = peak_rss_mb(cluster.process.pid)
        cluster.stop_operator()
    burst_jobs = executions * jobs
    burst = {
        **latencies(after_burst, after_chain),
        "writes_per_job": operator_writes(work / "api-requests.jsonl", requests_before)
        / burst_jobs,
        "wall": wall,
        "jobs_per_second": burst_jobs / wall,
        "worker_cpu": (workers_after.ru_utime + workers_after.ru_stime
                       - workers_before.ru_utime - workers_before.ru_stime) / burst_jobs,
        "operator_rss": operator_rss,
    }  # fmt: skip
    if sampler is not None:
        burst["connections"] = sampler.most
    return latencies(after_chain, ""), burst, failed


def table(
    chain: dict[str, float],
    burst: dict[str, float],
    failed: int,
    executions: int,
    jobs: int,
    parallel: int,
) -> str:
    def ms(key: str) -> tuple[str, str]:
        return f"{chain[key] * 1000:.1f} ms", f"{burst[key] * 1000:.1f} ms"

    rows = [
        ("job ready → Pod created, median", *ms("create_median")),
        ("job ready → Pod created, p95", *ms("create_p95")),
        ("Pod end seen → scheduler handled it, median", *ms("react_median")),
        ("Pod end seen → scheduler handled it, p95", *ms("react_p95")),
        ("operator API writes per job", "", f"{burst['writes_per_job']:.2f}"),
        ("wall time", "", f"{burst['wall']:.1f} s"),
        ("jobs per second", "", f"{burst['jobs_per_second']:.1f}"),
        ("CPU of the job processes, per job", "", f"{burst['worker_cpu']:.2f} s"),
        ("operator peak RSS (whole run)", "", f"{burst['operator_rss']:.0f} MB"),
    ]
    if "connections" in burst:
        rows.append((
            "most PostgreSQL connections open at once (operator pool: "
            f"{POOL_SIZE})", "", f"{burst['connections']:.0f}",
        ))  # fmt: skip
    lines = [
        f"kredun operator on the emulated Kubernetes API; the kubelet runs {parallel} Pods at "
        f"a time. chain: one Execution of {jobs} jobs, each ready when the previous ends; "
        f"burst: {executions} Executions of {jobs} jobs created at once "
        f"({executions * (jobs - 1)} Pods to create immediately).",
        "",
        "| measure | chain | burst |",
        "|---|---|---|",
        *(f"| {name} | {one} | {many} |" for name, one, many in rows),
    ]
    if failed:
        lines.append(f"\n**{failed} Executions failed.**")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=20, help="jobs per Execution (at least 2)")
    parser.add_argument("--kubelet-parallel", type=int, default=3, help="Pods running at once")
    parser.add_argument("--postgres", help="a PostgreSQL server URI for the provenance database")
    parser.add_argument(
        "--load", action="store_true",
        help=f"1,000 Executions x 3 jobs on PostgreSQL (${URI_VARIABLE} unless --postgres)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.load:
        args.executions, args.jobs = 1000, 3
        args.postgres = args.postgres or os.environ.get(URI_VARIABLE)
        if not args.postgres:
            parser.error(f"--load needs --postgres or ${URI_VARIABLE}")
    jobs = max(2, args.jobs)
    with (
        tempfile.TemporaryDirectory(prefix="kredun-operator-bench-") as work,
        provenance_database(args.postgres) as database,
    ):
        chain, burst, failed = run(
            args.executions, jobs, args.kubelet_parallel, Path(work), database
        )
    print(table(chain, burst, failed, args.executions, jobs, args.kubelet_parallel))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
