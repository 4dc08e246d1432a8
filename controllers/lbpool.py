"""A LoadBalancer address pool and the choice of a Service's ingress IP, pure.

What MetalLB's L2 mode or kind's cloud-provider-kind do for a local cluster, as
data: a pool of IPv4 addresses (``--lb-pool``: ranges ``A-B`` and CIDRs, comma
separated), and ``decide`` — given one Service and the addresses other Services
hold — the ``status.loadBalancer.ingress`` it should carry. ``mpctl cluster up``
parses the same pool to route it from the fabric to the nodes, and the
``service-lb`` controller (``servicelb``) writes what ``decide`` says.

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

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery.services import LOAD_BALANCER, service_type

Object = Mapping[str, Any]


class PoolError(ValueError):
    """An unusable ``--lb-pool``; the message is one line naming the bad part."""


@dataclass(frozen=True)
class Pool:
    """Inclusive IPv4 ranges, in the order given; no address twice."""

    ranges: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...]

    def __contains__(self, ip: object) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip) if isinstance(ip, str) else None
        except ValueError:
            return False
        return addr is not None and any(lo <= addr <= hi for lo, hi in self.ranges)

    def __iter__(self) -> Iterator[str]:
        for lo, hi in self.ranges:
            for n in range(int(lo), int(hi) + 1):
                yield str(ipaddress.IPv4Address(n))

    def __len__(self) -> int:
        return sum(int(hi) - int(lo) + 1 for lo, hi in self.ranges)

    def cidrs(self) -> list[str]:
        """The pool as the fewest CIDRs (routes in the fabric)."""
        return [str(net) for lo, hi in self.ranges
                for net in ipaddress.summarize_address_range(lo, hi)]

    def __str__(self) -> str:
        return ",".join(f"{lo}-{hi}" for lo, hi in self.ranges)


def parse_pool(text: str) -> Pool:
    """``10.250.0.200-10.250.0.250,10.250.0.192/29`` → a ``Pool``; raises ``PoolError``.

    A CIDR's network and broadcast addresses are kept (MetalLB's default); pools
    may not overlap, so no address is handed out twice."""
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "/" in part:
                net = ipaddress.IPv4Network(part, strict=True)
                lo, hi = net.network_address, net.broadcast_address
            elif "-" in part:
                first, _, last = part.partition("-")
                lo, hi = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
            else:
                lo = hi = ipaddress.IPv4Address(part)
        except ValueError as exc:
            raise PoolError(f"{part!r} is not an IPv4 range A-B, CIDR or address ({exc})") \
                from None
        if hi < lo:
            raise PoolError(f"{part!r}: the range ends before it starts")
        for a, b in ranges:
            if lo <= b and a <= hi:
                raise PoolError(f"{part!r} overlaps {a}-{b}")
        ranges.append((lo, hi))
    if not ranges:
        raise PoolError("the pool is empty")
    return Pool(tuple(ranges))


# -- one Service ------------------------------------------------------------------------


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
