"""Pod IP allocation in the node's pod CIDR: pure choice, JSON file as the record.

The record (``<state-dir>/ipam.json``: IP → pod uid, and the last IP handed out)
is written before an IP is used, so an agent restart never hands a live IP out
twice. Allocation goes round the range from the last IP given, as CNI's
host-local IPAM does: a just-freed IP is not reused at once, so neighbour caches,
conntrack entries and other nodes' rules that still name it have time to go.
The network address, the gateway (``.1``) and the broadcast are never given.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path


class Exhausted(RuntimeError):
    """No free address is left in the pod CIDR."""


def next_free(cidr: str, used: Mapping[str, str] | set[str], after: str | None = None) -> str:
    """The first address of ``cidr`` after ``after`` (wrapping round) that is neither
    reserved nor in ``used``; from the start of the range when ``after`` is None."""
    net = ipaddress.ip_network(cidr, strict=False)
    first = int(net.network_address) + 2  # .0 is the network, .1 the gateway
    last = int(net.broadcast_address) - 1
    size = last - first + 1
    start = first
    if after is not None and first <= int(ipaddress.ip_address(after)) <= last:
        start = int(ipaddress.ip_address(after)) + 1
    address = type(net.network_address)  # IPv4Address or IPv6Address, as the CIDR is
    for i in range(max(size, 0)):
        ip = str(address(first + (start - first + i) % size))
        if ip not in used:
            return ip
    raise Exhausted(f"no free address in {cidr}")


def _address_in(text: object, cidr: str) -> str | None:
    """``text`` if it is an address of ``cidr`` (a damaged record must not stop pods)."""
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return str(ip) if ip in ipaddress.ip_network(cidr, strict=False) else None


class Ipam:
    """Allocations for one pod CIDR, persisted in ``path``."""

    def __init__(self, path: Path, cidr: str) -> None:
        self.path = path
        self.cidr = cidr
        self.owners: dict[str, str] = {}
        self.last: str | None = None
        self._lock = threading.Lock()  # workers allocate from threads concurrently
        if path.exists():
            data = json.loads(path.read_text() or "{}")
            if data.get("cidr") == cidr:
                self.owners = dict(data.get("allocations", {}))
                self.last = _address_in(data.get("last"), cidr)

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cidr": self.cidr, "allocations": self.owners, "last": self.last},
                                  sort_keys=True, indent=1))
        os.replace(tmp, self.path)

    def allocate(self, uid: str) -> str:
        """The IP of ``uid`` (the same one again if it already has one)."""
        with self._lock:
            for ip, owner in self.owners.items():
                if owner == uid:
                    return ip
            ip = next_free(self.cidr, self.owners, self.last)
            self.owners[ip] = uid
            self.last = ip
            self._save()
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            gone = [ip for ip, owner in self.owners.items() if owner == uid]
            for ip in gone:
                del self.owners[ip]
            if gone:
                self._save()
