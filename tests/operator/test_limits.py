"""Hostile specs fail only themselves: a real `kredun operator` against the emulated API
server, given Executions nested deeper than Python's default recursion limit allows."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kredun_operator.errors import SpecError
from kredun_operator.limits import MAX_SPEC_DEPTH, check_shape, check_spec

from tests.support import workflows as flow
from tests.support.operator import IMAGE, OperatorCluster, operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find


def create_nested(cluster: OperatorCluster, name: str, depth: int) -> None:
    """An Execution whose spec.kwargs is `depth` objects deep, sent as JSON text (Python's
    own encoder would stop at its recursion limit)."""
    nested = '{"a":' * depth + "{}" + "}" * depth
    body = (
        f'{{"apiVersion":"kredun.dev/v1","kind":"Execution","metadata":{{"name":"{name}"}},'
        f'"spec":{{"task":"examples.hello.main","image":"{IMAGE}","kwargs":{nested}}}}}'
    )
    request = urllib.request.Request(
        cluster.api.url + cluster.executions_path(),
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def test_deeply_nested_specs_fail_alone_and_the_operator_survives(operator_cluster) -> None:
    cluster = operator_cluster
    create_nested(cluster, "deep", 1_500)
    create_nested(cluster, "deeper", 9_000)  # near the 10,000 an API server accepts
    cluster.create("good", cluster.plan_spec(flow.add(2, 3)))
    for name in ("deep", "deeper"):
        status = cluster.wait_for_phase(name)
        assert status["phase"] == "Failed", status
        assert (
            f"is nested more than {MAX_SPEC_DEPTH} levels deep (the limit)" in (status["message"])
        )
        assert status["message"].startswith("invalid spec: spec.kwargs.a.a.a")
    assert cluster.wait_for_phase("good")["result"]["preview"] == "5"
    assert cluster.process.poll() is None
    # A restart reads the same objects again: it must survive that too.
    cluster.stop_operator()
    cluster.start_operator()
    cluster.create("after", cluster.plan_spec(flow.add(3, 4)))
    assert cluster.wait_for_phase("after")["result"]["preview"] == "7"
    assert cluster.process.poll() is None
    assert "RecursionError" not in cluster.log_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"kwargs": {"x": [[[1]]]}}, r"spec.kwargs.x\[0\] is nested more than 3 levels"),
        ({"args": list(range(20))}, "spec holds more than 10 values"),
    ],
)
def test_spec_shape_limits_name_the_place(value, message) -> None:
    with pytest.raises(SpecError, match=message):
        check_shape(value, "spec", 3, 10)


def test_ordinary_specs_are_within_the_limits() -> None:
    spec = {"task": "a.b", "kwargs": {"rows": [{"id": i, "tags": ["x"]} for i in range(1000)]}}
    check_spec(spec)
    check_spec(json.loads(json.dumps({"tolerations": [{"key": "k", "operator": "Exists"}]})))


def test_a_plan_nested_past_the_recursion_limit_is_a_spec_error() -> None:
    from kredun.hashing import hash_bytes
    from kredun_operator.spec import ExecutionSpec, build_plan

    data = b"[" * 100_000 + b"]" * 100_000
    spec = ExecutionSpec(image=IMAGE, plan_hash=hash_bytes(data), plan_inline=data)
    with pytest.raises(SpecError, match="is nested too deeply to read"):
        build_plan(spec, lambda _hash: b"")
