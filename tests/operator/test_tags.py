"""An Execution's tags reach the provenance store: the operator reads them from the
`kredun.dev/tags` annotation (and `tags.kredun.dev/*` labels) and tags the execution it
records, so `kredun log --tag` finds it. The annotation is user input: a malformed one
fails its Execution only."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import kredun
import pytest
from kredun import task
from kredun.errors import TagError
from kredun.provenance.base import normalize_id
from kredun.provenance.store import ProvenanceStore
from kredun.resource import ANNOTATION_TAGS, MAX_EXECUTION_TAGS, TAGS_ANNOTATION_LIMIT
from kredun.submit import _execution_manifest
from kredun_operator.errors import AnnotationError, SpecError
from kredun_operator.tags import execution_tags

from tests.support.kube.testing import wait_for
from tests.support.operator import IMAGE, operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find

kredun_namespace = "optags"


@task()
def plus(a: int, b: int) -> int:
    return a + b


def annotated(text: Any, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"annotations": {ANNOTATION_TAGS: text}, "labels": labels or {}}


# -- reading the annotation -------------------------------------------------------------------


def test_tags_come_from_the_annotation_and_the_tag_labels() -> None:
    metadata = annotated(
        json.dumps({"sample": ["a", "b"], "team": "genomics", "note": ["line\nbreak"]}),
        {"tags.kredun.dev/team": "genomics", "tags.kredun.dev/stage": "2", "app": "x"},
    )
    assert execution_tags(metadata) == [
        ("sample", "a"), ("sample", "b"), ("team", "genomics"), ("note", "line\nbreak"),
        ("stage", "2"),
    ]  # fmt: skip
    assert execution_tags({}) == []
    assert execution_tags({"annotations": None, "labels": None}) == []


def test_what_submit_writes_is_what_the_operator_reads() -> None:
    tags = [("team", "genomics"), ("run", ""), ("sample", "a"), ("sample", "b"), ("x" * 80, "v")]
    manifest = _execution_manifest(plus(1, 2), "h" * 40, b"plan", image=IMAGE, tags=tags)
    assert sorted(execution_tags(manifest["metadata"])) == sorted(tags)


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        ("{not json", "is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "bytes, more than the limit"),
        ("[" * 30_000 + "]" * 30_000, "is not JSON"),
        ('["team", "genomics"]', "expected a JSON object of tag key -> list of values, not list"),
        ('{"team": 3}', "the values of tag 'team' must be text"),
        ('{"team": ["a", null]}', "the values of tag 'team' must be text"),
        ('{"team": {"a": "b"}}', "the values of tag 'team' must be text"),
        ('{"": ["a"]}', "a tag key must be non-empty text of at most 200 characters"),
        (json.dumps({"k" * 201: "v"}), "a tag key must be non-empty text"),
        (json.dumps({"team": "v" * 1001}), "the value of tag 'team' must be text"),
        (json.dumps({"k": [str(i) for i in range(MAX_EXECUTION_TAGS + 1)]}), "more than 256 tags"),
        (3, "expected text, not int"),
    ],
)
def test_a_malformed_annotation_is_one_error_naming_it(annotation: Any, problem: str) -> None:
    with pytest.raises(AnnotationError) as caught:
        execution_tags(annotated(annotation))
    message = str(caught.value)
    assert message.startswith(f"metadata.annotations['{ANNOTATION_TAGS}']"), message
    assert problem in message and "\n" not in message
    assert isinstance(caught.value, SpecError)


def test_control_characters_in_a_bad_key_are_escaped_in_the_message() -> None:
    with pytest.raises(AnnotationError) as caught:
        execution_tags(annotated(json.dumps({"bad\n\x1b[2Kkey": 7})))
    assert "bad\\n\\x1b[2Kkey" in str(caught.value)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_labels_and_annotation_together_are_bounded_too() -> None:
    labels = {f"tags.kredun.dev/l{i}": "v" for i in range(MAX_EXECUTION_TAGS)}
    with pytest.raises(AnnotationError, match="tags, more than the limit"):
        execution_tags(annotated('{"one": "more"}', labels))


def test_submit_refuses_tags_the_operator_would_refuse() -> None:
    too_many = [("k", str(i)) for i in range(MAX_EXECUTION_TAGS + 1)]
    with pytest.raises(TagError, match=f"at most {MAX_EXECUTION_TAGS} tags"):
        _execution_manifest(plus(1, 2), "h" * 40, b"plan", image=IMAGE, tags=too_many)
    too_large = [(f"k{i}", "v" * 1000) for i in range(TAGS_ANNOTATION_LIMIT // 1000)]
    with pytest.raises(TagError, match=f"{TAGS_ANNOTATION_LIMIT} bytes"):
        _execution_manifest(plus(1, 2), "h" * 40, b"plan", image=IMAGE, tags=too_large)


# -- end to end -------------------------------------------------------------------------------


def kredun_log(database: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kredun", "log", "--database", database, *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_tagged_submission_is_found_by_tag_and_a_malformed_annotation_fails_alone(
    operator_cluster,
) -> None:
    cluster = operator_cluster
    stores = {"database": {"uri": cluster.database}, "value_store": {"uri": cluster.value_store}}
    kredun.submit(
        plus(1, 2),
        namespace=cluster.namespace,
        image=IMAGE,
        name="tagged",
        config=stores,
        kubeconfig=cluster.kubeconfig,
        tags={"team": "genomics", "note": "two words"},
    )
    # A hand-written Execution whose annotation is not what submit() writes.
    bad = cluster.plan_spec(plus(2, 3))
    body = {
        "apiVersion": "kredun.dev/v1",
        "kind": "Execution",
        "metadata": {"name": "mislabelled", "annotations": {ANNOTATION_TAGS: '{"team": 7}'}},
        "spec": bad,
    }
    cluster.api_request("POST", cluster.executions_path(), body)

    failed = cluster.wait_for_phase("mislabelled")
    assert failed["phase"] == "Failed"
    assert failed["message"].startswith(
        f"invalid metadata: metadata.annotations['{ANNOTATION_TAGS}']: the values of tag 'team'"
    ), failed["message"]
    assert cluster.pods("mislabelled") == []
    status = cluster.wait_for_phase("tagged")
    assert status["phase"] == "Succeeded", status
    execution_id = normalize_id(status["executionId"])

    with ProvenanceStore(cluster.database) as store:
        tags = {(t.key, t.value) for t in store.tags_of(execution_id)}
        assert tags == {("team", "genomics"), ("note", "two words")}
        assert [e.id for e in store.find_executions(tag=("team", "genomics"))] == [execution_id]
    found = kredun_log(cluster.database, "--tag", "team=genomics")
    assert f"execution {execution_id}  team=genomics" in found
    listed = json.loads(kredun_log(cluster.database, "--tag", "note", "--status", "DONE",
                                   "--format", "json"))  # fmt: skip
    assert [e["id"] for e in listed] == [execution_id]


@task()
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def kredun_cli(database: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kredun", *args, "--database", database],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_tag_removed_while_the_execution_runs_stays_removed_after_an_operator_restart(
    operator_cluster,
) -> None:
    cluster = operator_cluster
    stores = {"database": {"uri": cluster.database}, "value_store": {"uri": cluster.value_store}}
    kredun.submit(
        nap(3.0),
        namespace=cluster.namespace,
        image=IMAGE,
        name="retagged",
        config=stores,
        kubeconfig=cluster.kubeconfig,
        tags={"team": "genomics", "sample": "s1"},
    )
    wait_for(
        lambda: any(pod["status"].get("phase") == "Running" for pod in cluster.pods("retagged")),
        timeout=30, interval=0.1, message="the job's Pod running",
    )  # fmt: skip
    execution_id = normalize_id(cluster.status("retagged")["executionId"])
    removed = kredun_cli(cluster.database, "tag", "rm", execution_id, "team")
    assert removed.startswith("Removed 1 tag(s)"), removed
    cluster.kill_operator()
    cluster.start_operator()
    status = cluster.wait_for_phase("retagged")
    assert status["phase"] == "Succeeded", status
    with ProvenanceStore(cluster.database) as store:
        assert {(t.key, t.value) for t in store.tags_of(execution_id)} == {("sample", "s1")}
