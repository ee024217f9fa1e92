"""The client side of the cluster: `kredun.submit()`, `ExecutionHandle` and the cluster CLI
commands, against the emulated Kubernetes API server.

The operator is not involved: the tests play its part by patching the Execution's status
subresource and writing results into the stores, as the operator and its job Pods would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import kredun
import pytest
from kredun import task
from kredun.hashing import encode, hash_bytes
from kredun.plan import INLINE_LIMIT, decode_plan, loads_plan
from kredun.provenance.records import ProvenanceBatch
from kredun.provenance.store import ProvenanceStore
from kredun.serialize import preview, type_name
from kredun.submit import (
    GROUP,
    PLURAL,
    VERSION,
    ClusterUnreachableError,
    CRDNotInstalledError,
    ExecutionCancelledError,
    ExecutionDeletedError,
    ExecutionExistsError,
    ExecutionFailedError,
    ExecutionHandle,
    ExecutionNotFoundError,
    ForbiddenError,
    InvalidExecutionError,
    JobNotFoundError,
    KubeConfigError,
    MissingImageError,
    ValueStoreNotSharedError,
)
from kredun.valuestore import open_value_store, store_value

from tests.cluster.test_crd import spec_errors
from tests.support.kube.testing import wait_for

pytest_plugins = ["tests.support.kube.fixtures"]
pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "execution.yaml"
IMAGE = "kredun:test"
# The cache scope of Executions in the namespace the tests use (kredun.tenancy): where
# the client puts plans and the operator's jobs put results.
SCOPE = "ns/default"

kredun_namespace = "submit"


def double(x):
    return 2 * x


@task()
def add(a, b):
    return a + b


@task()
def pipeline(a, b):
    return add(double(a), b)


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Any]:
    """The stores the 'cluster' shares with the client: a SQLite file and a directory."""
    return {
        "database": {"uri": f"sqlite:///{tmp_path / 'kredun.db'}"},
        "value_store": {"uri": f"file://{tmp_path / 'values'}"},
    }


@pytest.fixture
def crd(kubectl) -> None:
    kubectl("apply", "--validate=false", "-f", str(CRD))


@pytest.fixture
def custom(kube_client) -> Any:
    import kubernetes.client

    return kubernetes.client.CustomObjectsApi(kube_client)


@pytest.fixture
def no_scheduler(monkeypatch) -> None:
    """Fetching a result opens the stores only: building a Scheduler fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a Scheduler was built")

    monkeypatch.setattr("kredun.scheduler.Scheduler.__init__", refuse)


def submit(expr, stores, kubeconfig, **options) -> ExecutionHandle:
    return kredun.submit(expr, image=IMAGE, config=stores, kubeconfig=kubeconfig, **options)


def execution(custom, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)


def patch_status(custom, name: str, status: dict[str, Any]) -> None:
    """Act as the operator: set the status once the Execution exists (a CLI under test may
    still be starting up when the timer fires)."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + 60
    while True:
        try:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, "default", PLURAL, name, {"status": status}
            )
            return
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def later(seconds: float, action, *args) -> threading.Timer:
    timer = threading.Timer(seconds, action, args)
    timer.start()
    return timer


def record_result(stores: dict[str, Any], value: Any) -> str:
    """Store a result as a job Pod does: bytes by hash, plus the provenance row."""
    value_hash, data = encode(value)
    values = open_value_store(stores["value_store"]["uri"], SCOPE)
    record = store_value(values, value_hash, data, type_name(value), preview(value))
    store = ProvenanceStore(stores["database"]["uri"], SCOPE)
    store.ensure_schema()
    store.write(ProvenanceBatch(values=[record]))
    store.close()
    return value_hash


def succeeded(ref: dict[str, Any], preview_text: str) -> dict[str, Any]:
    return {
        "phase": "Succeeded",
        "progress": "2/2",
        "jobs": {"pending": 0, "running": 0, "failed": 0, "cached": 1, "done": 2, "total": 2},
        "result": {"preview": preview_text, "hash": ref.get("hash", ""), "ref": ref},
    }


def plan_bytes(stores: dict[str, Any], obj: dict[str, Any]) -> bytes:
    values = open_value_store(stores["value_store"]["uri"], SCOPE)
    return values.get(obj["spec"]["plan"]["hash"])


# -- submit: the Execution and its plan --------------------------------------------------------


def test_submit_creates_an_execution_with_its_plan_in_the_value_store(
    crd, custom, stores, kubeconfig
):
    handle = submit(
        pipeline(2, 3),
        stores,
        kubeconfig,
        service_account="runner",
        node_selector={"pool": "batch"},
        tolerations=[{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        resources={"cpus": 0.5, "memory": "512Mi"},
        cache=False,
    )
    assert handle.name.startswith("submit-pipeline-") and handle.namespace == "default"
    obj = execution(custom, handle.name)
    assert (obj["apiVersion"], obj["kind"]) == ("kredun.dev/v1", "Execution")
    assert obj["metadata"]["generateName"] == "submit-pipeline-"
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kredun",
        "kredun.dev/task": "submit.pipeline",
    }
    assert obj["metadata"]["annotations"]["kredun.dev/expression"] == repr(pipeline(2, 3))
    spec = obj["spec"]
    assert spec_errors(spec) == []
    assert {key: spec[key] for key in spec if key != "plan"} == {
        "image": IMAGE,
        "executor": "k8s",
        "cache": False,
        "serviceAccountName": "runner",
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {"cpus": 0.5, "memory": "512Mi"},
    }
    stored = plan_bytes(stores, obj)
    assert hash_bytes(stored) == spec["plan"]["hash"]
    assert base64.b64decode(spec["plan"]["inline"]) == stored
    plan = loads_plan(stored)
    root, ready = decode_plan(plan)
    assert root.payload.task.fullname == "submit.pipeline" and len(ready) == 1
    # Besides the called task, the plan names the current definition of every task of the
    # workflow's module: a cluster replaying cached fragments resolves calls by them.
    assert plan["registry"]["submit.pipeline"] == root.payload.task.hash
    assert {entry["name"] for entry in plan["tasks"].values()} == set(plan["registry"])
    assert {name.partition(".")[0] for name in plan["registry"]} == {"submit"}


def test_large_plans_and_values_stay_out_of_the_execution(crd, custom, stores, kubeconfig):
    big = "x" * 100_000
    handle = submit([add(i, big) for i in range(300)], stores, kubeconfig)
    obj = execution(custom, handle.name)
    assert handle.name.startswith("kredun-")
    assert "inline" not in obj["spec"]["plan"] and spec_errors(obj["spec"]) == []
    assert len(json.dumps(obj)) < 4096
    plan = loads_plan(plan_bytes(stores, obj))
    refs = [node["value"] for node in plan["nodes"] if "value" in node]
    (big_hash,) = {ref["hash"] for ref in refs if "inline" not in ref}
    values = open_value_store(stores["value_store"]["uri"], SCOPE)
    assert len(values.get(big_hash)) > INLINE_LIMIT


def test_task_code_runs_in_a_process_that_cannot_import_the_workflow(
    crd, custom, stores, kubeconfig, tmp_path
):
    """Task code from a workflow file travels by value: a fresh process (like a Pod whose
    image lacks the workflow) unpickles it and runs it, helper functions included."""
    workflow = tmp_path / "flows" / "shipped_flow.py"
    workflow.parent.mkdir()
    workflow.write_text(
        textwrap.dedent(
            """
            from kredun import task

            kredun_namespace = "shipped"
            OFFSET = 100

            def helper(x):
                return x * 10 + OFFSET

            @task()
            def step(x):
                return helper(x)
            """
        )
    )
    from kredun.workflow import find_task, load_workflow_file

    step = find_task(load_workflow_file(workflow), "step")
    obj = execution(custom, submit(step(4), stores, kubeconfig).name)
    plan = loads_plan(plan_bytes(stores, obj))
    (entry,) = plan["tasks"].values()
    code = entry["code"]["hash"]
    code_path = tmp_path / "values" / SCOPE / code[:2] / code[2:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cloudpickle\n"
            "try:\n    import shipped_flow\nexcept ImportError:\n    pass\n"
            "else:\n    sys.exit('the workflow module is importable here')\n"
            f"task = cloudpickle.loads(open({str(code_path)!r}, 'rb').read())\n"
            "print(task.fullname, task.func(4))",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["shipped.step", "140"]

    # The by-value registration does not outlive submit().
    import cloudpickle

    assert "shipped_flow" not in cloudpickle.list_registry_pickle_by_value()


def test_a_submitted_plan_runs_on_the_engine_and_its_result_comes_back(
    crd, custom, stores, kubeconfig, tmp_path
):
    """Without the operator: reduce the submitted plan the way it does (over references, jobs
    in fresh `kredun worker` processes that cannot import the workflow file), publish the
    result reference in the status, and read the value back through the handle."""
    from tests.engine.test_plans import operator_like_run

    workflow = tmp_path / "flows" / "engine_flow.py"
    workflow.parent.mkdir()
    workflow.write_text(
        textwrap.dedent(
            """
            from kredun import task

            kredun_namespace = "engine"

            def helper(x):
                return x * 10

            @task()
            def scale(x):
                return helper(x)

            @task()
            def main(n: int):
                return {"scaled": [scale(i) for i in range(n)], "n": n}
            """
        )
    )
    from kredun.workflow import find_task, load_workflow_file

    main = find_task(load_workflow_file(workflow), "main")
    handle = submit(main(3), stores, kubeconfig)
    plan = loads_plan(plan_bytes(stores, execution(custom, handle.name)))
    database, values = stores["database"]["uri"], stores["value_store"]["uri"]
    ref = operator_like_run(plan, database, values, scope=SCOPE)
    patch_status(custom, handle.name, succeeded(ref.to_json(), "{...}"))
    assert handle.result(timeout=10) == {"scaled": [0, 10, 20], "n": 3}


def test_submit_with_a_name_and_wait(crd, custom, stores, kubeconfig):
    value_hash = record_result(stores, 7)
    timer = later(0.3, patch_status, custom, "seven", succeeded({"hash": value_hash}, "7"))
    handle = submit(pipeline(2, 3), stores, kubeconfig, name="seven", wait=True, timeout=20)
    timer.join()
    assert handle.name == "seven" and handle.phase == "Succeeded"
    assert handle.result() == 7
    with pytest.raises(ExecutionExistsError, match="'seven' already exists"):
        submit(pipeline(2, 3), stores, kubeconfig, name="seven")


# -- following an Execution --------------------------------------------------------------------


def test_status_wait_and_result_watch_the_execution(crd, custom, stores, kubeconfig, kube_api):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    assert handle.status() == {} and handle.phase is None
    patch_status(custom, handle.name, {"phase": "Running", "progress": "1/2"})
    assert handle.phase == "Running" and handle.status()["progress"] == "1/2"

    value = {"answer": 42, "padding": "p" * 200_000}  # too large for the database row
    value_hash = record_result(stores, value)
    later(0.5, patch_status, custom, handle.name, succeeded({"hash": value_hash}, "{...}"))
    gets_before = sum(1 for r in kube_api.request_log if r.verb == "get")
    started = time.monotonic()
    status = handle.wait(timeout=20)
    assert time.monotonic() - started < 5
    assert status["phase"] == "Succeeded" and status["jobs"]["cached"] == 1
    verbs = [r.verb for r in kube_api.request_log if r.resource == PLURAL]
    assert "watch" in verbs
    assert sum(1 for r in kube_api.request_log if r.verb == "get") - gets_before == 1
    assert handle.result() == value


def test_result_resolves_composite_references(crd, custom, stores, kubeconfig, no_scheduler):
    handle = submit(pipeline(2, 3), stores, kubeconfig)

    def inline(value: Any) -> dict[str, str]:
        value_hash, data = encode(value)
        return {"hash": value_hash, "inline": base64.b64encode(data).decode()}

    stored = {"hash": record_result(stores, list(range(5000)))}
    ref = {"composite": "dict", "items": [inline("big"), stored, inline("small"), inline("x")]}
    patch_status(custom, handle.name, succeeded(ref, "{'big': [...], 'small': 'inline'}"))
    assert handle.result(timeout=10) == {"big": list(range(5000)), "small": "x"}


def test_wait_raises_when_the_execution_failed(crd, custom, stores, kubeconfig):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    failure = {
        "task": "submit.add",
        "error": "ValueError: boom\nsecond line",
        "traceback": 'Traceback (most recent call last):\n  File "wf.py"\nValueError: boom',
    }
    status = {"phase": "Failed", "message": "job submit.add failed", "failure": failure}
    later(0.3, patch_status, custom, handle.name, status)
    with pytest.raises(ExecutionFailedError) as caught:
        handle.wait(timeout=20)
    error = caught.value
    assert str(error) == (
        f"execution {handle.name} failed in task submit.add: ValueError: boom second line"
    )
    assert (error.task, error.error, error.traceback) == (
        failure["task"],
        failure["error"],
        failure["traceback"],
    )
    with pytest.raises(ExecutionFailedError):
        handle.result()


def test_cancel_sets_spec_cancel_and_wait_raises_cancelled(crd, custom, stores, kubeconfig):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    handle.cancel()
    assert execution(custom, handle.name)["spec"]["cancel"] is True
    later(0.3, patch_status, custom, handle.name, {"phase": "Cancelled"})
    with pytest.raises(ExecutionCancelledError, match="was cancelled"):
        handle.wait(timeout=20)
    assert isinstance(ExecutionCancelledError("x"), kredun.errors.CancelledError)


def test_wait_times_out(crd, stores, kubeconfig):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1s"):
        handle.wait(timeout=1)
    assert 0.9 < time.monotonic() - started < 4


def test_wait_notices_deletion(crd, custom, stores, kubeconfig):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    delete = custom.delete_namespaced_custom_object
    later(0.3, delete, GROUP, VERSION, "default", PLURAL, handle.name)
    with pytest.raises(ExecutionDeletedError, match="was deleted"):
        handle.wait(timeout=20)


def test_wait_recovers_when_its_version_is_too_old_to_watch(stores, tmp_path, monkeypatch):
    """A watch from an expired resourceVersion gets 410 Gone: wait() reads the object again."""
    import kubernetes.client

    from tests.support.kube.apiserver import KubeApiServer
    from tests.support.kube.testing import Kubectl

    with KubeApiServer(history_limit=2) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "short-history")
        Kubectl(kubeconfig, tmp_path / "cache")("apply", "--validate=false", "-f", str(CRD))
        handle = submit(pipeline(2, 3), stores, kubeconfig)
        stale = handle.get()
        custom = kubernetes.client.CustomObjectsApi(handle._api)
        for done in range(3):
            patch_status(custom, handle.name, {"phase": "Running", "progress": f"{done}/3"})
        patch_status(custom, handle.name, succeeded({"hash": record_result(stores, 1)}, "1"))
        reads = iter([stale])
        real_get = handle.get
        monkeypatch.setattr(handle, "get", lambda: next(reads, None) or real_get())
        assert handle.wait(timeout=10)["phase"] == "Succeeded"
        assert [r.verb for r in api.request_log if r.resource == PLURAL][-2:] == ["watch", "get"]


def job_pod(execution_name: str, name: str, task_name: str, eval_hash: str, output: str):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "kredun.dev/execution": execution_name,
                "kredun.dev/task": task_name,
                "kredun.dev/eval-hash": eval_hash,
                "app.kubernetes.io/managed-by": "kredun",
                "app.kubernetes.io/component": "job",  # as the operator labels job Pods
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "job",
                    "image": IMAGE,
                    "command": [sys.executable, "-c", f"print({output!r})"],
                }
            ],
        },
    }


def test_logs_of_job_pods(crd, stores, kubeconfig, kube_client, kubelet):
    import kubernetes.client

    core = kubernetes.client.CoreV1Api(kube_client)
    handle = submit(pipeline(2, 3), stores, kubeconfig, name="logged")
    pods = [
        job_pod("logged", "logged-aaaa1111", "submit.pipeline", "a" * 40, "planning"),
        job_pod("logged", "logged-bbbb2222", "submit.add", "b" * 40, "adding 4 and 3"),
        job_pod("other", "other-cccc3333", "submit.add", "c" * 40, "not ours"),
    ]
    for pod in pods:
        core.create_namespaced_pod("default", pod)
    for pod in pods:
        wait_for(
            lambda name=pod["metadata"]["name"]: (
                core.read_namespaced_pod(name, "default").status.phase == "Succeeded"
            ),
            message=f"pod {pod['metadata']['name']} to succeed",
        )
    assert handle.logs() == (
        "==> logged-aaaa1111 (submit.pipeline) <==\nplanning\n"
        "==> logged-bbbb2222 (submit.add) <==\nadding 4 and 3\n"
    )
    assert handle.logs(job="bbbb") == "adding 4 and 3\n"  # eval hash prefix
    assert handle.logs(job="add") == "adding 4 and 3\n"  # task short name
    assert handle.logs(job="logged-aaaa") == "planning\n"  # pod name prefix
    with pytest.raises(JobNotFoundError, match="matches 'nothing'"):
        handle.logs(job="nothing")


# -- errors -------------------------------------------------------------------------------------


def test_errors_are_one_line_kredun_errors(stores, kubeconfig, kube_api, kubectl, tmp_path):
    with pytest.raises(CRDNotInstalledError, match=r"kubectl apply -f crds/execution.yaml"):
        submit(pipeline(2, 3), stores, kubeconfig)
    kubectl("apply", "--validate=false", "-f", str(CRD))
    missing = ExecutionHandle("nope", kubeconfig=kubeconfig)
    for action in (missing.status, missing.cancel, missing.logs, missing.wait):
        with pytest.raises(ExecutionNotFoundError, match="no execution 'nope' in namespace"):
            action()
    kube_api.fail_next(status=403, resource=PLURAL)
    with pytest.raises(ForbiddenError, match=r"^cannot create the execution: "):
        submit(pipeline(2, 3), stores, kubeconfig)
    with pytest.raises(InvalidExecutionError, match="invalid execution name 'Bad_Name'"):
        submit(pipeline(2, 3), stores, kubeconfig, name="Bad_Name")
    with pytest.raises(ValueStoreNotSharedError, match="memory:// is in this process only"):
        submit(pipeline(2, 3), {"value_store": {"uri": "memory://"}}, kubeconfig)
    with pytest.raises(MissingImageError, match="no job image"):
        kredun.submit(pipeline(2, 3), config=stores, kubeconfig=kubeconfig)
    with pytest.raises(TypeError, match="needs an expression"):
        submit(5, stores, kubeconfig)

    with pytest.raises(KubeConfigError, match=r"cannot load kubeconfig .*missing"):
        ExecutionHandle("x", kubeconfig=tmp_path / "missing").status()
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(kubeconfig.read_text().replace(f":{kube_api.port}", ":1"))
    with pytest.raises(ClusterUnreachableError) as caught:
        ExecutionHandle("x", kubeconfig=dead).status()
    assert "\n" not in str(caught.value)


def test_importing_kredun_does_not_import_the_kubernetes_client():
    code = (
        "import sys, kredun\n"
        "assert 'kubernetes' not in sys.modules and 'cloudpickle' not in sys.modules\n"
        "from kredun.submit import ExecutionHandle\n"
        "assert callable(kredun.submit) and kredun.submit.__name__ == 'submit'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- the CLI ------------------------------------------------------------------------------------

WORKFLOW = """
from kredun import task

kredun_namespace = "wf"


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def main(n: int = 3) -> int:
    return add(n, 1)
"""


@pytest.fixture
def project(tmp_path: Path, kubeconfig: Path, stores: dict[str, Any]) -> dict[str, Any]:
    """A working directory with a workflow, and the environment of a configured user."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "wf.py").write_text(WORKFLOW)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KREDUN_DATABASE_URI": stores["database"]["uri"],
        "KREDUN_VALUE_STORE": stores["value_store"]["uri"],
        "KREDUN_JOB_IMAGE": IMAGE,
    }
    return {"cwd": work, "env": env}


def kredun_cli(project: dict[str, Any], *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**project["env"], **env}
    for key in [key for key, value in environment.items() if value == ""]:
        del environment[key]
    return subprocess.run(
        [sys.executable, "-m", "kredun", *args],
        cwd=project["cwd"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_submit_get_logs_cancel(crd, custom, stores, project):
    done = kredun_cli(project, "submit", "wf.py", "main", "--n", "5")
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert name.startswith("wf-main-")
    obj = execution(custom, name)
    assert obj["spec"]["image"] == IMAGE and spec_errors(obj["spec"]) == []
    (call,) = [node for node in loads_plan(plan_bytes(stores, obj))["nodes"] if "call" in node]
    assert call["kwargs"].keys() == {"n"}

    listing = kredun_cli(project, "get")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "CACHED", "AGE", "RESULT"]
    assert row.split()[:4] == [name, "-", "-", "-"]

    patch_status(custom, name, succeeded({"hash": record_result(stores, 6)}, "6"))
    row = kredun_cli(project, "get").stdout.splitlines()[1].split()
    assert row[:4] == [name, "Succeeded", "2/2", "1"] and row[-1] == "6"

    detail = kredun_cli(project, "get", name, "-n", "default")
    assert detail.returncode == 0, detail.stderr
    fields = dict(line.split(":", 1) for line in detail.stdout.splitlines())
    fields = {label: value.strip() for label, value in fields.items()}
    assert fields["Name"] == name and fields["Phase"] == "Succeeded"
    assert fields["Result"] == "6" and fields["Jobs"].startswith("pending 0, running 0")
    assert fields["Expression"] == "TaskExpression('wf.main', (), {'n': 5})"

    logs = kredun_cli(project, "logs", name)
    assert (logs.returncode, logs.stdout) == (0, "")

    cancel = kredun_cli(project, "cancel", name)
    assert cancel.returncode == 0, cancel.stderr
    assert execution(custom, name)["spec"]["cancel"] is True


def test_cli_submit_wait_prints_the_result_or_the_failure(crd, custom, stores, project):
    value_hash = record_result(stores, {"total": 6})
    later(1.5, patch_status, custom, "ok", succeeded({"hash": value_hash}, "{'total': 6}"))
    done = kredun_cli(project, "submit", "--wait", "--name", "ok", "wf.py", "main")
    assert (done.returncode, done.stdout) == (0, "{'total': 6}\n"), done.stderr
    assert "Execution default/ok submitted" in done.stderr

    failure = {"task": "wf.add", "error": "ValueError: boom", "traceback": "Traceback ...\nboom"}
    later(1.5, patch_status, custom, "bad", {"phase": "Failed", "failure": failure})
    done = kredun_cli(project, "submit", "--wait", "--name", "bad", "wf.py", "main")
    assert done.returncode == 1 and done.stdout == ""
    assert "kredun: execution bad failed in task wf.add: ValueError: boom" in done.stderr
    assert "Traceback ...\nboom" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("get",), {}, "the cluster does not serve executions.kredun.dev"),
        (("submit", "wf.py", "main"), {"KREDUN_JOB_IMAGE": ""}, "no job image: pass --image"),
        (("submit", "wf.py", "main"), {"KREDUN_VALUE_STORE": "memory://"}, "the cluster cannot"),
        (("submit", "wf.py", "main"), {"KREDUN_VALUE_STORE": ""}, "no value store configured"),
    ],
)
def test_cli_errors_without_the_crd_image_or_value_store(project, args, env, message):
    done = kredun_cli(project, *args, **env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("kredun: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_cli_unknown_execution(crd, project):
    for command in ("get", "logs", "cancel"):
        done = kredun_cli(project, command, "nope")
        assert done.returncode == 2
        assert done.stderr == "kredun: error: no execution 'nope' in namespace 'default'\n"


def test_result_reads_a_reference_the_operator_left_in_the_store(
    crd, custom, stores, kubeconfig, no_scheduler
):
    handle = submit(pipeline(2, 3), stores, kubeconfig)
    items = [encode(i)[0] for i in range(200)]
    ref = {"composite": "list", "items": [{"hash": h} for h in items]}
    for value in range(200):
        record_result(stores, value)
    data = json.dumps(ref).encode()
    ref_hash = hash_bytes(data)
    open_value_store(stores["value_store"]["uri"], SCOPE).put(ref_hash, data)
    status = {"phase": "Succeeded", "result": {"preview": "[...]", "refHash": ref_hash}}
    patch_status(custom, handle.name, status)
    assert handle.result(timeout=10) == list(range(200))
