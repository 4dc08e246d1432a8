"""ClusterIP and NodePort assignment for Services, inside a store write.

The database decides: a Service's write claims each address and port it takes
(``Txn.claim``, a row unique on (kind, value)) and its delete or update gives back
what it frees (``Txn.unclaim``), in the same transaction, so two API servers on one
database never hand out the same value. The allocators here are each server's
in-memory *hint*: they pick a candidate in O(1) with the KEP-3070 / KEP-3668 bands,
and a candidate another server already holds is marked taken and the next one
tried. A hint that ran dry is reloaded from the claims once before the range is
called full; a specific value the hint believes taken is asked of the database
(another server may have freed it). The hint is rebuilt from the stored Services at
start-up and after a failed commit; an allocation is undone if its write rolls back,
and a release reaches the hint once the write that frees the value has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from apimachinery import services as facts
from apiserver.allocators import (
    AllocationError,
    AlreadyAllocated,
    Exhausted,
    IPAllocator,
    PortAllocator,
)
from apiserver.errors import FieldError, Invalid, invalid
from apiserver.ipfamilies import ip_family_fields
from apiserver.storage.store import Txn

# The DNS Service's conventional address: the 10th of the range, kept for kube-dns.
DNS_OFFSET = 10
# ``Txn.claim`` kinds
CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"


def owner_of(svc: dict) -> str:
    """Who holds a Service's claims: ``services/namespace/name``."""
    meta = svc.get("metadata") or {}
    return f"services/{meta.get('namespace', '')}/{meta.get('name', '')}"


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

    def adopt(self, txn: Txn) -> int:
        """Make the claims exactly what the stored Services hold (a write, once at
        start-up): a database from before claims gets them, and a claim whose Service
        is gone (its row removed by hand, README "Recovery") is dropped. Returns how
        many claims changed."""
        held: dict[tuple[str, str], str] = {}
        for svc in txn.list("services"):
            spec = svc.get("spec") or {}
            owner = owner_of(svc)
            for ip in facts.cluster_ips(spec):
                if ip != facts.HEADLESS:
                    held.setdefault((CLUSTER_IP, ip), owner)
            for port in _node_ports(spec):
                held.setdefault((NODE_PORT, str(port)), owner)
        changed = 0
        for kind in (CLUSTER_IP, NODE_PORT):
            for value, owner in txn.claimed(kind):
                if held.get((kind, value)) == owner:
                    del held[kind, value]
                else:
                    txn.unclaim(kind, value, owner)
                    changed += 1
        for (kind, value), owner in held.items():
            changed += txn.claim(kind, value, owner)
        return changed

    def _reload(self, txn: Txn, kind: str) -> None:
        """The hint for ``kind`` as the database's claims have it now."""
        if kind == CLUSTER_IP:
            self.ips = self._new_ips()
            for ip, _owner in txn.claimed(CLUSTER_IP):
                if self.ips.contains(ip):
                    _quietly(self.ips.allocate_specific, ip)
        else:
            self.ports = PortAllocator(self.node_port_range)
            for port, _owner in txn.claimed(NODE_PORT):
                with contextlib.suppress(ValueError):
                    _quietly(self.ports.allocate_specific, int(port))

    # -- inside a write --

    def assign(self, txn: Txn, svc: dict, old: dict | None) -> None:
        """Fill clusterIP(s) and nodePorts of ``svc``; raise Invalid if a request can't be met."""
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        owner = owner_of(svc)
        errors: list[FieldError] = []
        self._assign_ip(txn, owner, spec, old_spec if old is not None else None, errors)
        if not errors:  # as Kubernetes: no ports are looked at once the address failed
            self._assign_node_ports(txn, owner, spec, old_spec, errors)
        if errors:
            meta = svc.get("metadata") or {}
            raise Invalid("Service", meta.get("name", ""), errors)

    def release_all(self, txn: Txn, svc: dict) -> None:
        """Give back ``svc``'s address and ports with its delete."""
        spec = svc.get("spec") or {}
        owner = owner_of(svc)
        for ip in facts.cluster_ips(spec):
            self._free_ip(txn, owner, ip)
        for port in _node_ports(spec):
            self._free_port(txn, owner, port)

    def _free_ip(self, txn: Txn, owner: str, ip: str) -> None:
        txn.unclaim(CLUSTER_IP, ip, owner)
        txn.after_commit(lambda: self.ips.release(ip))

    def _free_port(self, txn: Txn, owner: str, port: int) -> None:
        txn.unclaim(NODE_PORT, str(port), owner)
        txn.after_commit(lambda: self.ports.release(port))

    def _take(self, txn: Txn, kind: str, owner: str, wanted: Any,
              hint: Callable[[], IPAllocator | PortAllocator]) -> Any:
        """Claim ``wanted`` (or any free value) for ``owner``; AllocationError if not.

        ``hint()`` is the allocator of ``kind``, looked up per call (``_reload``
        replaces it); the claim in ``txn`` decides."""
        if wanted:
            return self._take_specific(txn, kind, owner, wanted, hint)
        for reloaded in (False, True):
            while True:
                try:
                    value = hint().allocate()
                except Exhausted:
                    break
                if txn.claim(kind, str(value), owner):
                    txn.on_rollback(partial(_release, hint, value))
                    return value
                # another server holds it: the hint keeps it taken, try the next
            if not reloaded:
                self._reload(txn, kind)
        raise Exhausted("range is full")

    def _take_specific(self, txn: Txn, kind: str, owner: str, wanted: Any,
                       hint: Callable[[], IPAllocator | PortAllocator]) -> Any:
        pool = hint()
        try:
            pool.allocate_specific(wanted)  # OutOfRange goes to the caller as it is
            took = True
        except AlreadyAllocated:
            took = False  # so it seems here; another server may have freed it since
        value = pool.canonical(wanted)
        if not txn.claim(kind, str(value), owner):
            raise pool.already_allocated(wanted)  # (the hint rightly keeps it taken)
        if took:
            txn.on_rollback(partial(_release, hint, value))
        return value

    def _assign_ip(self, txn: Txn, owner: str, spec: dict, old_spec: dict | None,
                   errors: list[FieldError]) -> None:
        """The family fields first (``apiserver.ipfamilies``: what this cluster cannot
        serve is refused before anything is taken), then the address of the one family
        a ClusterIP needs; a headless Service gets none."""
        old_ips = facts.cluster_ips(old_spec or {})
        if not facts.has_cluster_ip(spec):
            for ip in old_ips:
                self._free_ip(txn, owner, ip)
            for k in facts.CLUSTER_IP_FIELDS:
                spec.pop(k, None)
            return
        decided = ip_family_fields(spec, old_spec, configured=(self.ips.family,))
        if isinstance(decided, list):
            errors.extend(decided)
            return
        spec["ipFamilyPolicy"] = decided.policy
        spec["ipFamilies"] = list(decided.families)
        if facts.is_headless(spec):  # also when only clusterIPs: [None] was written
            spec["clusterIP"] = facts.HEADLESS
            spec["clusterIPs"] = [facts.HEADLESS]
            return
        wanted = decided.cluster_ips[0] if decided.cluster_ips else ""
        if wanted and wanted in old_ips:
            ip = wanted
        else:
            try:
                ip = self._take(txn, CLUSTER_IP, owner, wanted or None, lambda: self.ips)
            except AllocationError as exc:
                errors.append(invalid("spec.clusterIPs", [wanted] if wanted else [], str(exc)))
                return
        for gone in old_ips:
            if gone != ip:
                self._free_ip(txn, owner, gone)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _assign_node_ports(self, txn: Txn, owner: str, spec: dict, old_spec: dict,
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
                value = self._take_port(txn, owner, wanted, f"spec.ports[{i}].nodePort",
                                        errors)
                if value is not None:
                    port["nodePort"] = value
        else:
            for port in ports:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
        hc = self._assign_health_check_port(txn, owner, spec, old_spec, errors)
        if hc:
            kept.add(hc)
        for gone in held - kept:
            self._free_port(txn, owner, gone)

    def _assign_health_check_port(self, txn: Txn, owner: str, spec: dict, old_spec: dict,
                                  errors: list[FieldError]) -> int | None:
        if not facts.needs_health_check(spec):
            spec.pop("healthCheckNodePort", None)
            return None
        wanted = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
        if wanted and wanted == old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = wanted
            return wanted
        value = self._take_port(txn, owner, wanted, "spec.healthCheckNodePort", errors)
        if value is not None:
            spec["healthCheckNodePort"] = value
        return value

    def _take_port(self, txn: Txn, owner: str, wanted: int | None, field: str,
                   errors: list[FieldError]) -> int | None:
        """Claim ``wanted`` (or any free port); undone if the write rolls back."""
        try:
            return self._take(txn, NODE_PORT, owner, wanted or None, lambda: self.ports)
        except AllocationError as exc:
            errors.append(invalid(field, wanted or 0, str(exc)))
            return None


def _release(hint: Callable[[], IPAllocator | PortAllocator], value: Any) -> None:
    hint().release(value)


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


def kubernetes_endpoint_slice(addresses: Sequence[str], port: int,
                              name: str = "kubernetes") -> dict[str, Any]:
    """A ``default/kubernetes`` EndpointSlice naming API servers of one address family
    that serve on one port (pure)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": {
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": KUBERNETES_SLICE_MANAGER}},
        "addressType": "IPv6" if any(":" in a for a in addresses) else "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
