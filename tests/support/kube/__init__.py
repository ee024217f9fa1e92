"""Kubernetes stand-ins for tests: an emulated API server and a local kubelet.

``from tests.support.kube import KubeApiServer, LocalKubelet`` imports each lazily: the kubelet
pulls in the ``kubernetes`` client (which reads KUBECONFIG when imported), and importing the
server module eagerly would break ``python -m tests.support.kube.apiserver``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KubeApiServer": "tests.support.kube.apiserver",
    "RequestRecord": "tests.support.kube.apiserver",
    "LocalKubelet": "tests.support.kube.kubelet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
