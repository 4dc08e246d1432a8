"""Pod IP allocation in the node's pod CIDR: pure choice, JSON file as the record.

The record (``<state-dir>/ipam.json``: IP → pod uid) is written before an IP is
used, so an agent restart never hands a live IP out twice. The network address,
the gateway (``.1``) and the broadcast are never given.
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


def next_free(cidr: str, used: Mapping[str, str] | set[str]) -> str:
    """The lowest address of ``cidr`` that is neither reserved nor in ``used``."""
    net = ipaddress.ip_network(cidr, strict=False)
    for ip in net.hosts():
        if ip == net.network_address + 1:
            continue
        if str(ip) not in used:
            return str(ip)
    raise Exhausted(f"no free address in {cidr}")


class Ipam:
    """Allocations for one pod CIDR, persisted in ``path``."""

    def __init__(self, path: Path, cidr: str) -> None:
        self.path = path
        self.cidr = cidr
        self.owners: dict[str, str] = {}
        self._lock = threading.Lock()  # workers allocate from threads concurrently
        if path.exists():
            data = json.loads(path.read_text() or "{}")
            if data.get("cidr") == cidr:
                self.owners = dict(data.get("allocations", {}))

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cidr": self.cidr, "allocations": self.owners},
                                  sort_keys=True, indent=1))
        os.replace(tmp, self.path)

    def allocate(self, uid: str) -> str:
        """The IP of ``uid`` (the same one again if it already has one)."""
        with self._lock:
            for ip, owner in self.owners.items():
                if owner == uid:
                    return ip
            ip = next_free(self.cidr, self.owners)
            self.owners[ip] = uid
            self._save()
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            gone = [ip for ip, owner in self.owners.items() if owner == uid]
            for ip in gone:
                del self.owners[ip]
            if gone:
                self._save()
