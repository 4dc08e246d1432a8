"""The trimmed shapes DNS needs, and pure conversions from API objects to them.

As CoreDNS's ``object/`` package does, dnsd keeps only the fields that change an
answer. Two payoffs: the index stays small, and comparing the trimmed value of an
update with the previous one tells whether anything DNS-relevant changed (status
writes, label edits, resourceVersion bumps are no-ops and cost nothing).

Everything here is a frozen dataclass or a pure function of API dicts; nothing
reads a clock except through the ``now`` argument.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apimachinery import services as facts
from apimachinery.services import DNSKind
from apimachinery.timestamps import parse_time as parse_timestamp
from dnsd.names import dashed_address

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Set by the EndpointSlice controller (RFC 3339 with nanoseconds) to the moment
# the change that produced the slice happened; what Kubernetes measures DNS and
# network programming latency from.
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

Key = tuple[str, str]  # (namespace, name)
# Which records a Service's name answers with; decided by apimachinery.services.dns_kind.
ServiceKind = DNSKind


@dataclass(frozen=True)
class Port:
    name: str  # "" for an unnamed port (no SRV for it)
    protocol: str  # lower case: "tcp", "udp", "sctp"
    port: int


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    kind: ServiceKind
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    external_name: str = ""  # lower case, no trailing dot
    publish_not_ready: bool = False

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Endpoint:
    """One address of an EndpointSlice endpoint, with the slice's ports."""

    address: str
    hostname: str = ""  # the endpoint's own hostname, "" if none was set
    ready: bool = True  # conditions.ready true or absent (absent = unknown = ready)
    ports: tuple[Port, ...] = ()  # empty: A records only, no SRV

    @property
    def label(self) -> str:
        """The name under the Service: the hostname, else the dashed address (CoreDNS)."""
        return self.hostname or dashed_address(self.address)

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class SliceInfo:
    namespace: str
    name: str
    service: str  # from the kubernetes.io/service-name label; "" if unlabelled
    endpoints: tuple[Endpoint, ...] = ()
    trigger_time: float | None = None  # Unix time of the change, when the slice says

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def service_key(self) -> Key:
        return (self.namespace, self.service)


@dataclass(frozen=True)
class ServiceEndpoints:
    """The merged endpoints of one Service's slices, indexed the ways answers need."""

    published: tuple[Endpoint, ...] = ()  # the ones DNS serves, in a stable order
    by_label: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict, compare=False)
    by_address: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict, compare=False)


def service_from_object(obj: dict[str, Any]) -> ServiceInfo:
    """Trim a Service to what DNS serves."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    ports = tuple(_port(p) for p in spec.get("ports") or () if isinstance(p, dict))
    publish = bool(spec.get("publishNotReadyAddresses"))
    kind = facts.dns_kind(spec)
    if kind is ServiceKind.EXTERNAL_NAME:
        target = str(spec.get("externalName") or "").strip().rstrip(".").lower()
        return ServiceInfo(namespace, name, kind, external_name=target,
                           publish_not_ready=publish)
    if kind is ServiceKind.HEADLESS:
        return ServiceInfo(namespace, name, kind, ports=ports, publish_not_ready=publish)
    return ServiceInfo(namespace, name, kind,
                       cluster_ips=tuple(ip for ip in facts.cluster_ips(spec) if _is_ip(ip)),
                       ports=ports, publish_not_ready=publish)


def slice_from_object(obj: dict[str, Any]) -> SliceInfo:
    """Trim an EndpointSlice: every address with its readiness, hostname and the ports.

    FQDN slices carry no addresses DNS can serve, so they trim to no endpoints.
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    service = str(labels.get(SERVICE_NAME_LABEL) or "")
    trigger = parse_timestamp((meta.get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION))
    if obj.get("addressType") not in ("IPv4", "IPv6"):
        return SliceInfo(namespace, name, service, (), trigger)
    ports = tuple(_port(p) for p in obj.get("ports") or () if isinstance(p, dict)
                  and isinstance(p.get("port"), int))
    endpoints: list[Endpoint] = []
    for ep in obj.get("endpoints") or ():
        if not isinstance(ep, dict):
            continue
        ready = (ep.get("conditions") or {}).get("ready")
        hostname = str(ep.get("hostname") or "").lower()
        for address in ep.get("addresses") or ():
            if _is_ip(address):
                endpoints.append(Endpoint(str(ipaddress.ip_address(address)), hostname,
                                          ready is not False, ports))
    return SliceInfo(namespace, name, service, tuple(endpoints), trigger)


def merge_endpoints(service: ServiceInfo | None, slices: Iterable[SliceInfo]
                    ) -> ServiceEndpoints:
    """The endpoints DNS publishes for ``service``: ready ones, or all of them when the
    Service sets ``publishNotReadyAddresses`` (miniplane's slice controller need not
    fold that flag into ``ready`` the way Kubernetes' does, so dnsd applies it).

    Slices are merged in name order so the answer order is stable across relists.
    """
    publish_all = service is not None and service.publish_not_ready
    published = tuple(ep for s in sorted(slices, key=lambda s: s.name) for ep in s.endpoints
                      if ep.ready or publish_all)
    by_label: dict[str, list[Endpoint]] = {}
    by_address: dict[str, list[Endpoint]] = {}
    for ep in published:
        by_label.setdefault(ep.label, []).append(ep)
        by_address.setdefault(ep.address, []).append(ep)
    return ServiceEndpoints(published, {k: tuple(v) for k, v in by_label.items()},
                            {k: tuple(v) for k, v in by_address.items()})


def service_ips(service: ServiceInfo, endpoints: ServiceEndpoints) -> frozenset[str]:
    """The addresses whose PTR names this Service provides (ClusterIPs; headless endpoints)."""
    if service.kind is ServiceKind.CLUSTER_IP:
        return frozenset(service.cluster_ips)
    if service.kind is ServiceKind.HEADLESS:
        return frozenset(endpoints.by_address)
    return frozenset()


def creation_time(obj: dict[str, Any]) -> float | None:
    """``metadata.creationTimestamp`` as Unix time, only when it has sub-second digits.

    Kubernetes (and miniplane) write whole seconds; measuring a latency of a few
    milliseconds from a time truncated by up to a second would report mostly
    truncation, so such timestamps are not used.
    """
    raw = (obj.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(raw, str) or "." not in raw:
        return None
    return parse_timestamp(raw)


def _port(p: dict[str, Any]) -> Port:
    port = p.get("port")
    return Port(str(p.get("name") or "").lower(), str(p.get("protocol") or "TCP").lower(),
                port if isinstance(port, int) else 0)


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
