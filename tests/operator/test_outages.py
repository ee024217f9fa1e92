"""Outages pause, not fail: PostgreSQL stopped for 30 s mid-run pauses the running Execution
(condition StoreAvailable=False) while its job Pod, which needs no database, finishes; the
Execution resumes, recording the job's result, when the database is back. An outage longer
than `[operator] store_outage_deadline` fails the Execution with a message. The database is
a server of the test's own (pginstance)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import OperatorCluster
from tests.support.pginstance import PostgresInstance

OUTAGE_SECONDS = 30

pytestmark = pytest.mark.timeout(240)


def store_available(cluster: OperatorCluster, name: str) -> str | None:
    for condition in cluster.status(name).get("conditions") or []:
        if condition["type"] == "StoreAvailable":
            return condition["status"]
    return None


def test_a_database_outage_pauses_and_resumes_the_execution(tmp_path: Path) -> None:
    config = "[operator]\nstore_retry_max = 2\n"
    with (
        PostgresInstance() as database,
        OperatorCluster(tmp_path, database=database.uri, operator_config=config) as cluster,
    ):
        cluster.create("outage", cluster.plan_spec(flow.inc(flow.sleepy(1, 5))))
        wait_for(lambda: [p for p in cluster.pods("outage")
                          if p["status"].get("phase") == "Running"], timeout=60)  # fmt: skip
        database.stop()
        stopped = time.monotonic()
        wait_for(lambda: store_available(cluster, "outage") == "False", timeout=20,
                 message="StoreAvailable=False")  # fmt: skip
        status = cluster.status("outage")
        assert status["phase"] == "Running"
        assert "waiting for the provenance database" in status["message"]
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        # The job needs no database: its Pod finished and reported its outcome, which the
        # operator records once the database is back.
        [pod] = [p for p in cluster.pods("outage")
                 if p["metadata"]["labels"]["kredun.dev/task"] == "opflow.sleepy"]  # fmt: skip
        assert pod["status"]["phase"] == "Succeeded", pod["status"]
        database.start()
        final = cluster.wait_for_phase("outage", timeout=90)
        assert final["phase"] == "Succeeded", final
        assert final["result"]["preview"] == "2"
        assert final["jobs"]["failed"] == 0
        assert store_available(cluster, "outage") == "True"
        assert set(cluster.kubelet.starts.values()) == {1}, "a job ran twice"


def test_an_outage_past_the_deadline_fails_the_execution(tmp_path: Path) -> None:
    config = "[operator]\nstore_retry_max = 0.5\nstore_outage_deadline = 2\n"
    with PostgresInstance() as database:
        uri = database.uri
    # The server is gone for good.
    with OperatorCluster(tmp_path, database=uri, operator_config=config) as cluster:
        cluster.create("gone", cluster.plan_spec(flow.inc(1)))
        final = cluster.wait_for_phase("gone", timeout=60)
        assert final["phase"] == "Failed"
        assert "unreachable for" in final["message"]
        assert "store_outage_deadline (2s)" in final["message"], final["message"]
        assert store_available(cluster, "gone") == "False"
