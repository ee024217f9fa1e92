"""Cache scopes: which cached calls and values a run may see.

A *cache scope* partitions the shared provenance database and value store. Calls and values
recorded in one scope are never served to another, so whoever may run code in one scope
cannot change what another scope's calls return or read its values. The scopes:

* `""` — the default scope of runs outside a cluster (`kredun run`, `Scheduler(...)`);
* `ns/<namespace>` — the Executions of one Kubernetes namespace (one tenant);
* `shared/<group>` — the Executions of several namespaces that the operator's configuration
  lets share one cache (`[tenancy.shared_cache]`, below).

A scope's values live under `<value store>/<scope>/` (an S3 prefix, or a subdirectory), and
its rows carry the scope in the provenance database. Configuration (operator and client)::

    [tenancy]
    cache_scope = "ns/team-a"          # runs of this configuration use that scope (default "")

    [tenancy.shared_cache]             # group name = the namespaces sharing one cache
    analytics = ["team-a", "team-b"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError

DEFAULT_SCOPE = ""
# A Kubernetes namespace name (and a group name): an RFC 1123 label.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SCOPE = re.compile(r"^(ns|shared)/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_scope(scope: Any, where: str = "cache_scope") -> str:
    """`scope` if it names a scope; ConfigError naming `where` otherwise."""
    if scope == DEFAULT_SCOPE or (isinstance(scope, str) and _SCOPE.match(scope)):
        return scope
    raise ConfigError(
        f'{where} must be "" (the default scope), "ns/<namespace>" or "shared/<group>" '
        f"(lowercase letters, digits and '-'), not {scope!r}"
    )


def scoped_store_uri(uri: str, scope: str) -> str:
    """The value store URI of `scope`'s values, under the store's root `uri`."""
    if not scope or urlparse(uri).scheme == "memory":
        return uri
    return f"{uri.rstrip('/')}/{check_scope(scope)}"


@dataclass(frozen=True)
class Tenancy:
    """`[tenancy]`: this configuration's own scope and the namespaces sharing a cache."""

    cache_scope: str = DEFAULT_SCOPE
    # group name -> namespaces
    shared_cache: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def scope_of(self, namespace: str) -> str:
        """The cache scope of an Execution in `namespace`."""
        for group, members in self.shared_cache.items():
            if namespace in members:
                return f"shared/{group}"
        return f"ns/{namespace}"


def parse_tenancy(data: Any, origin: str = "config") -> Tenancy:
    """The `[tenancy]` table, checked; ConfigError names the key at fault."""
    if data is None:
        return Tenancy()
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: [tenancy] must be a table")
    unknown = set(data) - {"cache_scope", "shared_cache"}
    if unknown:
        raise ConfigError(
            f"{origin}: [tenancy] has unknown key(s) {', '.join(sorted(unknown))} "
            "(known: cache_scope, shared_cache)"
        )
    scope = check_scope(data.get("cache_scope", DEFAULT_SCOPE), f"{origin}: tenancy.cache_scope")
    groups = data.get("shared_cache", {})
    if not isinstance(groups, dict):
        raise ConfigError(
            f"{origin}: [tenancy.shared_cache] must be a table of group = [namespaces], "
            'e.g. analytics = ["team-a", "team-b"]'
        )
    shared: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for group, members in groups.items():
        where = f"{origin}: tenancy.shared_cache.{group}"
        if not _LABEL.match(group):
            raise ConfigError(f"{where}: a group name must be a DNS label (a-z, 0-9, '-')")
        if (
            not isinstance(members, list)
            or len(members) < 2
            or not all(isinstance(m, str) and _LABEL.match(m) for m in members)
        ):
            raise ConfigError(f"{where} must list at least two namespace names")
        for member in members:
            if member in owner and owner[member] != group:
                raise ConfigError(
                    f"{where}: namespace {member!r} is already in group {owner[member]!r}; "
                    "a namespace shares its cache with one group at most"
                )
            owner[member] = group
        shared[group] = tuple(dict.fromkeys(members))
    return Tenancy(scope, shared)
