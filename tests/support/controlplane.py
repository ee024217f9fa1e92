"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from Go modules by ``tools/controlplane/build.py``, all on loopback.

The API server serves TLS with a CA made at start, authorizes with RBAC, issues
ServiceAccount tokens, and knows its users from a token file: ``ADMIN`` (system:masters),
``USER`` (authenticated, nothing granted) and the identities the controller-manager and
scheduler run as, so their bootstrap RBAC roles apply as on a cluster. No kubelet comes with
it: register a Node (or run ``LocalKubelet(..., schedule_pods=False)``) for Pods to be bound.

The fixtures are in ``controlplane_fixtures.py``.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import importlib.util
import ipaddress
import json
import os
import secrets
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Self
from urllib.parse import quote

import pytest

from tests.support.kube.kubelet import KubeError
from tests.support.kube.testing import Kubectl, wait_for
from tests.support.operator import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "controlplane" / "build.py"
BUILD_COMMAND = "python3 tools/controlplane/build.py"
SERVICE_CIDR = "10.0.0.0/24"
# How long a component may take to become ready on 2 busy cores.
START_TIMEOUT = 120.0
# Controllers the tests rely on (the rest would only add load to 2 shared cores).
CONTROLLERS = (
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",  # fills in the view/edit/admin ClusterRoles
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    # Lifts the not-ready taint that admission puts on every new Node once it is Ready.
    "node-lifecycle-controller",
    # Binds claims (the chart's value store) to the PersistentVolumes tests create.
    "persistentvolume-binder-controller",
)
# Who asked for what, and the answer: tests derive the RBAC an identity used from it.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


ADMIN = User("kredun-test-admin", ("system:masters",))
USER = User("kredun-test-user", ("kredun-test-users",))
CONTROLLER_MANAGER = User("system:kube-controller-manager")
SCHEDULER = User("system:kube-scheduler")
# Operators the tests start themselves: all rights (the chart's RBAC is tested through the
# chart), a name of their own so the audit log tells their requests apart.
OPERATOR = User("kredun-operator", ("system:masters",))


def build_module() -> ModuleType:
    """tools/controlplane/build.py, which knows the pinned versions and the binary directory."""
    spec = importlib.util.spec_from_file_location("kredun_controlplane_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binaries_or_skip() -> Path:
    build = build_module()
    directory = build.binary_dir()
    if build.is_built(directory):
        return directory
    message = f"no control plane binaries in {directory}: build them with `{BUILD_COMMAND}`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _die_with_parent() -> None:
    """Runs in the child before exec: a crashed test run must not leave servers behind."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class _Component:
    """One control plane process, its output in ``<work_dir>/<name>.log``."""

    def __init__(self, name: str, argv: list[str], work_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = work_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def check_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _write_pki(directory: Path) -> None:
    """A CA, a serving certificate for every component, and the ServiceAccount signing key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    signing_only = ("digital_signature", "key_cert_sign", "crl_sign")
    ca_usage = x509.KeyUsage(**{flag: flag in signing_only for flag in _KEY_USAGE_FLAGS})
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kredun-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    addresses = ["127.0.0.1", str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    service_account_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server.crt": server_cert.public_bytes(serialization.Encoding.PEM),
        "server.key": pem_key(server_key),
        "sa.key": pem_key(service_account_key),
        "sa.pub": service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler; see the module doc."""

    def __init__(self, binaries: Path, work_dir: Path) -> None:
        self.binaries = binaries
        self.work_dir = work_dir
        self.pki = work_dir / "pki"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.audit_log = work_dir / "audit.jsonl"
        self.tokens = {
            user: secrets.token_hex(16)
            for user in (ADMIN, USER, CONTROLLER_MANAGER, SCHEDULER, OPERATOR)
        }
        self.components: list[_Component] = []
        self._ssl: ssl.SSLContext | None = None

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.pki.mkdir(parents=True)
        _write_pki(self.pki)
        self._ssl = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        (self.pki / "tokens.csv").write_text(
            "".join(
                f'{token},{user.name},{user.name},"{",".join(user.groups)}"\n'
                for user, token in self.tokens.items()
            )
        )
        (self.pki / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))
        etcd_url = self._start_etcd()
        self._start_apiserver(etcd_url)
        self._start_controller_manager()
        self._start_scheduler()
        # The ServiceAccount admission plugin rejects Pods until a namespace's `default`
        # ServiceAccount exists: wait until the controller-manager made the first one.
        wait_for(
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=START_TIMEOUT,
            interval=0.2,
            message="the default ServiceAccount",
        )

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()

    def _launch(self, name: str, *args: str) -> _Component:
        component = _Component(name, [str(self.binaries / name), *args], self.work_dir)
        component.start()
        self.components.append(component)
        return component

    def _wait_ready(self, component: _Component, url: str, *, token: str | None = None) -> None:
        def ready() -> bool:
            component.check_running()
            request = urllib.request.Request(url)
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=5, context=self._ssl) as answer:
                    return answer.status == 200
            except (OSError, urllib.error.HTTPError):
                return False

        wait_for(ready, timeout=START_TIMEOUT, interval=0.2, message=f"{component.name} {url}")

    def _start_etcd(self) -> str:
        client, peer = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
        etcd = self._launch(
            "etcd",
            "--name=test",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            # A test cluster's data is thrown away: don't pay for fsyncs on shared disks.
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        self._wait_ready(etcd, f"{client}/health")
        return client

    def _start_apiserver(self, etcd_url: str) -> None:
        apiserver = self._launch(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.work_dir / 'apiserver'}",
            f"--tls-cert-file={self.pki / 'server.crt'}",
            f"--tls-private-key-file={self.pki / 'server.key'}",
            f"--client-ca-file={self.pki / 'ca.crt'}",
            f"--token-auth-file={self.pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints reject.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--audit-policy-file={self.pki / 'audit-policy.json'}",
            f"--audit-log-path={self.audit_log}",
            # Written as requests finish, so a test reads what happened up to now.
            "--audit-log-mode=blocking",
        )
        self._wait_ready(apiserver, f"{self.url}/readyz", token=self.tokens[ADMIN])

    def _component_flags(self, name: str, user: User) -> list[str]:
        kubeconfig = str(self.write_kubeconfig(self.work_dir / f"{name}.kubeconfig", user))
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--tls-cert-file={self.pki / 'server.crt'}",
            f"--tls-private-key-file={self.pki / 'server.key'}",
            "--leader-elect=false",
        ]

    def _start_controller_manager(self) -> None:
        port = free_port()
        manager = self._launch(
            "kube-controller-manager",
            *self._component_flags("kube-controller-manager", CONTROLLER_MANAGER),
            f"--secure-port={port}",
            f"--controllers={','.join(CONTROLLERS)}",
            # Each controller acts as its own ServiceAccount, under its bootstrap RBAC role.
            "--use-service-account-credentials=true",
            "--node-monitor-period=1s",  # new Nodes lose their not-ready taint sooner
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
        )
        self._wait_ready(manager, f"https://127.0.0.1:{port}/healthz")

    def _start_scheduler(self) -> None:
        port = free_port()
        scheduler = self._launch(
            "kube-scheduler",
            *self._component_flags("kube-scheduler", SCHEDULER),
            f"--secure-port={port}",
        )
        self._wait_ready(scheduler, f"https://127.0.0.1:{port}/readyz")

    # ----------------------------------------------------------------------------- clients

    def write_kubeconfig(self, path: Path, user: User = ADMIN) -> Path:
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.url, "certificate-authority-data": ca}}
            ],
            "users": [{"name": user.name, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user.name}}],
            "current-context": "test",
        }
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML: any client reads it
        return path

    def kubectl(self, tmp_path: Path, user: User = ADMIN) -> Kubectl:
        """Real kubectl as ``user``, with a discovery cache private to ``tmp_path``."""
        kubeconfig = self.write_kubeconfig(tmp_path / f"{user.name}.kubeconfig", user)
        return Kubectl(kubeconfig, tmp_path / f"kubectl-cache-{user.name}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: User = ADMIN,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API request as ``user``; a non-2xx answer raises KubeError."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.tokens[user]}",
                "Content-Type": content_type,
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._ssl) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise KubeError(error.code, error.read()) from None

    def _exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def create_namespace(self, name: str) -> str:
        """A namespace ready for Pods (its `default` ServiceAccount exists)."""
        self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        wait_for(
            lambda: self._exists(f"/api/v1/namespaces/{quote(name)}/serviceaccounts/default"),
            timeout=30,
            interval=0.1,
            message=f"the default ServiceAccount of {name}",
        )
        return name

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(KubeError):
            self.request("DELETE", f"/api/v1/namespaces/{quote(name)}")

    def audit_events(
        self, username: str, since: datetime.datetime | None = None
    ) -> list[dict[str, Any]]:
        """The audit log's ResponseComplete events of one user (received at or after
        ``since``, an aware datetime), oldest first."""
        events = []
        with self.audit_log.open() as log:
            for line in log:
                event = json.loads(line)
                if event["stage"] != "ResponseComplete" or event["user"]["username"] != username:
                    continue
                received = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"])
                if since is None or received >= since:
                    events.append(event)
        return events

    def audited_requests(
        self, username: str, since: datetime.datetime | None = None
    ) -> list[dict[str, Any]]:
        """What ``username`` asked for, as the emulator's request log has it: group, resource,
        subresource and verb of each request on a resource (discovery left out)."""
        return [
            {
                "group": ref.get("apiGroup", ""),
                "resource": ref["resource"],
                "subresource": ref.get("subresource"),
                "verb": event["verb"],
            }
            for event in self.audit_events(username, since)
            if (ref := event.get("objectRef") or {}).get("resource")
        ]

    def delete_node(self, name: str) -> None:
        """Remove a Node a test registered (gone already is fine): tests share this cluster."""
        with contextlib.suppress(KubeError):
            self.request("DELETE", f"/api/v1/nodes/{quote(name)}")
