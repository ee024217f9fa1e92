"""Contract tests of the local kubelet: Pods run as processes, with Kubernetes' Pod semantics.

The operator's tests rely on the kubelet to turn the Pods the operator creates into real runs
of kredun's console scripts, and to report them the way a real kubelet and scheduler would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube.apiserver import KubeApiServer
from tests.support.kube.kubelet import _IMAGE_REFERENCE, LocalKubelet, Resources, parse_quantity
from tests.support.kube.testing import subprocess_env, wait_for

pytest_plugins = ["tests.support.kube.fixtures"]
pytestmark = pytest.mark.timeout(60)


def pod(
    name: str, command: list[str], *, restart_policy: str = "Never", **spec: Any
) -> dict[str, Any]:
    container = {"name": "main", "image": "kredun:test", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "kubelet"}},
        "spec": {"restartPolicy": restart_policy, "containers": [container], **spec},
    }


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_for_file(path: Path) -> str:
    """Python code that blocks until ``path`` exists: lets a test hold a Pod in Running."""
    return f"import os, time\nwhile not os.path.exists({str(path)!r}): time.sleep(0.05)\n"


@pytest.fixture
def core(kube_client: Any) -> Any:
    import kubernetes.client

    return kubernetes.client.CoreV1Api(kube_client)


def wait_for_phase(core: Any, name: str, *phases: str, timeout: float = 20) -> Any:
    def current() -> Any:
        found = core.read_namespaced_pod(name, "default")
        return found if found.status.phase in phases else None

    return wait_for(current, timeout=timeout, message=f"pod {name} to reach {phases}")


def test_quantities_and_requests_are_parsed_like_kubernetes() -> None:
    assert parse_quantity("500m") == 0.5
    assert parse_quantity("1.5Gi") == 1.5 * 2**30
    assert parse_quantity("2k") == 2000
    assert parse_quantity("1e3") == 1000
    requested = Resources.requested_by(
        pod(
            "p",
            ["true"],
            container={
                "resources": {
                    "requests": {"cpu": "250m"},
                    "limits": {"memory": "1Gi", "nvidia.com/gpu": 1},
                }
            },
        )
    )
    assert requested == Resources(cpu=0.25, memory=2**30, gpus=1)


def test_pod_runs_to_success_with_logs(kubelet: LocalKubelet, core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("ok", python("print('hello'); import sys; print('err', file=sys.stderr)"))
    )
    done = wait_for_phase(core, "ok", "Succeeded")
    state = done.status.container_statuses[0].state.terminated
    assert (state.exit_code, state.reason) == (0, "Completed")
    assert state.finished_at and done.status.start_time
    assert done.spec.node_name == kubelet.node_name
    conditions = {c.type: c.status for c in done.status.conditions}
    assert conditions["PodScheduled"] == "True" and conditions["Ready"] == "False"
    assert core.read_namespaced_pod_log("ok", "default") == "hello\nerr\n"
    assert kubelet.starts["ok"] == 1


def test_pod_reports_running_while_its_process_runs(
    kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = "print('started', flush=True)\n" + wait_for_file(gate) + "print('finished')\n"
    core.create_namespaced_pod("default", pod("gated", python(code)))
    running = wait_for_phase(core, "gated", "Running")
    status = running.status.container_statuses[0]
    assert status.ready and status.state.running.started_at
    assert wait_for(lambda: core.read_namespaced_pod_log("gated", "default") == "started\n")

    followed: list[str] = []
    follower = threading.Thread(
        target=lambda: followed.append(
            core.read_namespaced_pod_log("gated", "default", follow=True)
        )
    )
    follower.start()
    time.sleep(0.2)
    gate.touch()
    wait_for_phase(core, "gated", "Succeeded")
    follower.join(timeout=10)
    assert followed == ["started\nfinished\n"]  # the stream ends when the container does


def test_failing_command_fails_the_pod_with_its_exit_code(kubelet: LocalKubelet, core: Any) -> None:
    core.create_namespaced_pod("default", pod("bad", python("raise SystemExit(3)")))
    core.create_namespaced_pod("default", pod("missing", ["/nonexistent/binary"]))
    failed = wait_for_phase(core, "bad", "Failed")
    terminated = failed.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")

    unstartable = wait_for_phase(core, "missing", "Failed")
    terminated = unstartable.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")
    assert "failed to start" in core.read_namespaced_pod_log("missing", "default")


def test_environment_fieldrefs_and_references(kubelet: LocalKubelet, core: Any) -> None:
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}
    )
    env = [
        {"name": "PLAIN", "value": "value"},
        {"name": "EXPANDED", "value": "$(PLAIN)-more"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "POD_LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['test']"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]
    names = [variable["name"] for variable in env] + ["PATH"]
    code = f"import os; print(' '.join(os.environ.get(n, '-') for n in {names!r}))"
    spec = pod("env", python(code), container={"env": env, "args": []})
    created = core.create_namespaced_pod("default", spec)
    wait_for_phase(core, "env", "Succeeded")
    values = core.read_namespaced_pod_log("env", "default").split()
    assert values[:-1] == [
        "value",
        "value-more",
        "env",
        "default",
        created.metadata.uid,
        "kubelet",
        "s3cret",
        "fast",
    ]
    assert values[-1].endswith(os.environ["PATH"])  # the venv's scripts are on it, first if need be


def test_working_dir_is_per_pod_unless_set(
    kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    core.create_namespaced_pod(
        "default", pod("default-dir", python("import os; print(os.getcwd())"))
    )
    core.create_namespaced_pod(
        "default",
        pod(
            "set-dir",
            python("import os; print(os.getcwd())"),
            container={"workingDir": str(tmp_path)},
        ),
    )
    wait_for_phase(core, "default-dir", "Succeeded")
    wait_for_phase(core, "set-dir", "Succeeded")
    assert core.read_namespaced_pod_log("set-dir", "default").strip() == str(tmp_path)
    assert Path(core.read_namespaced_pod_log("default-dir", "default").strip()).is_relative_to(
        kubelet.work_dir
    )


def test_deleting_a_pod_kills_its_process(kubelet: LocalKubelet, core: Any, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)"
    core.create_namespaced_pod("default", pod("sleeper", python(code)))
    wait_for_phase(core, "sleeper", "Running")
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))

    deleting = core.delete_namespaced_pod("sleeper", "default")
    assert deleting.metadata.deletion_timestamp is not None  # graceful: the kubelet finishes it

    def gone() -> bool:
        return not any(
            p.metadata.name == "sleeper" for p in core.list_namespaced_pod("default").items
        )

    wait_for(gone, message="the kubelet to complete the deletion")
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert kubelet.running == []


def test_sigterm_is_followed_by_sigkill_after_the_grace_period(
    kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    code = (
        "import signal, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *_: print('ignoring SIGTERM', flush=True))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(120)"
    )
    core.create_namespaced_pod(
        "default", pod("stubborn", python(code), terminationGracePeriodSeconds=1)
    )
    wait_for(ready.exists)
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", "default")
    wait_for(lambda: not core.list_namespaced_pod("default").items, message="the pod to go")
    assert 0.9 < time.monotonic() - started < 5
    log = kubelet.logs_dir / "default" / "stubborn.log"
    assert log.read_text() == "ignoring SIGTERM\n"


def test_force_deleted_pod_still_has_its_process_killed(
    kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)"
    core.create_namespaced_pod("default", pod("forced", python(code)))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    core.delete_namespaced_pod("forced", "default", grace_period_seconds=0)
    wait_for(lambda: kubelet.running == [], message="the process to be killed")
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_unschedulable_pods_stay_pending(
    kube_api: KubeApiServer, kubeconfig: Path, core: Any, tmp_path: Path
) -> None:
    too_big = pod(
        "too-big", ["true"], container={"resources": {"requests": {"cpu": "8", "memory": "1Gi"}}}
    )
    gpu = pod("gpu", ["true"], container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    elsewhere = pod("elsewhere", ["true"], nodeSelector={"pool": "gpu"})
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["cpu"]}]}
                ]
            }
        }
    }
    fits = pod(
        "fits",
        ["true"],
        nodeSelector={"pool": "cpu"},
        affinity=affinity,
        container={"resources": {"requests": {"cpu": "1"}}},
    )
    with LocalKubelet(
        kubeconfig,
        logs_dir=kube_api.logs_dir,
        work_dir=tmp_path / "w",
        max_cpu=4,
        max_memory="8Gi",
        node_labels={"pool": "cpu"},
    ) as local_kubelet:
        for manifest in (too_big, gpu, elsewhere, fits):
            core.create_namespaced_pod("default", manifest)
        wait_for_phase(core, "fits", "Succeeded")

        def scheduled_condition(name: str) -> Any:
            found = core.read_namespaced_pod(name, "default")
            conditions = [c for c in found.status.conditions or [] if c.type == "PodScheduled"]
            return conditions[0] if conditions else None

        for name, why in (
            ("too-big", "Insufficient cpu"),
            ("gpu", "Insufficient nvidia.com/gpu"),
            ("elsewhere", "didn't match Pod's node affinity/selector"),
        ):
            condition = wait_for(
                lambda name=name: scheduled_condition(name), message=f"{name} to be reported"
            )
            assert (condition.status, condition.reason) == ("False", "Unschedulable")
            assert why in condition.message
            assert core.read_namespaced_pod(name, "default").status.phase == "Pending"
        assert set(local_kubelet.starts) == {"fits"}


def test_pods_wait_for_capacity_to_free_up(
    kube_api: KubeApiServer, kubeconfig: Path, core: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = wait_for_file(gate)
    one_cpu = {"resources": {"requests": {"cpu": "1"}}}
    with LocalKubelet(
        kubeconfig, logs_dir=kube_api.logs_dir, work_dir=tmp_path / "w", max_cpu=1
    ) as local_kubelet:
        core.create_namespaced_pod("default", pod("first", python(code), container=one_cpu))
        wait_for_phase(core, "first", "Running")
        core.create_namespaced_pod("default", pod("second", python(code), container=one_cpu))
        wait_for(
            lambda: core.read_namespaced_pod("second", "default").status.conditions,
            message="a condition",
        )
        assert (
            core.read_namespaced_pod("second", "default").status.conditions[0].reason
            == "Unschedulable"
        )
        gate.touch()
        wait_for_phase(core, "second", "Succeeded")
        assert local_kubelet.starts == {"first": 1, "second": 1}


def test_restart_policy_on_failure_restarts_the_process(
    kube_api: KubeApiServer, kubeconfig: Path, core: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "attempted"
    code = (
        f"import pathlib, sys\nmarker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n    marker.touch()\n    sys.exit(1)"
    )
    with LocalKubelet(
        kubeconfig, logs_dir=kube_api.logs_dir, work_dir=tmp_path / "w", restart_backoff=0.1
    ) as local_kubelet:
        core.create_namespaced_pod(
            "default", pod("flaky", python(code), restart_policy="OnFailure")
        )
        done = wait_for_phase(core, "flaky", "Succeeded")
        status = done.status.container_statuses[0]
        assert status.restart_count == 1 and status.last_state.terminated.exit_code == 1
        assert local_kubelet.starts["flaky"] == 2


def test_active_deadline_fails_the_pod(kubelet: LocalKubelet, core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("slow", python("import time; time.sleep(60)"), activeDeadlineSeconds=1)
    )
    failed = wait_for_phase(core, "slow", "Failed")
    assert failed.status.reason == "DeadlineExceeded"


def test_api_faults_and_restarts_are_ridden_out(
    kube_api: KubeApiServer, kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    core.create_namespaced_pod("default", pod("resilient", python(wait_for_file(gate))))
    wait_for_phase(core, "resilient", "Running")
    with kube_api.failing(503, verb="patch"):
        gate.touch()
        time.sleep(0.5)  # the kubelet's status update fails meanwhile, and is retried
        assert core.read_namespaced_pod("resilient", "default").status.phase == "Running"
    wait_for_phase(core, "resilient", "Succeeded")

    kube_api.stop()  # the kubelet's watch breaks; it reconnects from its resourceVersion
    time.sleep(0.3)
    kube_api.start()
    core.create_namespaced_pod("default", pod("after-restart", python("print('back')")))
    wait_for_phase(core, "after-restart", "Succeeded")
    assert kubelet.starts == {"resilient": 1, "after-restart": 1}


def test_thirty_concurrent_pods_all_finish(kubelet: LocalKubelet, core: Any) -> None:
    names = [f"many-{index}" for index in range(30)]
    for name in names:
        core.create_namespaced_pod(
            "default",
            pod(
                name,
                python("import os; print(os.environ['HOSTNAME_'])"),
                container={
                    "env": [
                        {
                            "name": "HOSTNAME_",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }
                    ]
                },
            ),
        )

    def all_succeeded() -> bool:
        phases = [
            p.status.phase
            for p in core.list_namespaced_pod("default", label_selector="test=kubelet").items
        ]
        return len(phases) == 30 and set(phases) == {"Succeeded"}

    wait_for(all_succeeded, timeout=45, interval=0.2, message="30 pods to succeed")
    assert dict(kubelet.starts) == dict.fromkeys(names, 1)
    assert all(core.read_namespaced_pod_log(name, "default") == f"{name}\n" for name in names)


def test_runs_as_a_standalone_process(
    kube_api: KubeApiServer, kubeconfig: Path, core: Any, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.kube.kubelet",
            "--kubeconfig",
            str(kubeconfig),
            "--logs-dir",
            str(kube_api.logs_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(kubeconfig),
    )
    try:
        core.create_namespaced_pod("default", pod("remote", python("print('from a process')")))
        wait_for_phase(core, "remote", "Succeeded")
        assert core.read_namespaced_pod_log("remote", "default") == "from a process\n"
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0, process.stdout.read() if process.stdout else ""


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("kredun:test", True),
        ("registry.example.com:5000/team/app:1.2", True),
        (f"repo/app@sha256:{'a' * 64}", True),
        ("Not An Image", False),
        ("UPPER/case", False),
        ("repo/app:", False),
    ],
)
def test_the_kubelet_knows_an_invalid_image_name(image: str, valid: bool) -> None:
    assert (_IMAGE_REFERENCE.match(image) is not None) == valid


def test_a_missing_image_reports_pull_errors_until_deleted(
    kube_api: KubeApiServer, kubeconfig: Path, core: Any
) -> None:
    missing = "registry.invalid/none:0"
    with LocalKubelet(kubeconfig, logs_dir=kube_api.logs_dir, unpullable_images=[missing]):
        core.create_namespaced_pod("default", pod("p", ["true"], container={"image": missing}))
        seen: list[str] = []

        def reasons() -> list[str]:
            found = core.read_namespaced_pod("p", "default")
            for status in found.status.container_statuses or []:
                reason = status.state.waiting.reason if status.state.waiting else None
                if reason and (not seen or seen[-1] != reason):
                    seen.append(reason)
            return seen if "ImagePullBackOff" in seen else []

        assert wait_for(reasons, timeout=20) == ["ErrImagePull", "ImagePullBackOff"]
        assert core.read_namespaced_pod("p", "default").status.phase == "Pending"


@pytest.mark.skipif(os.geteuid() != 0, reason="placing the message file needs root")
def test_termination_messages_are_read_from_a_fresh_file_per_start(
    kubelet: LocalKubelet, core: Any, tmp_path: Path
) -> None:
    write = "open('/dev/termination-log', 'w').write('done: ' + 'x' * 5000)"
    core.create_namespaced_pod("default", pod("told", python(write)))
    custom = {"terminationMessagePath": "/var/run/kredun/outcome", "command": python(
        "import os, sys\n"
        f"marker = {str(tmp_path / 'ran')!r}\n"
        "assert os.path.getsize('/var/run/kredun/outcome') == 0  # fresh on every start\n"
        "if not os.path.exists(marker):\n"
        "    open(marker, 'w').close()\n"
        "    open('/var/run/kredun/outcome', 'w').write('first run')\n"
        "    sys.exit(1)\n"
    )}  # fmt: skip
    core.create_namespaced_pod(
        "default", pod("custom", [], restart_policy="OnFailure", container=custom)
    )
    core.create_namespaced_pod("default", pod("silent", python("print('no message')")))

    told = wait_for_phase(core, "told", "Succeeded").status.container_statuses[0]
    message = told.state.terminated.message
    assert message.startswith("done: x") and len(message.encode()) == 4096
    custom_status = wait_for_phase(core, "custom", "Succeeded").status.container_statuses[0]
    assert custom_status.last_state.terminated.message == "first run"
    assert custom_status.state.terminated.message is None  # the second start wrote nothing
    silent = wait_for_phase(core, "silent", "Succeeded").status.container_statuses[0]
    assert silent.state.terminated.message is None
    # The file was the Pod's own: nothing was written on the host's /dev.
    assert not os.path.exists("/dev/termination-log")


def test_without_root_a_variable_naming_the_message_path_names_the_pods_file(
    kubelet: LocalKubelet, core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.kube import kubelet as module

    monkeypatch.setattr(module, "_CAN_MOUNT", False)
    env = [{"name": "OUTCOME", "value": "/dev/termination-log"}]
    write = "import os; open(os.environ['OUTCOME'], 'w').write('reported')"
    core.create_namespaced_pod(
        "default", pod("unprivileged", python(write), container={"env": env})
    )
    done = wait_for_phase(core, "unprivileged", "Succeeded").status.container_statuses[0]
    assert done.state.terminated.message == "reported"
    assert not os.path.exists("/dev/termination-log")
