"""Load: 50 Executions of 20 jobs each, created at once, all succeed.

Every job is a real `kredun worker` process (about 0.3 s of CPU each), so the machine's cores
bound the pace: the kubelet runs three Pods at a time (more only adds contention on two
cores) and the rest wait Pending, as on a small node.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import OperatorCluster

EXECUTIONS = 50
JOBS = 20  # per Execution: 19 independent calls and one that sums them


@pytest.mark.slow  # about 3-4 minutes on two cores: 1,000 worker processes
@pytest.mark.timeout(900)
def test_fifty_executions_of_twenty_jobs(tmp_path: Path) -> None:
    with OperatorCluster(tmp_path, kubelet_parallel=3) as cluster:
        started = time.monotonic()
        for number in range(EXECUTIONS):
            # Distinct arguments: no Execution replays another's jobs from the cache.
            calls = [flow.inc(number * 1000 + i) for i in range(JOBS - 1)]
            cluster.create(f"load-{number}", cluster.plan_spec(flow.total(calls)))

        def finished() -> bool:
            executions = cluster.api.objects(
                "executions", group="kredun.dev", namespace=cluster.namespace
            )
            phases = [(e.get("status") or {}).get("phase") for e in executions]
            return sum(phase in ("Succeeded", "Failed") for phase in phases) == EXECUTIONS

        wait_for(finished, timeout=600, interval=1.0, message="all executions finished")
        elapsed = time.monotonic() - started
        for number in range(EXECUTIONS):
            status = cluster.status(f"load-{number}")
            assert status["phase"] == "Succeeded", (number, status)
            expected = sum(number * 1000 + i + 1 for i in range(JOBS - 1))
            assert status["result"]["preview"] == str(expected)
            assert status["jobs"]["done"] == status["jobs"]["total"] == JOBS
        assert len(cluster.pods()) == EXECUTIONS * JOBS
        assert set(cluster.kubelet.starts.values()) == {1}
        print(f"\n{EXECUTIONS}x{JOBS} jobs in {elapsed:.1f}s")
