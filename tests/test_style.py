"""The code style the project holds itself to: ruff clean, formatted, mypy clean, and the
import contracts kept."""

from __future__ import annotations

import ast
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


# What loads pickles: calling or naming any of these unpickles (see kredun.trust).
LOADERS = {"load", "loads", "Unpickler", "_load", "_loads", "_Unpickler"}


def loader_references(source: str) -> list[str]:
    """Names of pickle loaders a module's source refers to: attributes, names, imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in LOADERS:
            found.append(node.attr)
        elif isinstance(node, ast.Name) and node.id in LOADERS:
            found.append(node.id)
        elif isinstance(node, ast.ImportFrom):
            found += [alias.name for alias in node.names if alias.name in LOADERS]
    return found


def test_the_dumping_module_never_loads():
    """The import contract lets the operator reach kredun.serialize (to hash literals by
    pickling them), and so pickle and cloudpickle through it: that holds only while the
    module dumps and never loads."""
    assert loader_references("import pickle\npickle.loads(b'')") == ["loads"]
    assert loader_references("from cloudpickle import load as x") == ["load"]
    source = (REPO / "sdk" / "kredun" / "serialize.py").read_text()
    assert loader_references(source) == []
