"""ClusterIP and NodePort assignment for Services, inside a store write.

The allocators are in-memory and owned by the writer thread; their state is
derived from the stored Services at start-up (and after a failed commit), so what
is allocated is always what is stored. An allocation is undone if its write rolls
back; a release waits until the write that frees the value has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from functools import partial
from typing import Any

from apimachinery import services as facts
from apiserver.allocators import AllocationError, IPAllocator, PortAllocator
from apiserver.errors import FieldError, Invalid, invalid
from apiserver.storage.store import Txn

# The DNS Service's conventional address: the 10th of the range, kept for kube-dns.
DNS_OFFSET = 10


class ServiceAllocations:
    def __init__(self, cidr: str, node_port_range: str) -> None:
        self.cidr = cidr
        self.node_port_range = node_port_range
        self.ips = self._new_ips()
        self.ports = PortAllocator(node_port_range)

    def _new_ips(self) -> IPAllocator:
        probe = IPAllocator(self.cidr)
        reserved = [probe.first_usable(), probe.nth(DNS_OFFSET)] if probe.free() > DNS_OFFSET \
            else [probe.first_usable()]
        return IPAllocator(self.cidr, reserved=reserved)

    @property
    def kubernetes_ip(self) -> str:
        """The first address: the ``kubernetes`` Service's, as in Kubernetes."""
        return self.ips.first_usable()

    @property
    def dns_ip(self) -> str:
        return self.ips.nth(DNS_OFFSET)

    def rebuild(self, services: Iterable[dict]) -> None:
        """Mark every address and port held by a stored Service as taken."""
        self.ips = self._new_ips()
        self.ports = PortAllocator(self.node_port_range)
        for svc in services:
            spec = svc.get("spec") or {}
            for ip in facts.cluster_ips(spec):
                if self.ips.contains(ip):
                    _quietly(self.ips.allocate_specific, ip)
            for port in _node_ports(spec):
                _quietly(self.ports.allocate_specific, port)

    # -- inside a write --

    def assign(self, txn: Txn, svc: dict, old: dict | None) -> None:
        """Fill clusterIP(s) and nodePorts of ``svc``; raise Invalid if a request can't be met."""
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        errors: list[FieldError] = []
        self._assign_ip(txn, spec, old_spec, errors)
        self._assign_node_ports(txn, spec, old_spec, errors)
        if errors:
            meta = svc.get("metadata") or {}
            raise Invalid("Service", meta.get("name", ""), errors)

    def release_all(self, txn: Txn, svc: dict) -> None:
        """After the delete of ``svc`` commits, free its address and ports."""
        spec = svc.get("spec") or {}
        for ip in facts.cluster_ips(spec):
            txn.after_commit(partial(self.ips.release, ip))
        for port in _node_ports(spec):
            txn.after_commit(partial(self.ports.release, port))

    def _assign_ip(self, txn: Txn, spec: dict, old_spec: dict, errors: list[FieldError]) -> None:
        old_ips = facts.cluster_ips(old_spec)
        if not facts.has_cluster_ip(spec):
            for ip in old_ips:
                txn.after_commit(partial(self.ips.release, ip))
            for k in facts.CLUSTER_IP_FIELDS:
                spec.pop(k, None)
            return
        wanted = spec.get("clusterIP") or ""
        if facts.is_headless(spec):  # also when only clusterIPs: [None] was written
            spec["clusterIP"] = facts.HEADLESS
            spec["clusterIPs"] = [facts.HEADLESS]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            return
        if wanted and wanted in old_ips:
            ip = wanted
        elif wanted:
            try:
                ip = self.ips.allocate_specific(wanted)
            except AllocationError as exc:
                errors.append(invalid("spec.clusterIPs", [wanted], str(exc)))
                return
            txn.on_rollback(partial(self.ips.release, ip))
        else:
            try:
                ip = self.ips.allocate()
            except AllocationError as exc:
                errors.append(invalid("spec.clusterIPs", [], str(exc)))
                return
            txn.on_rollback(partial(self.ips.release, ip))
        for gone in old_ips:
            if gone != ip:
                txn.after_commit(partial(self.ips.release, gone))
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec["ipFamilies"] = [self.ips.family]
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _assign_node_ports(self, txn: Txn, spec: dict, old_spec: dict,
                           errors: list[FieldError]) -> None:
        ports = spec.get("ports") or []
        old_by_key = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                      for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        held = set(_node_ports(old_spec))
        kept: set[int] = set()
        if facts.allocates_node_ports(spec):
            for i, port in enumerate(ports):
                if not isinstance(port, dict):
                    continue
                wanted = port.get("nodePort")
                if not wanted:
                    wanted = old_by_key.get((port.get("port"), port.get("protocol", "TCP")))
                if wanted and wanted in held and wanted not in kept:
                    kept.add(wanted)
                    port["nodePort"] = wanted
                    continue
                value = self._take_port(txn, wanted, f"spec.ports[{i}].nodePort", errors)
                if value is not None:
                    port["nodePort"] = value
        else:
            for port in ports:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
        hc = self._assign_health_check_port(txn, spec, old_spec, errors)
        if hc:
            kept.add(hc)
        for gone in held - kept:
            txn.after_commit(partial(self.ports.release, gone))

    def _assign_health_check_port(self, txn: Txn, spec: dict, old_spec: dict,
                                  errors: list[FieldError]) -> int | None:
        if not facts.needs_health_check(spec):
            spec.pop("healthCheckNodePort", None)
            return None
        wanted = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
        if wanted and wanted == old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = wanted
            return wanted
        value = self._take_port(txn, wanted, "spec.healthCheckNodePort", errors)
        if value is not None:
            spec["healthCheckNodePort"] = value
        return value

    def _take_port(self, txn: Txn, wanted: int | None, field: str,
                   errors: list[FieldError]) -> int | None:
        """Allocate ``wanted`` (or any free port); undone if the write rolls back."""
        try:
            if wanted:
                self.ports.allocate_specific(wanted)
                value = wanted
            else:
                value = self.ports.allocate()
        except AllocationError as exc:
            errors.append(invalid(field, wanted or 0, str(exc)))
            return None
        txn.on_rollback(lambda: self.ports.release(value))
        return value


def _node_ports(spec: dict) -> list[int]:
    found = [p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)]
    found.append(spec.get("healthCheckNodePort"))
    return [p for p in found if isinstance(p, int) and not isinstance(p, bool) and p > 0]


def _quietly(fn: Any, value: Any) -> None:
    # a duplicate in stored data: keep the first holder, never crash start-up
    with contextlib.suppress(AllocationError):
        fn(value)


def keep_allocated_cluster_ip(spec: dict, old_spec: dict) -> None:
    """An update that omits the ClusterIP keeps the stored one (``patchAllocatedValues``).

    Runs before validation, as in Kubernetes, so the kept value is judged with
    the new type: a headless Service turned NodePort is refused, not stored.
    """
    if not (facts.has_cluster_ip(spec) and facts.has_cluster_ip(old_spec)):
        return
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
        spec["clusterIPs"] = list(old_spec["clusterIPs"])


# Who keeps the ``kubernetes`` slice; the EndpointSlice controller leaves slices of
# another manager alone (and the Service has no selector anyway).
KUBERNETES_SLICE_MANAGER = "kube-apiserver"


def kubernetes_endpoint_slice(address: str, port: int) -> dict[str, Any]:
    """The ``default/kubernetes`` EndpointSlice naming one API server (pure)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": KUBERNETES_SLICE_MANAGER}},
        "addressType": "IPv6" if ":" in address else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
