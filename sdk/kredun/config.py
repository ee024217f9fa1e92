"""Configuration: a TOML file in `.kredun/`, a dict (for `Scheduler(config=...)` and
`subrun(config=...)`), and environment overrides, merged into one `Config`.

File format (`.kredun/kredun.toml`)::

    [database]
    uri = "sqlite:///.kredun/kredun.db"     # or postgresql+psycopg://user:pw@host/db

    [value_store]
    uri = "file://.kredun/values"           # or s3://bucket/prefix

    [executors.default]                     # tasks without an `executor` option run here
    type = "local"                          # threads in this process
    max_workers = 20

    [executors.process]
    type = "process"                        # separate processes; cloudpickle across
    max_workers = 4

    [tenancy]                               # cache scopes: see kredun.tenancy
    cache_scope = ""                        # $KREDUN_CACHE_SCOPE overrides

    [context]                               # the execution's context (kredun.get_context)
    align = { threads = 8 }

    [limits]                                # how many of each named resource jobs may hold
    db = 2                                  # a name not listed here has 1
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import executor_types
from .errors import ConfigError
from .tenancy import Tenancy, check_scope, parse_tenancy

CONFIG_DIR = ".kredun"
CONFIG_FILE = "kredun.toml"
DEFAULT_EXECUTORS: dict[str, dict[str, Any]] = {
    "default": {"type": "local"},
    "local": {"type": "local"},
    "process": {"type": "process"},
}
# Each section's keys; `executors` holds one table per executor, checked by its type, and
# `tenancy` is checked by kredun.tenancy.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "database": ("uri",),
    "value_store": ("uri",),
    "jobs": ("image",),  # the image `kredun submit` names (the operator has its own file)
}
# Tables whose keys are the user's own: executors by name, and context values; [tenancy]
# is checked by kredun.tenancy.
KNOWN_SECTIONS = (*SECTION_KEYS, "executors", "context", "limits", "tenancy")


@dataclass
class Config:
    # None: not configured; the Scheduler then keeps everything in memory, the CLI on disk.
    database_uri: str | None = None
    value_store_uri: str | None = None
    executors: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    # Which cached calls and values this configuration's runs see (kredun.tenancy).
    cache_scope: str = ""
    tenancy: Tenancy = field(default_factory=Tenancy)
    context: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    # The most retries of one job, whatever its `retries` option says (None: no cap).
    max_retries: int | None = None
    # Connections of the one pool every scheduler of the process shares (None: each opens
    # a pool of its own); the operator sets it.
    database_pool_size: int | None = None

    def require_database_uri(self) -> str:
        """The database URI, for code that cannot run without one."""
        if not self.database_uri:
            raise ConfigError("no database configured: set [database] uri or $KREDUN_DATABASE_URI")
        return self.database_uri

    def require_value_store_uri(self) -> str:
        """The value store URI, for code that cannot run without one."""
        if not self.value_store_uri:
            raise ConfigError(
                "no value store configured: set [value_store] uri or $KREDUN_VALUE_STORE"
            )
        return self.value_store_uri

    def to_dict(self) -> dict[str, Any]:
        """The stores and executors in the dict form `Scheduler(config=...)` takes."""
        return {
            "database": {"uri": self.database_uri},
            "value_store": {"uri": self.value_store_uri},
            "executors": dict(self.executors),
        }

    def executor_options(self, name: str) -> dict[str, Any]:
        merged = {**DEFAULT_EXECUTORS, **self.executors}
        if name not in merged:
            known = ", ".join(sorted(merged))
            raise ConfigError(f"unknown executor {name!r} (configured: {known})")
        return merged[name]


def _unknown(origin: str, where: str, names: set[str], valid: tuple[str, ...]) -> ConfigError:
    what = "section" if where == "" else "key"
    listed = ", ".join(sorted(names))
    return ConfigError(f"{origin}: unknown {what} {where}{listed} (valid: {', '.join(valid)})")


def check_executor_config(name: str, options: Any, origin: str) -> None:
    """An executor's table: a known `type` and only the keys that type reads."""
    where = f"executors.{name}"
    # Types registered elsewhere (the operator's k8s) are valid names in any configuration.
    known_types = sorted({*executor_types.EXECUTOR_TYPES, *executor_types.ELSEWHERE})
    if not isinstance(options, dict) or "type" not in options:
        raise ConfigError(f"{origin}: [{where}] needs a 'type' ({', '.join(known_types)})")
    kind = options["type"]
    if kind not in known_types:
        raise ConfigError(f"{origin}: {where}.type = {kind!r} is not an executor type "
                          f"(valid: {', '.join(known_types)})")  # fmt: skip
    keys = executor_types.executor_config_keys(kind)
    if keys is not None:
        unknown = set(options) - {"type", *keys}
        if unknown:
            raise _unknown(origin, f"{where}.", unknown, ("type", *keys))


def config_from_dict(data: dict[str, Any], origin: str = "config") -> Config:
    unknown = set(data) - set(KNOWN_SECTIONS)
    if unknown:
        raise _unknown(origin, "", unknown, KNOWN_SECTIONS)
    for section, keys in SECTION_KEYS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        if set(table) - set(keys):
            raise _unknown(origin, f"{section}.", set(table) - set(keys), keys)
    executors = data.get("executors", {})
    if not isinstance(executors, dict):
        raise ConfigError(f"{origin}: [executors] must be a table of named executors")
    for name, options in executors.items():
        check_executor_config(name, options, origin)
    tenancy = parse_tenancy(data.get("tenancy"), origin)
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise ConfigError(f"{origin}: [context] must be a table of context values")
    limits = parse_limits(data.get("limits", {}), origin)
    return Config(
        database_uri=data.get("database", {}).get("uri"),
        value_store_uri=data.get("value_store", {}).get("uri"),
        executors=dict(executors),
        sections={key: value for key, value in data.items() if key == "jobs"},
        cache_scope=tenancy.cache_scope,
        tenancy=tenancy,
        context=dict(context),
        limits=limits,
    )


def parse_limits(limits: Any, origin: str) -> dict[str, int]:
    """A `[limits]` table (resource name = how many jobs may hold it at once), checked."""
    if not isinstance(limits, dict):
        raise ConfigError(f"{origin}: [limits] must be a table of name = count")
    for name, count in limits.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{origin}: limits.{name} = {count!r} must be a whole number >= 0")
    return dict(limits)


def load_config_file(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    return config_from_dict(data, str(path))


def project_config(config_dir: str | Path | None = None) -> Config:
    """The CLI's configuration: `.kredun/kredun.toml` (or $KREDUN_CONFIG), defaults on disk
    under `.kredun/`, then environment overrides. `config_dir` names another directory to
    use in place of `.kredun/` (and wins over $KREDUN_CONFIG)."""
    base = Path(config_dir) if config_dir is not None else Path.cwd() / CONFIG_DIR
    explicit = os.environ.get("KREDUN_CONFIG") if config_dir is None else None
    path = Path(explicit) if explicit else base / CONFIG_FILE
    config = load_config_file(path) if explicit or path.exists() else Config()
    config.database_uri = config.database_uri or f"sqlite:///{base / 'kredun.db'}"
    config.value_store_uri = config.value_store_uri or f"file://{base / 'values'}"
    return apply_environment(config)


def apply_environment(config: Config) -> Config:
    config.database_uri = os.environ.get("KREDUN_DATABASE_URI") or config.database_uri
    config.value_store_uri = os.environ.get("KREDUN_VALUE_STORE") or config.value_store_uri
    scope = os.environ.get("KREDUN_CACHE_SCOPE")
    if scope is not None:
        config.cache_scope = check_scope(scope, "$KREDUN_CACHE_SCOPE")
    return config
