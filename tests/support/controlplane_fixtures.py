"""Pytest fixtures for the real control plane of ``tests/support/controlplane.py``.

Load them with ``pytest_plugins = ["tests.support.controlplane_fixtures"]`` (one plugin, so one
control plane per pytest process, whichever modules use it). ``control_plane`` is
session-scoped (starting one takes ~5-20 s): tests share it, so each works in its own
``namespace`` and removes the cluster-scoped objects (Nodes) it makes. Without the binaries it
skips naming the build command, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator

import pytest

from tests.support.controlplane import ControlPlane, binaries_or_skip


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    binaries = binaries_or_skip()
    started = time.monotonic()
    with ControlPlane(binaries, tmp_path_factory.mktemp("control-plane")) as plane:
        print(f"control plane up in {time.monotonic() - started:.1f}s at {plane.url}")
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace of the shared control plane, deleted after the test."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{stem}-{secrets.token_hex(3)}"
    yield control_plane.create_namespace(name)
    control_plane.delete_namespace(name)
