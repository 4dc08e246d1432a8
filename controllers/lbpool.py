"""A LoadBalancer address pool and the choice of a Service's ingress IP, pure.

What MetalLB's L2 mode or kind's cloud-provider-kind do for a local cluster, as
data: a pool of IPv4 addresses (``--lb-pool``, parsed by
``componentbase.addresspool``, which ``mpctl cluster up`` uses too to route the
pool from the fabric to the nodes), and ``decide`` — given one Service and the
addresses other Services hold — the ``status.loadBalancer.ingress`` it should
carry. The ``service-lb`` controller (``servicelb``) writes what ``decide`` says.

Rules, as Kubernetes' service controller and MetalLB apply them:

- Only ``type: LoadBalancer`` Services without a ``loadBalancerClass`` are ours
  (the default class); a Service of another class is left alone entirely.
- An owned Service keeps the pool address it holds, unless another Service held
  it first (then it gets a new one) or ``spec.loadBalancerIP`` asks for another.
- ``spec.loadBalancerIP`` (deprecated upstream, still honoured by MetalLB and
  cloud-provider-kind) must be a free pool address, or nothing is assigned and the
  reason is reported.
- A Service that is no longer ours (its type changed) loses the pool addresses in
  its status, which frees them; a deleted Service frees them by going away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery.services import LOAD_BALANCER, service_type
from componentbase.addresspool import Pool

Object = Mapping[str, Any]


def owns(service: Object) -> bool:
    """``type: LoadBalancer`` of the default class (no ``loadBalancerClass``)."""
    spec = service.get("spec") or {}
    return service_type(spec) == LOAD_BALANCER and not spec.get("loadBalancerClass")


def ingress_ips(service: Object) -> list[str]:
    """The ``ip`` of each ``status.loadBalancer.ingress`` entry that has one."""
    lb = (service.get("status") or {}).get("loadBalancer") or {}
    return [e["ip"] for e in lb.get("ingress") or []
            if isinstance(e, Mapping) and isinstance(e.get("ip"), str) and e["ip"]]


@dataclass(frozen=True)
class Decision:
    """What a Service's ingress should be: ``None`` leaves the status alone."""

    ingress: list[dict[str, str]] | None
    problem: str = ""  # why an owned Service gets no address (an event's message)


LEAVE = Decision(None)


def decide(service: Object, pool: Pool, held_by_others: Iterable[str]) -> Decision:
    """The ingress ``service`` should carry, given the pool addresses other Services
    hold (first come, first served: a Service never takes another's address)."""
    current = ingress_ips(service)
    ours = [ip for ip in current if ip in pool]
    if not owns(service):
        if service_type(service.get("spec") or {}) == LOAD_BALANCER:
            return LEAVE  # another class: its controller's business
        return Decision([]) if ours else LEAVE  # type changed: release the address
    taken = set(held_by_others)
    wanted = (service.get("spec") or {}).get("loadBalancerIP") or ""
    if wanted:
        if wanted not in pool:
            return _unassigned(ours, f"loadBalancerIP {wanted} is not in the pool {pool}")
        if wanted in taken:
            return _unassigned(ours, f"loadBalancerIP {wanted} is held by another Service")
        choice = wanted
    else:
        kept = [ip for ip in ours if ip not in taken]
        choice = kept[0] if kept else next((ip for ip in pool if ip not in taken), "")
        if not choice:
            return _unassigned(ours, f"no free address in the pool {pool}")
    if current == [choice]:
        return LEAVE
    return Decision([{"ip": choice, "ipMode": "VIP"}])


def _unassigned(ours: list[str], problem: str) -> Decision:
    return Decision([] if ours else None, problem)
