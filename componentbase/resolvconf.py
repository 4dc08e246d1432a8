"""The ``nameserver`` lines of a resolv.conf(5), for dnsd and ``mpctl cluster up``.

Pure: one line per nameserver, comments from ``#`` or ``;``, the address an IP
(IPv6 with an optional ``%scope``). The C library reads at most three; a DNS server
forwarding to them may use them all, so they are all returned, in order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Nameservers:
    addresses: tuple[str, ...]  # normalised, in order, without duplicates
    invalid: tuple[str, ...]  # the values that are not IP addresses


def nameservers(text: str) -> Nameservers:
    addresses: dict[str, None] = {}
    invalid: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        # a scope (fe80::1%eth0) is kept: the socket layer needs it for link-local
        address, _, scope = words[1].partition("%")
        try:
            addresses.setdefault(str(ipaddress.ip_address(address))
                                 + (f"%{scope}" if scope else ""))
        except ValueError:
            invalid.append(words[1])
    return Nameservers(tuple(addresses), tuple(invalid))
