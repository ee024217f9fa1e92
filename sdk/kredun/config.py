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
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .tenancy import Tenancy, check_scope, parse_tenancy

CONFIG_DIR = ".kredun"
CONFIG_FILE = "kredun.toml"
DEFAULT_EXECUTORS: dict[str, dict[str, Any]] = {
    "default": {"type": "local"},
    "local": {"type": "local"},
    "process": {"type": "process"},
}
KNOWN_SECTIONS = {"database", "value_store", "executors", "jobs", "operator", "tenancy"}


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

    def executor_options(self, name: str) -> dict[str, Any]:
        merged = {**DEFAULT_EXECUTORS, **self.executors}
        if name not in merged:
            known = ", ".join(sorted(merged))
            raise ConfigError(f"unknown executor {name!r} (configured: {known})")
        return merged[name]


def config_from_dict(data: dict[str, Any], origin: str = "config") -> Config:
    unknown = set(data) - KNOWN_SECTIONS
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {', '.join(sorted(unknown))}")
    executors = data.get("executors", {})
    if not isinstance(executors, dict):
        raise ConfigError(f"{origin}: [executors] must be a table of named executors")
    for name, options in executors.items():
        if not isinstance(options, dict) or "type" not in options:
            raise ConfigError(f"{origin}: executor {name!r} needs a 'type'")
    tenancy = parse_tenancy(data.get("tenancy"), origin)
    return Config(
        database_uri=data.get("database", {}).get("uri"),
        value_store_uri=data.get("value_store", {}).get("uri"),
        executors=dict(executors),
        sections={key: value for key, value in data.items() if key in ("jobs", "operator")},
        cache_scope=tenancy.cache_scope,
        tenancy=tenancy,
    )


def load_config_file(path: Path) -> Config:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    return config_from_dict(data, str(path))


def project_config(directory: Path | None = None) -> Config:
    """The CLI's configuration: `.kredun/kredun.toml` (or $KREDUN_CONFIG), defaults on disk
    under `.kredun/`, then environment overrides."""
    base = (directory or Path.cwd()) / CONFIG_DIR
    explicit = os.environ.get("KREDUN_CONFIG")
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
