"""The local kubelet's mount helper: a Pod's volume covering the host's code (an emptyDir on
/tmp over a checkout under /tmp) leaves the kept paths visible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MOUNTNS = Path(__file__).parents[1] / "support" / "kube" / "mountns.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


def _run(tmp_path: Path, keep: list[Path]) -> subprocess.CompletedProcess:
    covered = tmp_path / "outer"
    code = covered / "code"
    code.mkdir(parents=True)
    (code / "marker").write_text("visible")
    (covered / "other").write_text("hidden by the volume")
    volume = tmp_path / "volume"
    volume.mkdir()
    spec = tmp_path / "mounts.json"
    spec.write_text(json.dumps([{"source": str(volume), "target": str(covered)}]))
    keep_args = [arg for path in keep for arg in ("--keep", str(path))]
    script = (
        f"import os; print(open({str(code / 'marker')!r}).read()); "
        f"print(os.path.exists({str(covered / 'other')!r}))"
    )
    return subprocess.run(
        [sys.executable, str(MOUNTNS), str(spec), *keep_args, "--", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_a_kept_path_under_a_volume_stays_visible(tmp_path):
    done = _run(tmp_path, [tmp_path / "outer" / "code"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["visible", "False"]  # the rest of the directory is covered
    assert not (tmp_path / "outer" / "code" / "marker").is_symlink()


def test_without_keep_the_volume_hides_the_code(tmp_path):
    done = _run(tmp_path, [])
    assert done.returncode != 0 and "No such file" in done.stderr
