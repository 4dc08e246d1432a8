"""Pod CIDRs for nodes: the cluster CIDR cut into equal subnets, handed out one per node.

``CidrSet`` is Kubernetes' ``cidrset`` without the bitmap: the set of subnet
indexes in use and a rotating *next candidate*. Allocation searches forward from
the candidate and wraps, so a CIDR freed by a deleted node is handed out again
only after every other free one: routes to the old node that other nodes still
hold have time to go before the addresses mean something else.

There is no state file: the Node objects are the record. After a restart the set
is rebuilt by ``occupy``-ing every stored node's ``spec.podCIDR`` before anything is
allocated, which is why allocations survive restarts. No I/O here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrError(ValueError):
    """The cluster CIDR or mask size can't be used; the message is one line."""


class CidrExhausted(Exception):
    """Every subnet is in use."""


class CidrSet:
    """Subnets of size ``/mask`` of ``cluster_cidr``: occupy, allocate, release."""

    def __init__(self, cluster_cidr: str, mask: int = 24) -> None:
        try:
            network = ipaddress.ip_network(cluster_cidr, strict=True)
        except ValueError as exc:
            raise CidrError(f"invalid cluster CIDR {cluster_cidr!r}: {exc}") from None
        if not network.prefixlen <= mask <= network.max_prefixlen:
            raise CidrError(f"node CIDR mask /{mask} must be between the cluster CIDR's "
                            f"/{network.prefixlen} and /{network.max_prefixlen}")
        if mask - network.prefixlen > 32:
            raise CidrError(f"/{mask} subnets of {network} are too many to track "
                            f"(at most 2^32)")
        self.network: IPNetwork = network
        self.mask = mask
        self.capacity = 1 << (mask - network.prefixlen)
        self._step = 1 << (network.max_prefixlen - mask)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        """How many subnets are in use."""
        return len(self._used)

    def __contains__(self, cidr: object) -> bool:
        index = self._index(cidr) if isinstance(cidr, str) else None
        return index is not None and index in self._used

    def occupy(self, cidr: str) -> bool:
        """Mark ``cidr`` used (a node already has it). False if it is not one of this
        set's subnets (outside the cluster CIDR, or another size)."""
        index = self._index(cidr)
        if index is None:
            return False
        self._used.add(index)
        return True

    def occupy_all(self, cidrs: Iterable[str]) -> list[str]:
        """``occupy`` each; return the ones that are not this set's subnets."""
        return [c for c in cidrs if not self.occupy(c)]

    def allocate(self) -> str:
        """The next free subnet after the last one handed out (wrapping)."""
        if len(self._used) >= self.capacity:
            raise CidrExhausted(f"no free /{self.mask} left in {self.network} "
                                f"({self.capacity} in use)")
        index = self._next
        while index in self._used:
            index = (index + 1) % self.capacity
        self._used.add(index)
        self._next = (index + 1) % self.capacity
        return self._cidr(index)

    def release(self, cidr: str) -> bool:
        """Free ``cidr``; False if it wasn't in use (or isn't one of the subnets)."""
        index = self._index(cidr)
        if index is None or index not in self._used:
            return False
        self._used.discard(index)
        return True

    def _cidr(self, index: int) -> str:
        first = int(self.network.network_address) + index * self._step
        return str(ipaddress.ip_network((first, self.mask)))

    def _index(self, cidr: str) -> int | None:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            return None
        if (net.version != self.network.version or net.prefixlen != self.mask
                or not net.subnet_of(self.network)):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step
