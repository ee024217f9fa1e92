"""Resource types the emulated API server serves: built-in kinds plus installed CRDs.

Discovery documents (``/api/v1``, ``/apis/<group>/<version>``) are generated from these, so what
kopf, kubectl and the Python client discover is exactly what the server can store and watch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served group/version/resource, with what the server must know to store it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # Subresources other than "status" (e.g. pods/log, pods/binding), each with its verbs.
    extra_subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    crd_name: str | None = None  # set for custom resources: the CRD that defines them
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        """All served versions of one group/resource share one storage, as in Kubernetes."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery_entries(self) -> list[dict[str, Any]]:
        """The APIResource entries for this resource and its subresources."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        entries = [main]
        if self.status_subresource:
            entries.append(self._subresource_entry("status", self.kind, ("get", "patch", "update")))
        for name, kind, verbs in self.extra_subresources:
            entries.append(self._subresource_entry(name, kind, verbs))
        return entries

    def _subresource_entry(self, name: str, kind: str, verbs: tuple[str, ...]) -> dict[str, Any]:
        return {
            "name": f"{self.plural}/{name}",
            "singularName": "",
            "namespaced": self.namespaced,
            "kind": kind,
            "verbs": list(verbs),
        }


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    status: bool = False,
    extra: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short_names,
        categories=categories,
        status_subresource=status,
        extra_subresources=extra,
    )


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        status=True,
        extra=(("log", "Pod", ("get",)), ("binding", "Binding", ("create",))),
    ),
    _builtin("", "v1", "events", "Event", short_names=("ev",)),
    _builtin(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), status=True
    ),
    _builtin("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), status=True),
    _builtin(
        "", "v1", "services", "Service", short_names=("svc",), categories=("all",), status=True
    ),
    _builtin("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _builtin(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        status=True,
    ),
    _builtin(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        namespaced=False,
        short_names=("pv",),
        status=True,
    ),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        status=True,
    ),
    _builtin("batch", "v1", "jobs", "Job", categories=("all",), status=True),
    _builtin("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status=True,
    ),
)


class InvalidDefinition(ValueError):
    """A CRD the real API server would reject with 422 Invalid."""


def resource_types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The served versions of a CustomResourceDefinition, validated like the real server does."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not group or not plural or not kind:
        raise InvalidDefinition("spec.group, spec.names.plural and spec.names.kind are required")
    expected_name = f"{plural}.{group}"
    if crd.get("metadata", {}).get("name") != expected_name:
        raise InvalidDefinition(
            f"metadata.name: Invalid value: must be spec.names.plural+'.'+spec.group "
            f"({expected_name})"
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        raise InvalidDefinition("spec.scope: Unsupported value: must be Namespaced or Cluster")
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        raise InvalidDefinition(
            "spec.versions: Invalid value: exactly one storage version is required"
        )
    return [
        ResourceType(
            group=group,
            version=version["name"],
            plural=plural,
            kind=kind,
            namespaced=scope == "Namespaced",
            singular=names.get("singular") or kind.lower(),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status_subresource="status" in (version.get("subresources") or {}),
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
            crd_name=expected_name,
        )
        for version in versions
        if version.get("served", True)
    ]


def crd_storage_version(crd: Mapping[str, Any]) -> str:
    return next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))


def accepted_crd_status(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The status the CRD controllers would write: names accepted, established."""
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    timestamp = crd["metadata"]["creationTimestamp"]
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": timestamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": timestamp,
            },
        ],
        "storedVersions": [crd_storage_version(crd)],
    }


@dataclass
class ResourceRegistry:
    """Lookup of served resources by group/version/plural and rendering of discovery."""

    by_gvr: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls) -> ResourceRegistry:
        registry = cls()
        registry.add(BUILTIN_RESOURCES)
        return registry

    def add(self, types: Iterable[ResourceType]) -> None:
        for rtype in types:
            self.by_gvr[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_crd(self, crd_name: str) -> None:
        for key in [k for k, rtype in self.by_gvr.items() if rtype.crd_name == crd_name]:
            del self.by_gvr[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.by_gvr.get((group, version, plural))

    def versions_of(self, group: str) -> list[str]:
        return sorted(
            {rtype.version for rtype in self.by_gvr.values() if rtype.group == group},
            key=_version_priority,
        )

    def groups(self) -> list[str]:
        return sorted({rtype.group for rtype in self.by_gvr.values() if rtype.group})

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = sorted(
            (
                rtype
                for rtype in self.by_gvr.values()
                if rtype.group == group and rtype.version == version
            ),
            key=lambda rtype: rtype.plural,
        )
        if not types:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": types[0].api_version,
            "resources": [entry for rtype in types for entry in rtype.discovery_entries()],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.versions_of(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = [self.api_group(group) for group in self.groups()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0), version)
