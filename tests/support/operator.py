"""A kredun operator under test: the emulated API server (or, given one, the real control
plane of tests/support/controlplane.py), a local kubelet, and a real `kredun operator`
subprocess, sharing a SQLite database and a directory value store.

The operator runs without the repository on its PYTHONPATH (it must never import workflow
code); the kubelet's Pods get it, so `kredun worker` can import `examples` and the test
workflows, as a job image would.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.kube.apiserver import KubeApiServer
from tests.support.kube.testing import Kubectl, wait_for

if TYPE_CHECKING:
    from tests.support.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = REPO_ROOT / "crds" / "execution.yaml"
NAMESPACE = "jobs"
IMAGE = "kredun:test"  # the local kubelet runs commands, not images
TERMINAL = ("Succeeded", "Failed", "Cancelled")
# The operator's own credentials: the emulator logs its requests under this name.
OPERATOR_USER = "kredun-operator"
# A directory where each cluster leaves the API requests its operator made
# (tests/cluster/test_rbac.py).
REQUESTS_DIR_VARIABLE = "KREDUN_TEST_OPERATOR_REQUESTS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorCluster:
    """Everything an operator test needs; see the module docstring."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        kubelet_parallel: int = 4,
        database: str | None = None,
        value_store: str | None = None,
        kubelet_options: dict[str, Any] | None = None,
        operator_config: str | None = None,
        control_plane: ControlPlane | None = None,
        namespace: str = NAMESPACE,
    ) -> None:
        """`kubelet_options` go to `LocalKubelet` (e.g. `max_gpus=0`, `max_cpu=1`: the node's
        capacity); `operator_config` is the text of a kredun.toml the operator gets with
        `--config` (its [executors.*], [jobs] ...). With `control_plane`, everything runs
        against that real API server (in `namespace`, which must be new there) instead of a
        fresh emulator, the kubelet leaving Pod placement to the real scheduler."""
        self.tmp_path = tmp_path
        self.control_plane = control_plane
        self.kubelet_options = kubelet_options or {}
        self.operator_config = operator_config
        self.database = database or f"sqlite:///{tmp_path / 'kredun.db'}"
        self.value_store = value_store or f"file://{tmp_path / 'values'}"
        self.kubelet_parallel = kubelet_parallel
        self.namespace = namespace
        self.operator_log = tmp_path / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.health_port = free_port()
        self.metrics_port = free_port()
        self._stack = contextlib.ExitStack()
        self.operator_modes: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> OperatorCluster:
        from tests.support.kube.kubelet import LocalKubelet

        logs = self.tmp_path / "pod-logs"
        logs.mkdir()
        kubelet_placement: dict[str, Any] = {}
        if self.control_plane is None:
            self.api = self._stack.enter_context(
                KubeApiServer(logs_dir=logs, request_log_path=self.tmp_path / "api-requests.jsonl")
            )
            self.kubeconfig = self.api.write_kubeconfig(self.tmp_path / "kubeconfig")
            self.operator_kubeconfig = self.api.write_kubeconfig(
                self.tmp_path / "operator-kubeconfig", user=OPERATOR_USER
            )
            self._stack.callback(self._save_operator_requests)
            self.kubectl = Kubectl(self.kubeconfig, self.tmp_path / "kubectl-cache")
            # The emulator serves no OpenAPI for kubectl to validate against.
            self.kubectl("apply", "--validate=false", "-f", str(CRD_PATH))
            self.add_namespace(self.namespace)
        else:
            from tests.support.controlplane import OPERATOR

            plane = self.control_plane
            # The chart's RBAC is not under test here (tests/cluster/test_helm_control_plane.py
            # tests it): the operator may do anything, under a name of its own in the audit log.
            self.kubeconfig = plane.write_kubeconfig(self.tmp_path / "kubeconfig")
            self.operator_kubeconfig = plane.write_kubeconfig(
                self.tmp_path / "operator-kubeconfig", OPERATOR
            )
            # The control plane is shared, one test after another: this cluster's requests are
            # the operator's from now on.
            started = datetime.datetime.now(datetime.UTC)
            self._stack.callback(self._save_operator_requests, started)
            self.kubectl = plane.kubectl(self.tmp_path)
            self.kubectl("apply", "-f", str(CRD_PATH))
            self._stack.callback(plane.delete_namespace, self.namespace)
            plane.create_namespace(self.namespace)
            node = f"kubelet-{self.namespace}"
            self._stack.callback(plane.delete_node, node)
            kubelet_placement = {"node_name": node, "schedule_pods": False}
        self.kubelet = LocalKubelet(
            self.kubeconfig,
            logs_dir=logs,
            work_dir=self.tmp_path / "kubelet",
            max_parallel=self.kubelet_parallel,
            max_grace_period=2.0,
            env=self.job_env(),
            **kubelet_placement,
            **self.kubelet_options,
        )
        self._stack.enter_context(self.kubelet)
        self._stack.callback(self.stop_operator)
        self.start_operator()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _save_operator_requests(self, since: datetime.datetime | None = None) -> None:
        """With $KREDUN_TEST_OPERATOR_REQUESTS set, keep what the operator asked the API for
        and in which modes it ran, so a test can hold the chart's RBAC rules against it.
        The emulator logs requests; the real control plane's audit log has them since
        ``since``."""
        directory = os.environ.get(REQUESTS_DIR_VARIABLE)
        if not directory:
            return
        if self.control_plane is None:
            requests = [r._asdict() for r in self.api.request_log if r.user == OPERATOR_USER]
        else:
            requests = self.control_plane.audited_requests(OPERATOR_USER, since)
        record = {"modes": sorted(self.operator_modes), "requests": requests}
        path = Path(directory) / f"{os.getpid()}-{id(self)}-{len(requests)}.json"
        path.write_text(json.dumps(record))

    def job_env(self) -> dict[str, str]:
        """What Pods see besides their own env: the repository (as a job image has the
        workflow code) and the venv's `kredun` on PATH. Not the stores: a job Pod gets its
        value store from its spec, and no database at all."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PYTHONPATH": str(REPO_ROOT),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def operator_env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "KREDUN_CONFIG")
        }
        env.update(
            KUBECONFIG=str(self.operator_kubeconfig),
            KREDUN_DATABASE_URI=self.database,
            KREDUN_VALUE_STORE=self.value_store,
            **extra,
        )
        return env

    def spawn_operator(
        self, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Start a `kredun operator` process: (process, health port). Unless `args` say
        otherwise it runs standalone, serving the test namespace."""
        health_port = self.health_port if log is None else free_port()
        self.operator_modes.add("peering" if "--peering" in args else "standalone")
        self.operator_modes.add("cluster-wide" if "--all-namespaces" in args else "namespaced")
        mode = [] if {"--standalone", "--peering"} & set(args) else ["--standalone"]
        scope = (
            []
            if {"--all-namespaces", "--namespace"} & set(args)
            else ["--namespace", self.namespace]
        )
        if self.operator_config is not None and "--config" not in args:
            config = self.tmp_path / "operator.toml"
            config.write_text(self.operator_config)
            args = (*args, "--config", str(config))
        argv = [
            str(Path(sys.executable).parent / "kredun"), "operator", *mode, *scope,
            "--health-port", str(health_port), *args,
        ]  # fmt: skip
        if log is None:
            argv += ["--metrics-port", str(self.metrics_port)]
        with (log or self.operator_log).open("ab") as output:
            process = subprocess.Popen(
                argv, env=env or self.operator_env(), stdout=output, stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )  # fmt: skip
        return process, health_port

    def start_operator(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Start the operator and wait until its liveness endpoint answers."""
        assert self.process is None, "the operator is already running"
        self.process, port = self.spawn_operator(*args, env=env)
        wait_for(lambda: self.healthy(self.process, port), timeout=30, interval=0.1,
                 message="the operator's /healthz")  # fmt: skip

    def healthy(self, process: subprocess.Popen[bytes], port: int) -> bool:
        if process.poll() is not None:
            pytest.fail(f"the operator exited ({process.returncode}):\n{self.log_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def kill_operator(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a node dies."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop_operator(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def log_text(self) -> str:
        return self.operator_log.read_text(errors="replace")

    # -- the API ------------------------------------------------------------------------------

    def api_request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if self.control_plane is not None:
            content_type = "application/merge-patch+json" if method == "PATCH" else None
            return self.control_plane.request(
                method, path, body, content_type=content_type or "application/json"
            )
        request = urllib.request.Request(
            self.api.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/merge-patch+json"}
            if method == "PATCH"
            else {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def add_namespace(self, namespace: str) -> None:
        self.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})

    def executions_path(self, name: str = "", namespace: str | None = None) -> str:
        path = f"/apis/kredun.dev/v1/namespaces/{namespace or self.namespace}/executions"
        return f"{path}/{name}" if name else path

    def create(
        self, name: str, spec: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "kredun.dev/v1",
            "kind": "Execution",
            "metadata": {"name": name, "namespace": namespace or self.namespace},
            "spec": spec,
        }
        return self.api_request("POST", self.executions_path(namespace=namespace), body)

    def objects(
        self, plural: str, group: str = "", namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """A namespace's objects of a resource (by plural), for assertions."""
        namespace = namespace or self.namespace
        if self.control_plane is None:
            return self.api.objects(plural, group=group, namespace=namespace)
        version = f"/apis/{group}/v1" if group else "/api/v1"
        path = f"{version}/namespaces/{namespace}/{plural}"
        return self.control_plane.request("GET", path)["items"]

    def execution(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = [
            obj
            for obj in self.objects("executions", group="kredun.dev", namespace=namespace)
            if obj["metadata"]["name"] == name
        ]
        return found[0] if found else None

    def status(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return (self.execution(name, namespace) or {}).get("status") or {}

    def wait_for_phase(
        self,
        name: str,
        phases: tuple[str, ...] = TERMINAL,
        timeout: float = 60,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """The status once the Execution reaches one of `phases`."""

        def reached() -> dict[str, Any] | None:
            status = self.status(name, namespace)
            return status if status.get("phase") in phases else None

        try:
            return wait_for(reached, timeout=timeout, interval=0.1, message=f"{name} in {phases}")
        except BaseException:
            print(self.log_text()[-6000:], file=sys.stderr)
            raise

    def pods(
        self, execution: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        pods = self.objects("pods", namespace=namespace)
        if execution is not None:
            pods = [
                p for p in pods if p["metadata"]["labels"].get("kredun.dev/execution") == execution
            ]
        return pods

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            event for event in self.objects("events") if event["involvedObject"]["name"] == name
        ]

    def event_reasons(self, name: str) -> list[str]:
        return [event["reason"] for event in self.events(name)]

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            return response.read().decode()

    # -- plans --------------------------------------------------------------------------------

    def scope(self, namespace: str | None = None) -> str:
        """The cache scope of a namespace's Executions (the operator is not configured to
        share caches unless a test says so)."""
        return f"ns/{namespace or self.namespace}"

    def scheduler(self, namespace: str | None = None) -> Any:
        """A client-side scheduler on the stores of a namespace's Executions."""
        from kredun.config import Config
        from kredun.scheduler import Scheduler

        return Scheduler(
            config=Config(self.database, self.value_store, cache_scope=self.scope(namespace))
        )

    def plan_spec(
        self, expr: Any, *, inline: bool = True, namespace: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        """An Execution spec for `expr`, its plan built as the SDK builds it, for an
        Execution in `namespace` (default: the test namespace)."""
        from kredun.submit import upload_plan
        from kredun.valuestore import open_value_store

        store = open_value_store(self.value_store, self.scope(namespace))
        plan_hash, data = upload_plan(expr, store)
        plan: dict[str, str] = {"hash": plan_hash}
        if inline:
            plan["inline"] = base64.b64encode(data).decode()
        return {"plan": plan, "image": IMAGE, **spec}


@pytest.fixture
def operator_cluster(tmp_path: Path) -> Iterator[OperatorCluster]:
    with OperatorCluster(tmp_path) as cluster:
        yield cluster
