"""Which Pods back a Service, and how (pure): the input both endpoint controllers share.

The EndpointSlice controller (``controllers.slices``) and the v1 Endpoints
controller (``controllers.endpointsubsets``) publish the same facts in two shapes,
so the facts are computed once, here: for a Service and a set of Pods, one
``Backend`` per Pod that has an address to publish. Each controller then decides
what a Backend becomes (a slice endpoint with conditions; a ready or not-ready
address in a subset, or nothing for a terminating Pod).

A Pod backs a Service when the Service has a selector (and is not ExternalName),
the selector matches the Pod's labels in the Service's namespace, the Pod has an
IPv4 address and has not finished (Succeeded/Failed). Its ports are the Service's
ports resolved for that Pod (a named ``targetPort`` looked up in its containers,
as Kubernetes' ``FindPort``), so Pods may differ. Two Pods claiming one address (a
stale Pod and its successor) give one Backend: the one not terminating, then the
newer name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery import services
from apimachinery.labels import matches_map
from controllers.objects import (
    is_deleting,
    is_pod_ready,
    is_pod_terminal,
    labels_of,
    name_of,
    namespace_of,
    node_name_of,
    spec,
    status,
    uid_of,
)

Object = Mapping[str, Any]
# One resolved port as a sortable value: (name, protocol, port, appProtocol or "").
PortTuple = tuple[str, str, int, str]
PortKey = tuple[PortTuple, ...]


@dataclass(frozen=True)
class Backend:
    """One Pod's contribution to a Service: where it is, whether it serves, on which ports."""

    ip: str
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str  # "" when not bound yet
    hostname: str  # "" unless the Pod's subdomain names the Service
    ready: bool  # the Pod's Ready condition (an EndpointSlice's ``serving``)
    terminating: bool  # the Pod has a deletionTimestamp
    ports: PortKey

    def target_ref(self) -> dict[str, str]:
        return {"kind": "Pod", "namespace": self.pod_namespace, "name": self.pod_name,
                "uid": self.pod_uid}


def selector_of(service: Object) -> Mapping[str, str]:
    """The Service's selector; empty means "none" (as Kubernetes stores it)."""
    selector = spec(service).get("selector")
    return selector if isinstance(selector, Mapping) else {}


def manages(service: Object) -> bool:
    """Do the endpoint controllers keep this Service's endpoints? (selector set, not
    ExternalName; the ``kubernetes`` Service has no selector: the API server keeps it)"""
    return bool(selector_of(service)) and not services.is_external_name(spec(service))


def publishes_not_ready(service: Object) -> bool:
    return spec(service).get("publishNotReadyAddresses") is True


def selects(service: Object, pod: Object) -> bool:
    """The Service's selector matches the Pod, in the same namespace."""
    selector = selector_of(service)
    return (bool(selector) and namespace_of(pod) == namespace_of(service)
            and matches_map(selector, labels_of(pod)))


def pod_ipv4(pod: Object) -> str | None:
    """The Pod's IPv4 address (``podIP``, else the first IPv4 of ``podIPs``), or None."""
    st = status(pod)
    candidates: list[Any] = [st.get("podIP")]
    for entry in st.get("podIPs") or []:
        if isinstance(entry, Mapping):
            candidates.append(entry.get("ip"))
    for ip in candidates:
        if isinstance(ip, str) and ip:
            try:
                if isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address):
                    return ip
            except ValueError:
                continue
    return None


def pod_ports(service: Object, pod: Object) -> PortKey:
    """The Service's ports resolved for ``pod``, sorted by name.

    A numeric ``targetPort`` is used as is (absent: the Service port). A named one
    is looked up in the Pod's container ports with the same protocol; a Pod that
    doesn't expose it gets no entry for that port, as in Kubernetes' ``FindPort``.
    """
    resolved: list[PortTuple] = []
    for port in spec(service).get("ports") or []:
        if not isinstance(port, Mapping):
            continue
        protocol = str(port.get("protocol") or "TCP")
        target = port.get("targetPort", port.get("port"))
        number = (target if isinstance(target, int) and not isinstance(target, bool)
                  else _container_port(pod, str(target), protocol))
        if number is None:
            continue
        resolved.append((str(port.get("name") or ""), protocol, number,
                         str(port.get("appProtocol") or "")))
    return tuple(sorted(resolved))


def _container_port(pod: Object, name: str, protocol: str) -> int | None:
    for container in spec(pod).get("containers") or []:
        if not isinstance(container, Mapping):
            continue
        for port in container.get("ports") or []:
            if (isinstance(port, Mapping) and port.get("name") == name
                    and str(port.get("protocol") or "TCP") == protocol
                    and isinstance(port.get("containerPort"), int)):
                return int(port["containerPort"])
    return None


def backend_for(service: Object, pod: Object) -> Backend | None:
    """What ``pod`` contributes to ``service`` (selector aside); None when nothing (no
    IPv4 address yet, or finished)."""
    ip = pod_ipv4(pod)
    if ip is None or is_pod_terminal(pod):
        return None
    pod_spec = spec(pod)
    hostname = pod_spec.get("hostname")
    own_host = bool(hostname) and pod_spec.get("subdomain") == name_of(service)
    return Backend(ip=ip, pod_name=name_of(pod), pod_namespace=namespace_of(pod),
                   pod_uid=uid_of(pod), node=node_name_of(pod),
                   hostname=str(hostname) if own_host else "", ready=is_pod_ready(pod),
                   terminating=is_deleting(pod), ports=pod_ports(service, pod))


def backends(service: Object, pods: Iterable[Object]) -> list[Backend]:
    """The Backends of ``service`` among ``pods`` (any superset of its Pods), one per
    address, sorted by address."""
    by_address: dict[str, Backend] = {}
    for pod in pods:
        if not selects(service, pod):
            continue
        backend = backend_for(service, pod)
        if backend is None:
            continue
        previous = by_address.get(backend.ip)
        if previous is None or _rank(previous) < _rank(backend):
            by_address[backend.ip] = backend
    return sorted(by_address.values(), key=lambda b: address_order(b.ip))


def _rank(backend: Backend) -> tuple[bool, str]:
    return not backend.terminating, backend.pod_name


def address_order(address: str) -> tuple[int, str]:
    """Sort key: IPv4 addresses numerically (10.0.0.9 before 10.0.0.10)."""
    try:
        return int(ipaddress.IPv4Address(address)), address
    except ValueError:
        return -1, address
