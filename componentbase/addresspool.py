"""An IPv4 address pool given on a command line: ``A-B`` ranges, CIDRs and addresses.

Pure. ``mp-controllers --lb-pool`` hands LoadBalancer addresses out of one
(``controllers/lbpool.py``), and ``mpctl cluster up --lb-pool`` checks the same
text and routes it from the fabric to the nodes: one parser serves both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass


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
