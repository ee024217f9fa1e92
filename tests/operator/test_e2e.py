"""The operator end to end: a real `kredun operator` process (kopf) against the emulated API
server, job Pods run by the local kubelet as `kredun worker` processes, kubectl for the
user's view. Every test runs with unpickling disabled in the operator (it always is)."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import uuid
from pathlib import Path

from kredun import subrun
from kredun.deserialize import resolve
from kredun.hashing import hash_bytes
from kredun.provenance.callindex import call_index_key
from kredun.provenance.store import ProvenanceStore
from kredun.refs import ref_from_json
from kredun.valuestore import open_value_store

from tests.support import workflows as flow
from tests.support.kube.testing import wait_for
from tests.support.operator import IMAGE, REPO_ROOT, OperatorCluster, operator_cluster

__all__ = ["operator_cluster"]  # a fixture: imported for pytest to find


def running_pods(cluster, execution: str) -> list[dict]:
    return [
        pod
        for pod in cluster.pods(execution)
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    ]


def test_hand_written_execution_from_the_example(operator_cluster) -> None:
    cluster = operator_cluster
    example = REPO_ROOT / "examples" / "execution.yaml"
    cluster.kubectl("apply", "--validate=false", "-n", cluster.namespace, "-f", str(example))
    status = cluster.wait_for_phase("hello")
    assert status["phase"] == "Succeeded", status
    assert "Hello, kubernetes!" in status["result"]["preview"]
    assert status["result"]["preview"] == (
        "{'greeting': 'Hello, kubernetes!', 'loud': 'HELLO, KUBERNETES!'}"
    )
    # call_by_name, main, greet, shout: one Pod each.
    assert status["jobs"] == {
        "pending": 0, "running": 0, "failed": 0, "cached": 0, "done": 4, "total": 4, "queued": 0
    }  # fmt: skip
    assert status["progress"] == "4/4"
    assert status["startTime"] <= status["completionTime"]
    assert status["executionId"]
    assert status["result"]["ref"]["composite"] == "dict"

    table = cluster.kubectl("get", "executions", "-n", cluster.namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "CACHED", "AGE", "RESULT"]
    assert row.split()[:4] == ["hello", "Succeeded", "4/4", "0"]
    assert "Hello, kubernetes!" in row

    execution = cluster.execution("hello")
    pods = cluster.pods("hello")
    assert len(pods) == 4
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        assert len(meta["name"]) <= 63 and meta["name"].startswith("hello-")
        assert meta["labels"]["app.kubernetes.io/name"] == "kredun"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "kredun"
        assert meta["labels"]["app.kubernetes.io/component"] == "job"
        assert meta["labels"]["kredun.dev/execution"] == "hello"
        assert meta["labels"]["kredun.dev/eval-hash"][:12] in meta["name"]
        (owner,) = meta["ownerReferences"]
        assert owner["uid"] == execution["metadata"]["uid"]
        assert owner["kind"] == "Execution" and owner["controller"]
        # Without blockOwnerDeletion the operator needs no rights on executions/finalizers.
        assert "blockOwnerDeletion" not in owner
        assert spec["restartPolicy"] == "Never"
        (container,) = spec["containers"]
        assert container["image"] == "kredun:latest"
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["command"][:3] == ["kredun", "worker", "--spec-json"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        # No database credentials anywhere in a job Pod: it reports through its outcome.
        manifest = json.dumps(pod)
        assert "DATABASE" not in manifest and cluster.database not in manifest
        assert env["KREDUN_VALUE_STORE"] == f"{cluster.value_store}/ns/{cluster.namespace}"
        assert env["KREDUN_OUTCOME_PATH"] == container["terminationMessagePath"]
        assert container["terminationMessagePolicy"] == "File"
        outcome = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        assert json.loads(outcome)["kind"] in ("value", "plan")
    tasks = sorted(pod["metadata"]["labels"]["kredun.dev/task"] for pod in pods)
    assert tasks == [
        "examples.hello.greet", "examples.hello.main", "examples.hello.shout",
        "kredun.call_by_name",
    ]  # fmt: skip
    assert set(cluster.kubelet.starts.values()) == {1}

    wait_for(lambda: "Succeeded" in cluster.event_reasons("hello"), message="Succeeded event")
    metrics = cluster.metrics_text()
    assert 'kredun_jobs_total{event="started",executor="default"} 4.0' in metrics
    assert 'kredun_executions{phase="Succeeded"} 1.0' in metrics
    assert "kredun_pod_create_seconds_count 4.0" in metrics


def test_plan_with_fanout_returned_expressions_and_getitem(operator_cluster) -> None:
    cluster = operator_cluster
    parts = flow.quotient_remainder(17, 5)
    expr = {
        "sum": flow.total(flow.fanout(4, base=10)),  # returns 4 new calls: the graph grows
        "q": flow.add(parts["q"], 1),  # getitem on a task's result: evaluated in add's Pod
        "pair": (flow.inc(1), 5),
        "r": parts["r"] * 10,  # evaluated where the result is fetched
    }
    cluster.create("plan", cluster.plan_spec(expr))
    status = cluster.wait_for_phase("plan")
    assert status["phase"] == "Succeeded", status
    # The operator cannot know the value of an operation it deferred: the preview says so.
    assert status["result"]["preview"].startswith("{'sum': 50, 'q': 4, 'pair': (2, 5), 'r': <mul ")
    names = sorted(pod["metadata"]["labels"]["kredun.dev/task"] for pod in cluster.pods("plan"))
    # Operations on results cost no Pod (there is no kredun.simple_op among them).
    assert names == sorted(
        ["opflow.fanout", "opflow.total", *["opflow.inc"] * 5, "opflow.quotient_remainder",
         "opflow.add"]
    )  # fmt: skip
    assert status["jobs"]["done"] == status["jobs"]["total"] == len(names)
    # The operator recorded what the jobs reported: one DONE row per job, each result's
    # value row with the type and preview the job computed (what `kredun log` shows).
    with ProvenanceStore(cluster.database, cluster.scope()) as store:
        rows = store.jobs_of(uuid.UUID(status["executionId"]).hex)
        values = store.value_records(row.result_hash for row in rows)
    assert len(rows) == len(names) and {row.status for row in rows} == {"DONE"}
    described = {row.task_name: values[row.result_hash] for row in rows}
    assert (described["opflow.total"].type_name, described["opflow.total"].preview) == (
        "builtins.int", "50"
    )  # fmt: skip
    assert described["opflow.add"].preview == "4"
    assert described["opflow.fanout"].type_name == "kredun.plan"  # it returned expressions

    # The result reference resolves, client-side, to the value itself.

    scheduler = cluster.scheduler()
    try:
        value = resolve(ref_from_json(status["result"]["ref"]), scheduler.fetch_blob)
    finally:
        scheduler.close()
    assert value == {"sum": 50, "q": 4, "pair": (2, 5), "r": 20}


def test_a_failing_task_fails_the_execution_with_its_traceback(operator_cluster) -> None:
    cluster = operator_cluster
    cluster.create("fails", cluster.plan_spec(flow.add(flow.boom("kaput"), flow.inc(1))))
    status = cluster.wait_for_phase("fails")
    assert status["phase"] == "Failed"
    failure = status["failure"]
    assert failure["task"] == "opflow.boom"
    assert "ValueError: kaput" in failure["error"]
    assert "Traceback (most recent call last)" in failure["traceback"]
    assert "raise ValueError(message)" in failure["traceback"]
    assert status["message"].startswith("task opflow.boom failed: pod fails-")
    assert status["jobs"]["failed"] == 1
    wait_for(lambda: {"JobFailed", "Failed"} <= set(cluster.event_reasons("fails")))


def test_retries_run_a_new_pod(operator_cluster, tmp_path: Path) -> None:
    cluster = operator_cluster
    cluster.create("retry", cluster.plan_spec(flow.flaky(str(tmp_path))))
    status = cluster.wait_for_phase("retry")
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"] == "'recovered'"
    names = sorted(pod["metadata"]["name"] for pod in cluster.pods("retry"))
    assert len(names) == 2 and names[1] == names[0] + "-r1"
    phases = {pod["metadata"]["name"]: pod["status"]["phase"] for pod in cluster.pods("retry")}
    assert phases == {names[0]: "Failed", names[1]: "Succeeded"}
    reasons = cluster.event_reasons("retry")
    wait_for(lambda: {"JobFailed", "JobRetry", "Succeeded"} <= set(cluster.event_reasons("retry")))
    assert "Failed" not in reasons


def test_the_cache_is_shared_across_executions(operator_cluster) -> None:
    cluster = operator_cluster
    expr = flow.total(flow.fanout(3, base=100))
    cluster.create("first", cluster.plan_spec(expr))
    assert cluster.wait_for_phase("first")["phase"] == "Succeeded"
    cluster.create("second", cluster.plan_spec(expr, inline=False))
    status = cluster.wait_for_phase("second")
    assert status["phase"] == "Succeeded"
    assert status["result"]["preview"] == "306"
    assert cluster.pods("second") == []
    assert status["jobs"]["cached"] == status["jobs"]["total"] == 5
    table = cluster.kubectl("get", "kex", "second", "-n", cluster.namespace).stdout
    assert table.splitlines()[1].split()[:4] == ["second", "Succeeded", "5/5", "5"]

    # A restarted operator leaves finished Executions alone: not run, not even touched.
    versions = {name: cluster.execution(name)["metadata"]["resourceVersion"]
                for name in ("first", "second")}  # fmt: skip
    cluster.stop_operator()
    cluster.start_operator()
    cluster.create("third", cluster.plan_spec(flow.inc(7)))
    assert cluster.wait_for_phase("third")["phase"] == "Succeeded"
    for name, version in versions.items():
        assert cluster.execution(name)["metadata"]["resourceVersion"] == version
    assert len(cluster.pods()) == 5 + 1


def test_cancelling_deletes_running_pods(operator_cluster) -> None:
    cluster = operator_cluster
    cluster.create("cancel", cluster.plan_spec([flow.sleepy(i, 60) for i in range(3)]))
    wait_for(lambda: len(running_pods(cluster, "cancel")) == 3, timeout=30)
    cluster.api_request("PATCH", cluster.executions_path("cancel"), {"spec": {"cancel": True}})
    status = cluster.wait_for_phase("cancel")
    assert status["phase"] == "Cancelled"
    assert "cancelled" in status["message"]
    wait_for(lambda: cluster.pods("cancel") == [], timeout=30, message="pods deleted")
    assert cluster.kubelet.running == []
    wait_for(lambda: "Cancelled" in cluster.event_reasons("cancel"))


def test_deleting_an_execution_deletes_its_pods(operator_cluster) -> None:
    cluster = operator_cluster
    cluster.create("doomed", cluster.plan_spec([flow.sleepy(i, 60) for i in range(2)]))
    wait_for(lambda: len(running_pods(cluster, "doomed")) == 2, timeout=30)
    assert cluster.execution("doomed")["metadata"]["finalizers"] == ["kredun.dev/cleanup"]
    cluster.kubectl("delete", "execution", "doomed", "-n", cluster.namespace, "--wait=false")
    wait_for(lambda: cluster.execution("doomed") is None, timeout=30, message="deletion")
    wait_for(lambda: cluster.pods() == [], timeout=30, message="no orphan pods")
    assert cluster.kubelet.running == []


def test_bad_input_fails_with_a_message_while_others_run(operator_cluster) -> None:
    cluster = operator_cluster
    bad_json = b'{"version": 1, "nodes": ['
    bad_node = json.dumps({"version": 1, "tasks": {}, "nodes": [{"list": [0]}], "root": 0}).encode()
    specs = {
        "unknown-task": {"task": "examples.nope.main", "image": IMAGE},
        "missing-image": {"task": "examples.hello.main"},
        "bad-json": {"plan": _inline(bad_json), "image": IMAGE},
        "bad-node": {"plan": _inline(bad_node), "image": IMAGE},
        "too-large": {"plan": {"hash": "a" * 40, "inline": "A" * 262_148}, "image": IMAGE},
        "wrong-hash": {"plan": {**_inline(bad_node), "hash": "b" * 40}, "image": IMAGE},
        "not-in-store": {"plan": {"hash": "c" * 40}, "image": IMAGE},
        "wrong-types": {"task": "examples.hello.main", "args": {"a": 1}, "image": IMAGE},
        "both": {"task": "examples.hello.main", "plan": {"hash": "c" * 40}, "image": IMAGE},
    }
    for name, spec in specs.items():
        cluster.create(name, spec)
    cluster.create("good", cluster.plan_spec(flow.add(2, 3)))
    expected = {
        "unknown-task": "cannot import module 'examples.nope'",
        "missing-image": "spec.image is missing",
        "bad-json": "invalid plan: plan is not valid JSON",
        "bad-node": "invalid plan: plan node 0: child 0 is not an earlier node",
        "too-large": "over the limit of 262144",
        "wrong-hash": "does not match spec.plan.inline",
        "not-in-store": "is not in the value store",
        "wrong-types": "spec.args must be a list",
        "both": "set exactly one of spec.task",
    }
    for name, message in expected.items():
        status = cluster.wait_for_phase(name)
        assert status["phase"] == "Failed", (name, status)
        assert message in status["message"], (name, status["message"])
    assert cluster.status("unknown-task")["failure"]["task"] == "kredun.call_by_name"
    good = cluster.wait_for_phase("good")
    assert good["phase"] == "Succeeded" and good["result"]["preview"] == "5"


def _inline(data: bytes) -> dict[str, str]:
    return {"hash": hash_bytes(data), "inline": base64.b64encode(data).decode()}


def test_store_outages_wait_and_recover(tmp_path: Path) -> None:
    """An unreachable database (a directory where the SQLite file should be), then an
    unreadable value store: the Execution waits with StoreAvailable=False, then succeeds."""
    blocked = tmp_path / "db"
    blocked.mkdir()
    with OperatorCluster(tmp_path, database=f"sqlite:///{blocked}") as cluster:
        cluster.create("outage", cluster.plan_spec(flow.add(40, 2)))

        def waiting(name: str) -> dict | None:
            status = cluster.status(name)
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            store = conditions.get("StoreAvailable", {})
            return status if store.get("status") == "False" else None

        status = wait_for(lambda: waiting("outage"), timeout=30, message="StoreAvailable=False")
        assert status["phase"] == "Pending"
        assert "waiting for the provenance database or value store" in status["message"]
        assert cluster.pods() == []
        blocked.rmdir()  # the database comes back
        status = cluster.wait_for_phase("outage", timeout=60)
        assert status["phase"] == "Succeeded" and status["result"]["preview"] == "42"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["StoreAvailable"]["status"] == "True"

        # The value store: a plan kept only there, while a file blocks the directory.
        spec = cluster.plan_spec(flow.add(1, 2), inline=False)
        values = Path(cluster.value_store.removeprefix("file://"))
        values.rename(tmp_path / "values-away")
        values.write_text("not a directory")
        cluster.create("values", spec)
        wait_for(lambda: waiting("values"), timeout=30, message="StoreAvailable=False")
        values.unlink()
        (tmp_path / "values-away").rename(values)
        status = cluster.wait_for_phase("values", timeout=60)
        assert status["phase"] == "Succeeded" and status["result"]["preview"] == "3"


class _Marker:
    """Pickles to code that writes `<dir>/unpickled-<pid>` when (and wherever) unpickled."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __reduce__(self):
        code = f"import os; open('{self.directory}/unpickled-' + str(os.getpid()), 'w').close()"
        return (exec, (code,))


def test_the_operator_never_unpickles(operator_cluster, tmp_path: Path) -> None:
    cluster = operator_cluster
    markers = tmp_path / "markers"
    markers.mkdir()
    payload = _Marker(markers)
    # The payload is an argument (a worker unpickles it) and part of the result (the
    # operator previews results: it must not unpickle it for that).
    expr = {"seen": flow.describe(payload), "raw": payload}
    cluster.create("trust", cluster.plan_spec(expr))
    status = cluster.wait_for_phase("trust")
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"].startswith("{'seen': 'NoneType', 'raw': <value ")
    pids = {int(path.name.rpartition("-")[2]) for path in markers.iterdir()}
    assert pids, "the worker should have unpickled the payload"
    assert cluster.process.pid not in pids
    assert "unpickling is disabled" in cluster.log_text()


def test_subrun_runs_a_nested_scheduler_in_one_pod(operator_cluster) -> None:
    cluster = operator_cluster
    nested = {"executors": {"default": {"type": "process", "max_workers": 2}}}
    expr = subrun(flow.total(flow.fanout(3)), executor="k8s", config=nested)
    cluster.create("nested", cluster.plan_spec(expr))
    status = cluster.wait_for_phase("nested")
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"] == "6"
    (pod,) = cluster.pods("nested")
    assert pod["metadata"]["labels"]["kredun.dev/task"] == "kredun.subrun"
    # The job (which has no database credentials) brought its nested run's provenance back
    # with its outcome: the operator recorded it under the subrun job, with ids of its own.
    with ProvenanceStore(cluster.database, cluster.scope()) as store:
        (subrun_job,) = store.find_jobs(task="kredun.subrun")
        assert subrun_job.execution_id == uuid.UUID(status["executionId"]).hex
        (inner,) = store.find_executions(parent_job_id=subrun_job.id)
        jobs = store.jobs_of(inner.id)
        # Inner calls never become cache entries of the namespace: they stay uncached.
        assert store.lookup_calls(job.eval_hash for job in jobs if job.eval_hash) == {}
        total = next(job for job in jobs if job.task_name == "opflow.total")
        fed_total = {edge.src_job_id for edge in store.edges_of(total.id)}
        # Inner results are described in the Execution's namespace, and only there.
        results = [job.result_hash or "" for job in jobs if job.task_name == "opflow.inc"]
        previews = sorted(row.preview for row in store.value_records(results).values())
    with ProvenanceStore(cluster.database, "ns/elsewhere") as elsewhere:
        assert elsewhere.value_records(results) == {}
    assert previews == ["1", "2", "3"]
    assert inner.status == "DONE" and inner.result_preview == "6"
    names = {job.id: job.task_name for job in jobs}
    assert sorted(names.values()) == ["opflow.fanout", *["opflow.inc"] * 3, "opflow.total"]
    # The call tree and the call graph survive the renaming.
    fanout = next(job for job in jobs if job.task_name == "opflow.fanout")
    incs = [job for job in jobs if job.task_name == "opflow.inc"]
    assert {job.parent_id for job in incs} == {fanout.id}
    assert fed_total == {fanout.id}  # total(fanout(3)): fanout's result fed total
    assert {job.status for job in jobs} == {"DONE"}

    def log(*args: str) -> str:
        command = [sys.executable, "-m", "kredun", "log", "--database", cluster.database, *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert f"subrun: execution {inner.id}  DONE" in log(subrun_job.id)
    tree = log(inner.id)
    assert f"inside job: {subrun_job.id}  (a subrun)" in tree
    assert tree.count("opflow.inc") == 3
    # The task rows came along, as their hashes match their source.
    assert "return x + 1" in log(incs[0].id)


def test_a_failed_subrun_in_a_pod_shows_what_failed_inside(operator_cluster) -> None:
    cluster = operator_cluster
    local = {"executors": {"default": {"type": "local"}}}
    cluster.create("inner-fail", cluster.plan_spec(
        subrun(flow.add(flow.boom("inner trouble"), 1), executor="k8s", config=local)
    ))  # fmt: skip
    assert cluster.wait_for_phase("inner-fail")["phase"] == "Failed"
    with ProvenanceStore(cluster.database, cluster.scope()) as store:
        (subrun_job,) = store.find_jobs(task="kredun.subrun")
        (inner,) = store.find_executions(parent_job_id=subrun_job.id)
        (failed,) = store.jobs_of(inner.id)
    assert subrun_job.status == inner.status == failed.status == "FAILED"
    assert failed.task_name == "opflow.boom" and failed.error == "ValueError: inner trouble"


def test_a_later_subrun_in_a_pod_replays_its_inner_calls(operator_cluster) -> None:
    cluster = operator_cluster
    nested = {"executors": {"default": {"type": "local"}}}
    expr = subrun(flow.add(flow.inc(1), flow.inc(2)), executor="k8s", config=nested)

    def inner_statuses(name: str) -> tuple[list[str], list[str]]:
        cluster.create(name, cluster.plan_spec(expr))
        assert cluster.wait_for_phase(name)["phase"] == "Succeeded"
        execution_id = uuid.UUID(cluster.execution(name)["status"]["executionId"]).hex
        with ProvenanceStore(cluster.database, cluster.scope()) as store:
            (outer,) = (job for job in store.find_jobs(task="kredun.subrun")
                        if job.execution_id == execution_id)  # fmt: skip
            (inner,) = store.find_executions(parent_job_id=outer.id)
            jobs = store.jobs_of(inner.id)
        return sorted(job.status for job in jobs), [job.eval_hash or "" for job in jobs]

    assert inner_statuses("first")[0] == ["DONE"] * 3
    statuses, eval_hashes = inner_statuses("second")
    assert statuses == ["CACHED"] * 3  # the subrun job ran again; its calls did not
    # The index is the namespace's: it lives in the job's scope of the value store.
    scoped = open_value_store(cluster.value_store, cluster.scope())
    assert all(scoped.exists(call_index_key(h)) for h in eval_hashes)
    assert not open_value_store(cluster.value_store).exists(call_index_key(eval_hashes[0]))


def test_task_options_shape_the_pod(tmp_path: Path) -> None:
    # "runner" is allowed by the operator's Pod policy; other ServiceAccounts are not.
    config = '[jobs]\nservice_accounts = ["runner"]\n'
    with OperatorCluster(tmp_path, operator_config=config) as cluster:
        _task_options_shape_the_pod(cluster)


def _task_options_shape_the_pod(cluster: OperatorCluster) -> None:
    sized = flow.inc.options(cpus=0.5, memory=2, gpus=0, image="other:1", timeout=30)
    spec = cluster.plan_spec(
        sized(1),
        serviceAccountName="runner",
        nodeSelector={"kubernetes.io/os": "linux"},
        tolerations=[{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        env=[{"name": "EXTRA", "value": "1"}],
    )
    cluster.create("sized", spec)
    assert cluster.wait_for_phase("sized")["phase"] == "Succeeded"
    (pod,) = cluster.pods("sized")
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert container["image"] == "other:1"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert spec["activeDeadlineSeconds"] == 30
    assert spec["serviceAccountName"] == "runner"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "EXTRA", "value": "1"} in container["env"]


def test_serving_all_namespaces(operator_cluster) -> None:
    cluster = operator_cluster
    cluster.stop_operator()
    cluster.start_operator("--all-namespaces")
    body = {
        "apiVersion": "kredun.dev/v1",
        "kind": "Execution",
        "metadata": {"name": "elsewhere", "namespace": "default"},
        "spec": {"task": "examples.hello.main", "kwargs": {"name": "all"}, "image": IMAGE},
    }
    cluster.api_request("POST", "/apis/kredun.dev/v1/namespaces/default/executions", body)

    def finished() -> dict | None:
        (execution,) = cluster.api.objects("executions", group="kredun.dev", namespace="default")
        status = execution.get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(finished, timeout=60, message="the Execution in namespace default")
    assert status["phase"] == "Succeeded", status
    assert "Hello, all!" in status["result"]["preview"]
    assert len(cluster.api.objects("pods", namespace="default")) == 4


def test_large_job_specs_travel_through_the_value_store(operator_cluster) -> None:
    cluster = operator_cluster
    # A list holding an expression stays a list in the plan: each literal is a reference of
    # its own in the job spec of the call taking the list.
    items = [flow.inc(0), *(f"item-{i}" for i in range(1000))]
    cluster.create("large", cluster.plan_spec(flow.describe(items)))
    status = cluster.wait_for_phase("large")
    assert status["phase"] == "Succeeded", status
    assert status["result"]["preview"] == "'list'"
    commands = {
        pod["metadata"]["labels"]["kredun.dev/task"]: pod["spec"]["containers"][0]["command"]
        for pod in cluster.pods("large")
    }
    assert commands["opflow.inc"][2] == "--spec-json"
    assert commands["opflow.describe"][2] == "--spec-hash"
    assert len(commands["opflow.describe"][3]) == 40


def test_max_parallel_jobs_runs_one_pod_at_a_time(operator_cluster, tmp_path: Path) -> None:
    cluster = operator_cluster
    runs = tmp_path / "runs"
    runs.mkdir()
    jobs = [flow.timed(i, 0.3, str(runs)) for i in range(3)]
    cluster.create("serial", cluster.plan_spec(jobs, maxParallelJobs=1))
    assert cluster.wait_for_phase("serial")["phase"] == "Succeeded"
    spans = sorted(tuple(map(float, path.read_text().split())) for path in runs.iterdir())
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two jobs of the Execution ran at once"


def test_an_image_that_cannot_be_pulled_fails_the_job(operator_cluster) -> None:
    """The local kubelet runs no images; a Pod it cannot schedule gets, from the test, the
    status a real kubelet writes when pulling fails."""
    cluster = operator_cluster
    spec = cluster.plan_spec(flow.inc(1), nodeSelector={"kredun.dev/nowhere": "true"})
    cluster.create("pull", spec)
    (pod,) = wait_for(lambda: cluster.pods("pull"), timeout=30, message="the job pod")
    back_off = {
        "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling "kredun:test"'}
    }
    cluster.api_request(
        "PATCH",
        f"/api/v1/namespaces/{cluster.namespace}/pods/{pod['metadata']['name']}/status",
        {"status": {"containerStatuses": [{"name": "job", "state": back_off, "ready": False,
                                           "restartCount": 0, "image": IMAGE, "imageID": ""}]}},
    )  # fmt: skip
    status = cluster.wait_for_phase("pull")
    assert status["phase"] == "Failed"
    assert "ImagePullBackOff for image 'kredun:test'" in status["message"]
    assert "check spec.image" in status["message"]
    wait_for(lambda: cluster.pods("pull") == [], timeout=30, message="the stuck pod deleted")


def test_a_large_result_is_checked_where_it_lies(operator_cluster) -> None:
    cluster = operator_cluster
    cluster.create("large", cluster.plan_spec(flow.blob(300_000)))
    status = cluster.wait_for_phase("large")
    assert status["phase"] == "Succeeded", status
    result_hash = status["result"]["hash"]
    with ProvenanceStore(cluster.database, cluster.scope()) as store:
        (record,) = store.value_records([result_hash]).values()
    # Too large to keep inline: the row describes the blob the job stored, by its bytes.
    assert record.data is None and record.preview.startswith("b'xxx")
    stored = cluster.scheduler().value_store.get(result_hash)
    assert hash_bytes(stored) == result_hash and record.size == len(stored)
    assert resolve(ref_from_json(status["result"]["ref"]), cluster.scheduler().fetch_blob) == (
        b"x" * 300_000
    )
