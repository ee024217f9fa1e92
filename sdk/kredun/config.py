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

from .errors import ConfigError

CONFIG_DIR = ".kredun"
CONFIG_FILE = "kredun.toml"
DEFAULT_EXECUTORS: dict[str, dict[str, Any]] = {
    "default": {"type": "local"},
    "local": {"type": "local"},
    "process": {"type": "process"},
}
# Each section's keys; `executors` holds one table per executor, checked by its type.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "database": ("uri",),
    "value_store": ("uri",),
    "jobs": ("image",),  # the image `kredun submit` names (the operator has its own file)
}
# Tables whose keys are the user's own: executors by name, and context values.
KNOWN_SECTIONS = (*SECTION_KEYS, "executors", "context", "limits")


@dataclass
class Config:
    # None: not configured; the Scheduler then keeps everything in memory, the CLI on disk.
    database_uri: str | None = None
    value_store_uri: str | None = None
    executors: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)

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
    from .executors import EXECUTOR_TYPES, executor_config_keys

    where = f"executors.{name}"
    if not isinstance(options, dict) or "type" not in options:
        raise ConfigError(f"{origin}: [{where}] needs a 'type' ({', '.join(EXECUTOR_TYPES)})")
    kind = options["type"]
    if kind not in EXECUTOR_TYPES:
        raise ConfigError(f"{origin}: {where}.type = {kind!r} is not an executor type "
                          f"(valid: {', '.join(EXECUTOR_TYPES)})")  # fmt: skip
    keys = executor_config_keys(kind)
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
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise ConfigError(f"{origin}: [context] must be a table of context values")
    limits = data.get("limits", {})
    if not isinstance(limits, dict):
        raise ConfigError(f"{origin}: [limits] must be a table of name = count")
    for name, count in limits.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{origin}: limits.{name} = {count!r} must be a whole number >= 0")
    return Config(
        database_uri=data.get("database", {}).get("uri"),
        value_store_uri=data.get("value_store", {}).get("uri"),
        executors=dict(executors),
        sections={key: value for key, value in data.items() if key == "jobs"},
        context=dict(context),
        limits=dict(limits),
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
    return config
