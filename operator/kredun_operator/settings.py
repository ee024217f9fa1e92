"""The operator's settings: `--config kredun.toml` (rendered by the Helm chart) plus the
environment ($KREDUN_DATABASE_URI, $KREDUN_VALUE_STORE).

The tables and keys below are all there is: any other key is an error naming it and the
keys its table knows (a typo must not silently fall back to a default)::

    [database]        uri                      # $KREDUN_DATABASE_URI overrides
    [value_store]     uri                      # $KREDUN_VALUE_STORE overrides
    [value_store.s3]  endpoint, region         # passed to job Pods as AWS_* variables
    [value_store.pvc] claim_name, mount_path   # job Pods mount their scope's subPath only
    [aws]             credentials_secret, access_key_id_key, secret_access_key_key
    [jobs]            image, service_account, image_pull_policy, image_pull_secrets,
                      tolerations,
                      value_store_secret,      # per-namespace Secret: job Pods' S3 keys
                      unschedulable_after,     # seconds, then an Unschedulable Pod fails
                      max_retries,             # caps every task's `retries` (default 5)
                      max_running_per_namespace,  # job Pods at once per namespace (0: any)
                      service_accounts, allowed_images   # Pod policy: allowlists
    [jobs.resources]  cpus, memory, gpus       # read as task options are: kredun.resources
    [jobs.node_selector], [jobs.env]           # string tables
    [operator]        status_interval, store_retry_max, store_outage_deadline   # seconds
                      max_running_executions, database_pool_size   # 0: no limit
    [limits]          NAME = count             # named resources jobs hold (@task(limits=...)),
                                               # counted per Execution as in kredun.toml
    [tenancy.shared_cache]  group = ["namespace", ...]   # namespaces sharing one cache
    [executors.NAME]  type = "batch", ...      # more executors for plans that name them
    [executors.NAME]  type = "k8s", fallback = "batch", fallback_after = 120,
                      max_cpus, max_memory, max_gpus   # Pods, with a fallback executor
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kredun.config import Config, apply_environment, check_executor_config, parse_limits
from kredun.errors import ConfigError, ResourceError
from kredun.resources import Resources
from kredun.tenancy import Tenancy, parse_tenancy

from .errors import SettingsError

IN_PROCESS_DATABASES = ("memory://", "sqlite://", "sqlite:///:memory:")
DEFAULT_MOUNT = "/var/lib/kredun/values"
VALUES_VOLUME = "kredun-values"
IN_PROCESS_EXECUTORS = ("local", "process")
# Job Pods hold no database credentials: the operator alone writes provenance.
_REMOVED_JOB_KEYS = ("database_secret", "database_secret_key")
# A Kubernetes Toleration's fields (the API server would drop others without a word).
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")


@dataclass(frozen=True)
class JobDefaults:
    """What job Pods get when neither the task's options nor the Execution's spec say."""

    image: str | None = None
    service_account: str | None = None
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    # Every job container's environment (EnvVar objects) and volumes.
    env: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    # The value store's root: a job gets only its cache scope's part of it (kredun.tenancy),
    # a subPath of the claim for a PVC store mounted at `value_store_mount`.
    value_store_uri: str = ""
    value_store_mount: str | None = None
    # Seconds a job's Pod may stay Unschedulable, without a fallback, before the job fails.
    unschedulable_after: float = 600.0
    # The most retries of one job, whatever its task's `retries` option asks.
    max_retries: int = 5
    # The most job Pods of one namespace running (or being created) at once; 0: no limit.
    max_running_per_namespace: int = 0
    # Pod policy. ServiceAccounts job Pods may run as besides `service_account` (an
    # Execution or task naming any other fails); images must start with one of
    # `allowed_images` (e.g. "registry.example.com/team/") unless that is empty.
    service_accounts: tuple[str, ...] = ()
    allowed_images: tuple[str, ...] = ()

    def allowed_service_accounts(self) -> frozenset[str]:
        return frozenset((*self.service_accounts, *filter(None, [self.service_account])))


@dataclass(frozen=True)
class OperatorSettings:
    database_uri: str
    value_store_uri: str
    jobs: JobDefaults = field(default_factory=JobDefaults)
    # Executors besides Pods (e.g. AWS Batch), by name, as in kredun.toml.
    executors: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_interval: float = 1.0  # seconds between two status patches of one Execution
    store_retry_max: float = 30.0  # longest wait between retries while a store is down
    # An Execution whose stores stay unreachable this long (seconds) fails.
    store_outage_deadline: float = 600.0
    # Executions running at once; more wait Pending, queued (0: no limit).
    max_running_executions: int = 0
    # Connections of the operator's one database pool, shared by every Execution.
    database_pool_size: int = 10
    # Each namespace is a cache scope of its own unless it shares one with a group.
    tenancy: Tenancy = field(default_factory=Tenancy)
    # How many jobs of one Execution may hold each named resource at once ([limits]).
    limits: dict[str, int] = field(default_factory=dict)


def load_settings(path: str | Path | None) -> OperatorSettings:
    """Settings from the TOML file (None: none) and the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as error:
            raise SettingsError(f"cannot read {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{path}: invalid TOML: {error}") from None
    return settings_from_dict(data, str(path or "settings"))


# Every table's keys; None: a table whose keys are names the user chooses, checked by the
# code that reads it ([jobs.env], [limits], an executor's options, [tenancy] ...).
_KEYS: dict[str, tuple[str, ...] | None] = {
    "": ("database", "value_store", "aws", "jobs", "operator", "limits", "tenancy", "executors"),
    "database": ("uri",),
    "value_store": ("uri", "s3", "pvc"),
    "value_store.s3": ("endpoint", "region"),
    "value_store.pvc": ("claim_name", "mount_path"),
    "aws": ("credentials_secret", "access_key_id_key", "secret_access_key_key"),
    "jobs": (
        "image",
        "service_account",
        "image_pull_policy",
        "image_pull_secrets",
        "tolerations",
        "value_store_secret",
        "unschedulable_after",
        "max_retries",
        "max_running_per_namespace",
        "service_accounts",
        "allowed_images",
        "resources",
        "node_selector",
        "env",
        *_REMOVED_JOB_KEYS,
    ),
    "jobs.resources": ("cpus", "vcpus", "memory", "gpus"),
    "operator": (
        "status_interval",
        "store_retry_max",
        "store_outage_deadline",
        "max_running_executions",
        "database_pool_size",
    ),
}


def _check_keys(data: dict[str, Any], origin: str, table: str = "") -> None:
    """Refuse a key no table knows, naming it and the keys its table does know."""
    known = _KEYS.get(table)
    if known is None:
        return
    unknown = sorted(key for key in data if key not in known)
    if unknown:
        where = f"[{table}]" if table else "the top level"
        shown = [key for key in known if key not in _REMOVED_JOB_KEYS]
        raise SettingsError(
            f"{origin}: unknown key(s) {', '.join(unknown)} in {where} (known: {', '.join(shown)})"
        )
    for key, value in data.items():
        if isinstance(value, dict):
            _check_keys(value, origin, f"{table}.{key}" if table else key)


def settings_from_dict(data: dict[str, Any], origin: str = "settings") -> OperatorSettings:
    reader = _Reader(origin)
    _check_keys(data, origin)
    stores = apply_environment(
        Config(
            database_uri=reader.string(data, "database", "uri") or "memory://",
            value_store_uri=reader.string(data, "value_store", "uri") or "memory://",
        )
    )
    if stores.database_uri in IN_PROCESS_DATABASES:
        raise SettingsError(
            "the operator needs a database that outlives it: set $KREDUN_DATABASE_URI "
            "(or [database] uri) to PostgreSQL, or to a SQLite file on a persistent volume"
        )
    if urlparse(stores.value_store_uri).scheme == "memory":
        raise SettingsError(
            "the operator needs a value store its job Pods share: set $KREDUN_VALUE_STORE "
            "(or [value_store] uri) to s3://bucket/prefix or a file:// path on a shared volume"
        )
    operator = reader.table(data, "operator")
    try:
        tenancy = parse_tenancy(data.get("tenancy"), reader.origin)
    except ConfigError as error:
        raise SettingsError(str(error)) from None
    if tenancy.cache_scope:
        raise SettingsError(
            f"{reader.origin}: tenancy.cache_scope is for clients; the operator gives each "
            "namespace its own scope (share one between namespaces with [tenancy.shared_cache])"
        )
    return OperatorSettings(
        database_uri=stores.require_database_uri(),
        value_store_uri=stores.require_value_store_uri(),
        jobs=_job_defaults(reader, data, stores),
        executors=_executors(reader, data),
        status_interval=reader.number(operator, "status_interval", 1.0),
        store_retry_max=reader.number(operator, "store_retry_max", 30.0),
        store_outage_deadline=_outage_deadline(reader, data),
        max_running_executions=reader.count(operator, "max_running_executions", 0),
        database_pool_size=max(1, reader.count(operator, "database_pool_size", 10)),
        tenancy=tenancy,
        limits=_limits(reader, data),
    )


def _limits(reader: _Reader, data: dict[str, Any]) -> dict[str, int]:
    try:
        return parse_limits(data.get("limits", {}), reader.origin)
    except ConfigError as error:
        raise SettingsError(str(error)) from None


def _job_defaults(reader: _Reader, data: dict[str, Any], stores: Config) -> JobDefaults:
    jobs = reader.table(data, "jobs")
    removed = [key for key in _REMOVED_JOB_KEYS if key in jobs]
    if removed:
        raise SettingsError(
            f"{reader.origin}: [jobs] {', '.join(removed)} was removed: job Pods get no "
            "database URI any more (they report results through the value store)"
        )
    resources = reader.table(jobs, "resources")
    env = [*_store_env(reader, data), *_aws_env(reader, data)]
    env += [{"name": k, "value": v} for k, v in reader.strings(jobs, "env").items()]
    volumes, mount = [], None
    claim = reader.string(data, "value_store", "pvc", "claim_name")
    if claim:
        mount = reader.string(data, "value_store", "pvc", "mount_path") or DEFAULT_MOUNT
        volumes.append({"name": VALUES_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
    try:
        job_resources = Resources.parse(resources, "[jobs.resources] ")
    except ResourceError as error:
        raise SettingsError(f"{reader.origin}: {error}") from None
    tolerations = jobs.get("tolerations", [])
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
        raise SettingsError(f"{reader.origin}: [jobs] tolerations must be a list of tables")
    for toleration in tolerations:
        unknown = sorted(set(toleration) - set(_TOLERATION_KEYS))
        if unknown:
            raise SettingsError(
                f"{reader.origin}: [jobs] tolerations: unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(_TOLERATION_KEYS)})"
            )
    pull_secrets = reader.names(jobs, "image_pull_secrets")
    return JobDefaults(
        image=reader.string(data, "jobs", "image") or None,
        service_account=reader.string(data, "jobs", "service_account") or None,
        image_pull_policy=reader.string(data, "jobs", "image_pull_policy") or None,
        image_pull_secrets=pull_secrets,
        resources=job_resources,
        node_selector=reader.strings(jobs, "node_selector"),
        tolerations=tuple(tolerations),
        env=tuple(env),
        volumes=tuple(volumes),
        # A claim is where job Pods mount it, wherever the operator has it.
        value_store_uri=f"file://{mount}" if mount else stores.require_value_store_uri(),
        value_store_mount=mount,
        unschedulable_after=reader.number(jobs, "unschedulable_after", 600.0),
        max_retries=reader.count(jobs, "max_retries", 5),
        max_running_per_namespace=reader.count(jobs, "max_running_per_namespace", 0),
        service_accounts=reader.names(jobs, "service_accounts"),
        allowed_images=reader.names(jobs, "allowed_images"),
    )


def _executors(reader: _Reader, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    executors = reader.table(data, "executors")
    for name, options in executors.items():
        kind = options.get("type") if isinstance(options, dict) else None
        if not isinstance(kind, str):
            raise SettingsError(f"{reader.origin}: [executors.{name}] needs a 'type'")
        if kind in IN_PROCESS_EXECUTORS:
            raise SettingsError(
                f"{reader.origin}: [executors.{name}] type {kind!r} would run workflow code "
                "inside the operator; jobs run in Pods (or AWS Batch)"
            )
        try:
            check_executor_config(name, options, reader.origin)
        except ConfigError as error:
            raise SettingsError(str(error)) from None
    return executors


def _outage_deadline(reader: _Reader, data: dict[str, Any]) -> float:
    return reader.number(reader.table(data, "operator"), "store_outage_deadline", 600.0)


def _store_env(reader: _Reader, data: dict[str, Any]) -> list[dict[str, Any]]:
    """How job Pods reach the value store (its scope's URI is added per Execution)."""
    env: list[dict[str, Any]] = [
        # Jobs wait out a store outage as long as their Execution does.
        {"name": "KREDUN_STORE_RETRY_SECONDS", "value": f"{_outage_deadline(reader, data):g}"},
    ]
    endpoint = reader.string(data, "value_store", "s3", "endpoint")
    if endpoint:
        env.append({"name": "AWS_ENDPOINT_URL_S3", "value": endpoint})
    region = reader.string(data, "value_store", "s3", "region")
    if region:
        env += [
            {"name": "AWS_REGION", "value": region},
            {"name": "AWS_DEFAULT_REGION", "value": region},
        ]
    return env


def _aws_env(reader: _Reader, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Job Pods' AWS keys: from `[jobs] value_store_secret`, a Secret of each job's own
    namespace whose keys reach only that namespace's prefix, else from the operator's
    `[aws] credentials_secret` (which must then exist in every job namespace)."""
    secret = reader.string(data, "jobs", "value_store_secret") or reader.string(
        data, "aws", "credentials_secret"
    )
    if not secret:
        return []
    keys = {
        "AWS_ACCESS_KEY_ID": reader.string(data, "aws", "access_key_id_key"),
        "AWS_SECRET_ACCESS_KEY": reader.string(data, "aws", "secret_access_key_key"),
    }
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key or name}}}
        for name, key in keys.items()
    ]


class _Reader:
    """Typed access to the parsed TOML, with errors naming the file and the key."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise SettingsError(f"{self.origin}: [{key}] must be a table")
        return value

    def string(self, data: dict[str, Any], *path: str) -> str:
        for key in path[:-1]:
            data = self.table(data, key)
        value = data.get(path[-1], "")
        if not isinstance(value, str):
            raise SettingsError(f"{self.origin}: {'.'.join(path)} must be a string")
        return value

    def strings(self, data: dict[str, Any], key: str) -> dict[str, str]:
        table = self.table(data, key)
        if not all(isinstance(value, str) for value in table.values()):
            raise SettingsError(f"{self.origin}: every value of [{key}] must be a string")
        return dict(table)

    def names(self, jobs: dict[str, Any], key: str) -> tuple[str, ...]:
        value = jobs.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise SettingsError(f"{self.origin}: [jobs] {key} must list names")
        return tuple(value)

    def count(self, data: dict[str, Any], key: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SettingsError(f"{self.origin}: {key} must be a whole number >= 0")
        return int(value)

    def number(self, data: dict[str, Any], key: str, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SettingsError(f"{self.origin}: {key} must be a positive number")
        return float(value)
