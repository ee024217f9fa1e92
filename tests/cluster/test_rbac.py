"""The chart's RBAC is least privilege: exactly what the operator asks the API for.

The operator end-to-end suite runs here once more, in a child pytest, with each cluster
keeping the requests its operator made (the emulator logs them under the operator's own
credentials), and so does the chart's install on the real control plane, whose audit log
names what the chart's ServiceAccount asked for. Their (API group, resource, verb) set must
equal what the chart grants across its modes (namespaced, cluster-wide, peering) — no missing
right, no unused one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.test_helm_chart import CI_DIR, find, render, rules_as_set
from tests.support.controlplane import binaries_or_skip
from tests.support.operator import REPO_ROOT, REQUESTS_DIR_VARIABLE

# The emulator logs what the operator asks for; on the real control plane the audit log does,
# for the operators the tests start and for the chart's own Deployment.
E2E_SUITES = [
    "tests/operator/test_e2e.py",
    # Peering and restarts run on the real control plane only: their requests come from its
    # audit log.
    "tests/cluster/test_operator.py::test_peered_replicas_run_each_execution_once",
    "tests/cluster/test_operator.py::test_killed_and_restarted_operators_resume_without_rerunning",
    "tests/cluster/test_helm_control_plane.py",
]

# Half its evidence comes from the real control plane: without it, rules would look unused.
pytestmark = pytest.mark.control_plane


def granted(values_file: str | None) -> dict[str, set[tuple[str, str, str]]]:
    manifests = render([CI_DIR / values_file] if values_file else [])
    return {
        kind: set().union(*(rules_as_set(role["rules"]) for role in find(manifests, kind)))
        for kind in ("Role", "ClusterRole")
    }


def used_by_operator(tmp_path: Path) -> dict[frozenset[str], set[tuple[str, str, str]]]:
    """Run the e2e suites; the (group, resource[/subresource], verb) each mode used."""
    requests_dir = tmp_path / "requests"
    requests_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *E2E_SUITES, "-q", "-p", "no:cacheprovider",
         "-n", "0", "-x"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, REQUESTS_DIR_VARIABLE: str(requests_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    used: dict[frozenset[str], set[tuple[str, str, str]]] = {}
    for path in requests_dir.iterdir():
        record = json.loads(path.read_text())
        rules = used.setdefault(frozenset(record["modes"]), set())
        for request in record["requests"]:
            resource = request["resource"]
            if request["subresource"]:
                resource += "/" + request["subresource"]
            rules.add((request["group"], resource, request["verb"]))
    return used


def test_chart_grants_exactly_what_the_operator_uses(tmp_path: Path) -> None:
    binaries_or_skip()
    used = used_by_operator(tmp_path)
    everything_used = set().union(*used.values())
    namespaced = granted(None)  # default values: the release namespace, standalone
    cluster_wide = granted("cluster-wide-values.yaml")
    peering = granted("peering-values.yaml")
    everything_granted = set().union(*namespaced.values(), *cluster_wide.values(),
                                     *peering.values())  # fmt: skip
    missing = sorted(everything_used - everything_granted)
    unused = sorted(everything_granted - everything_used)
    assert missing == [], f"the chart misses rights: {missing}"
    assert unused == [], f"the chart grants rights the operator never used: {unused}"
    # Each mode's runs stay within what that mode's chart grants.
    for modes, rules in used.items():
        chart = cluster_wide if "cluster-wide" in modes else namespaced
        if "peering" in modes:
            chart = peering
        allowed = chart["Role"] | chart["ClusterRole"]
        assert rules - allowed == set(), f"operator in modes {sorted(modes)} lacks rights"
