"""A File pipeline with a script() step through the operator: every job a Pod."""

from __future__ import annotations

from pathlib import Path

from kredun import Dir, File
from kredun.deserialize import resolve
from kredun.refs import ref_from_json

from tests.support import workflows as flow
from tests.support.operator import operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find


def _result(cluster, status: dict):
    scheduler = cluster.scheduler()  # on the stores of the namespace's cache scope
    try:
        return resolve(ref_from_json(status["result"]["ref"]), scheduler.fetch_blob)
    finally:
        scheduler.close()


def _pod_tasks(cluster, execution: str) -> list[str]:
    return sorted(pod["metadata"]["labels"]["kredun.dev/task"] for pod in cluster.pods(execution))


def test_file_pipeline_runs_in_pods_and_follows_input_edits(operator_cluster, tmp_path: Path):
    cluster = operator_cluster
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "a.txt").write_text("one two\n")
    (data / "b.txt").write_text("three\n")

    cluster.create("files1", cluster.plan_spec(flow.file_pipeline(Dir(str(data)), str(out))))
    status = cluster.wait_for_phase("files1")
    assert status["phase"] == "Succeeded", status
    result = _result(cluster, status)
    assert result["counts"] == [2, 1]
    assert [item.read() for item in result["shouted"]] == ["ONE TWO\n", "THREE\n"]
    assert result["shouted"][0] == File(str(out / "a.txt"))  # the hash taken in the Pod
    assert _pod_tasks(cluster, "files1") == sorted(
        ["opflow.file_pipeline", *["opflow.count_words"] * 2, *["opflow.shout_file"] * 2,
         *["kredun.script"] * 2]
    )  # fmt: skip

    # One input edited: only the calls that read it get Pods (and the listing).
    (data / "b.txt").write_text("three four five\n")
    cluster.create("files2", cluster.plan_spec(flow.file_pipeline(Dir(str(data)), str(out))))
    status = cluster.wait_for_phase("files2")
    assert status["phase"] == "Succeeded", status
    result = _result(cluster, status)
    assert result["counts"] == [2, 3] and result["shouted"][1].read() == "THREE FOUR FIVE\n"
    # The unchanged output File of the cached script call costs one check job.
    assert _pod_tasks(cluster, "files2") == sorted(
        ["opflow.file_pipeline", "opflow.count_words", "opflow.shout_file", "kredun.script",
         "kredun.files_valid"]
    )  # fmt: skip


def test_a_cached_result_whose_output_file_changed_is_rerun(operator_cluster, tmp_path: Path):
    cluster = operator_cluster
    report = tmp_path / "report.txt"

    def submit(name: str) -> list[str]:
        cluster.create(name, cluster.plan_spec(flow.write_report(str(report), "fresh")))
        status = cluster.wait_for_phase(name)
        assert status["phase"] == "Succeeded", status
        result = _result(cluster, status)
        assert result["report"] == File(str(report)) and report.read_text() == "fresh"
        return _pod_tasks(cluster, name)

    assert submit("report1") == ["opflow.write_report"]
    # Unchanged: replayed, the only Pod the check of its File.
    assert submit("report2") == ["kredun.files_valid"]
    report.write_text("edited by hand")
    assert submit("report3") == ["kredun.files_valid", "opflow.write_report"]
    report.unlink()
    assert submit("report4") == ["kredun.files_valid", "opflow.write_report"]
    # The rerun's result is the one replayed now.
    assert submit("report5") == ["kredun.files_valid"]
