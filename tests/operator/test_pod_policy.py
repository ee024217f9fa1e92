"""Pod policy: job Pods run only as allowed ServiceAccounts ([jobs] service_account, plus
[jobs] service_accounts), only allowed images when [jobs] allowed_images is set, and always
under Pod Security "restricted"."""

from __future__ import annotations

from pathlib import Path

import pytest
from kredun_operator.errors import SettingsError
from kredun_operator.podspec import PodTemplate, policy_problem
from kredun_operator.settings import settings_from_dict

from tests.support import workflows as flow
from tests.support.operator import IMAGE, OperatorCluster

STORES = {"database": {"uri": "sqlite:////tmp/x.db"}, "value_store": {"uri": "file:///tmp/v"}}


def template(**policy) -> PodTemplate:
    return PodTemplate(namespace="ns", execution="e", execution_uid="u", image="img:1", **policy)


def test_only_allowed_service_accounts() -> None:
    jobs = settings_from_dict(
        {**STORES, "jobs": {"service_account": "kredun-jobs", "service_accounts": ["etl"]}}
    ).jobs
    assert jobs.allowed_service_accounts() == {"kredun-jobs", "etl"}
    allowed = template(allowed_service_accounts=jobs.allowed_service_accounts())
    assert policy_problem(allowed, "img:1", "kredun-jobs") is None
    assert policy_problem(allowed, "img:1", "etl") is None
    assert policy_problem(allowed, "img:1", None) is None  # the namespace's default
    problem = policy_problem(allowed, "img:1", "admin")
    assert problem is not None
    assert "serviceAccountName 'admin' is not allowed" in problem
    assert "allowed: etl, kredun-jobs" in problem
    # Nothing configured: no ServiceAccount may be chosen.
    assert "allowed: none" in (policy_problem(template(), "img:1", "default") or "")


def test_only_allowed_images() -> None:
    assert policy_problem(template(), "anything:1", None) is None
    registry = template(allowed_images=("registry.example.com/team/", "kredun:"))
    assert policy_problem(registry, "registry.example.com/team/app:2", None) is None
    assert policy_problem(registry, "kredun:test", None) is None
    problem = policy_problem(registry, "evil.example.com/team/app:2", None) or ""
    assert "image 'evil.example.com/team/app:2' is not allowed" in problem
    assert "registry.example.com/team/, kredun:" in problem


@pytest.mark.parametrize("key", ["service_accounts", "allowed_images"])
def test_allowlists_must_list_names(key: str) -> None:
    with pytest.raises(SettingsError, match=rf"\[jobs\] {key} must list names"):
        settings_from_dict({**STORES, "jobs": {key: "x"}})


def test_the_operator_enforces_the_policy(tmp_path: Path) -> None:
    config = '[jobs]\nservice_accounts = ["runner"]\nallowed_images = ["kredun:"]\n'
    with OperatorCluster(tmp_path, operator_config=config) as cluster:
        cluster.create("admin", cluster.plan_spec(flow.inc(1), serviceAccountName="admin"))
        cluster.create("other", cluster.plan_spec(flow.inc.options(image="evil:1")(2)))
        cluster.create("fine", cluster.plan_spec(flow.inc(3), serviceAccountName="runner"))
        admin = cluster.wait_for_phase("admin")
        assert admin["phase"] == "Failed"
        assert "invalid spec: serviceAccountName 'admin' is not allowed" in admin["message"]
        other = cluster.wait_for_phase("other")
        assert other["phase"] == "Failed"
        assert "image 'evil:1' is not allowed" in other["message"], other
        assert cluster.wait_for_phase("fine")["phase"] == "Succeeded"
        assert cluster.pods("admin") == [] and cluster.pods("other") == []
        (pod,) = cluster.pods("fine")
        assert pod["spec"]["serviceAccountName"] == "runner"
        assert pod["spec"]["containers"][0]["image"] == IMAGE
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        security = pod["spec"]["containers"][0]["securityContext"]
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["allowPrivilegeEscalation"] is False
