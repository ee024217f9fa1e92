"""Pytest fixtures for the emulated Kubernetes API server and the local kubelet.

Load them with ``pytest_plugins = ["tests.support.kube.fixtures"]`` in a test module or in the
top-level conftest.py; helpers for tests (``wait_for``, ``Kubectl``, ``subprocess_env``) are in
``tests.support.kube.testing``.

Every fixture is function-scoped: each test gets its own server on an ephemeral port, its own
temporary directories and its own kubelet, all stopped at teardown (the kubelet before the
server, so Pod processes are killed while the API still answers).

The ``kubernetes`` client is imported inside the fixtures, never at import time of this
module: it reads KUBECONFIG when first imported, and tests may set that variable later.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.kube.apiserver import KubeApiServer
from tests.support.kube.testing import Kubectl

if TYPE_CHECKING:
    import kubernetes.client

    from tests.support.kube.kubelet import LocalKubelet


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApiServer]:
    """A fresh emulated API server; its pod logs dir and request log live in tmp_path."""
    logs_dir = tmp_path / "pod-logs"
    logs_dir.mkdir()
    with KubeApiServer(logs_dir=logs_dir, request_log_path=tmp_path / "api-requests.jsonl") as api:
        yield api


@pytest.fixture
def kubeconfig(kube_api: KubeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig for ``kube_api``: pass it explicitly, or as KUBECONFIG to subprocesses."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    """A ``kubernetes`` ApiClient for ``kube_api`` that leaves the global client config alone."""
    import kubernetes.config

    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Real kubectl bound to ``kube_api``: ``kubectl("get", "pods", "-o", "json")``."""
    return Kubectl(kubeconfig, tmp_path / "kubectl-cache")


@pytest.fixture
def kubelet(kube_api: KubeApiServer, kubeconfig: Path, tmp_path: Path) -> Iterator[LocalKubelet]:
    """A local kubelet running ``kube_api``'s Pods, logs wired to the server's logs dir."""
    from tests.support.kube.kubelet import LocalKubelet

    work_dir = tmp_path / "kubelet"
    with LocalKubelet(kubeconfig, logs_dir=kube_api.logs_dir, work_dir=work_dir) as local_kubelet:
        yield local_kubelet
