"""The registry of served resource types: facts from ``apimachinery.kinds`` plus behaviour.

Routes, discovery, field selectors and the create/update strategies are all read
from here, so a new resource is one entry, not five handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apimachinery import kinds
from apimachinery.kinds import Kind

BASE_FIELDS = ("metadata.name", "metadata.namespace")


def _reset_status(status: dict) -> Callable[[dict], None]:
    def reset(obj: dict) -> None:
        obj["status"] = dict(status)

    return reset


def _namespace_on_create(obj: dict) -> None:
    obj["status"] = {"phase": "Active"}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
        obj["spec"] = spec
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list) or "kubernetes" not in finalizers:
        spec["finalizers"] = ["kubernetes", *(finalizers or [])] if isinstance(finalizers, list) \
            else ["kubernetes"]


def _pod_on_create(obj: dict) -> None:
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _keep_status(obj: dict) -> None:
    """Node status is written by its agent at registration; keep what it sent."""


@dataclass(frozen=True)
class ResourceType:
    kind: Kind
    # field selectors beyond metadata.name / metadata.namespace
    extra_fields: tuple[str, ...] = ()
    # PUT of a missing object creates it (Services do; most kinds answer 404)
    create_on_update: bool = False
    # DELETE answers with the deleted object instead of a Status
    return_deleted: bool = False
    # pods: DELETE of a bound pod only marks it, its node finalises it
    graceful_delete: bool = False
    prepare_create: Callable[[dict], None] = field(default=_keep_status)

    @property
    def key(self) -> str:
        """Storage key of the resource: ``plural`` or ``plural.group``."""
        k = self.kind
        return f"{k.plural}.{k.group}" if k.group else k.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.kind.subresources

    @property
    def field_selectors(self) -> tuple[str, ...]:
        return BASE_FIELDS + self.extra_fields


REGISTRY: tuple[ResourceType, ...] = (
    ResourceType(kinds.NAMESPACE, extra_fields=("status.phase",),
                 prepare_create=_namespace_on_create),
    ResourceType(kinds.NODE, extra_fields=("spec.unschedulable",)),
    ResourceType(kinds.POD, extra_fields=("spec.nodeName", "status.phase", "status.podIP",
                                          "spec.restartPolicy", "spec.schedulerName"),
                 return_deleted=True, graceful_delete=True, prepare_create=_pod_on_create),
    ResourceType(kinds.SERVICE, extra_fields=("spec.clusterIP", "spec.type"),
                 create_on_update=True, return_deleted=True,
                 prepare_create=_reset_status({"loadBalancer": {}})),
    ResourceType(kinds.ENDPOINTSLICE, extra_fields=("addressType",)),
    ResourceType(kinds.EVENT, extra_fields=(
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
)

_BY_PATH = {(r.kind.group, r.kind.version, r.kind.plural): r for r in REGISTRY}
_BY_KIND = {r.kind.kind: r for r in REGISTRY}


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(kind: str) -> ResourceType:
    return _BY_KIND[kind]


def group_versions() -> list[tuple[str, str]]:
    """Served (group, version) pairs, core first."""
    seen: list[tuple[str, str]] = []
    for r in REGISTRY:
        gv = (r.kind.group, r.kind.version)
        if gv not in seen:
            seen.append(gv)
    return seen


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in REGISTRY if (r.kind.group, r.kind.version) == (group, version)]
