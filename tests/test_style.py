"""The code style the project holds itself to: ruff clean, formatted, mypy clean, and the
import contracts kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
    )


def test_ruff_check_is_clean():
    done = ruff("check", ".", "--output-format", "concise")
    assert done.returncode == 0, done.stdout


def test_ruff_format_is_applied():
    done = ruff("format", "--check", ".")
    assert done.returncode == 0, done.stdout


def test_mypy_is_clean():
    # Its cache lives in the virtual environment running the tests: a warm run takes seconds.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(Path(sys.prefix) / ".mypy_cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts_hold():
    """The layers, the SDK apart from the operator, the operator apart from unpickling:
    the contracts in pyproject.toml ([tool.importlinter])."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
