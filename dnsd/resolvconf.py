"""The upstreams of the host dnsd runs on: the ``nameserver`` lines of a resolv.conf.

``--upstream-resolv-conf /etc/resolv.conf`` is CoreDNS's ``forward . /etc/resolv.conf``
(the stock Kubernetes Corefile): names outside the cluster zone go where the host's
own resolver sends them. Read once, at start, as CoreDNS does.

Pure: ``upstreams(text, listen)`` takes the file's nameservers
(``componentbase.resolvconf``; port 53 always) and drops the servers that are dnsd
itself (``loops_back``): forwarding there would send each query round until it
times out (CoreDNS's ``loop`` plugin exists for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from componentbase.flags import Listen
from componentbase.resolvconf import nameservers
from dnsd.upstream import Server

DNS_PORT = 53


@dataclass(frozen=True)
class Found:
    """What a resolv.conf gives: the servers to use and those left out, with why."""

    servers: tuple[Server, ...]
    skipped: tuple[str, ...]  # "ADDRESS: reason", for the log and the error message


def loops_back(server: Server, listen: Sequence[Listen], *, wildcard: bool) -> Listen | None:
    """The ``--listen`` address ``server`` is, if it is one of dnsd's own: the same
    address and port in the namespace dnsd's upstream sockets are made in (the
    process's; a ``netns:`` listener is elsewhere). With ``wildcard``, a ``0.0.0.0``/``::``
    listener on the port counts for every address: right for an explicit ``--upstream``,
    but a resolv.conf's loopback stub behind a DNAT (Docker's ``127.0.0.11``) would be
    refused for it, so the file's servers are matched on the exact address only."""
    for spec in listen:
        if spec.netns or spec.port != server.port:
            continue
        if spec.host == server.host or (wildcard and spec.is_wildcard):
            return spec
    return None


def upstreams(text: str, listen: Sequence[Listen]) -> Found:
    """The file's nameservers in order, without duplicates and without dnsd's own
    addresses; what was left out and why."""
    parsed = nameservers(text)
    servers: list[Server] = []
    skipped = [f"{value}: not an IP address" for value in parsed.invalid]
    for address in parsed.addresses:
        server = Server(address, DNS_PORT)
        if (own := loops_back(server, listen, wildcard=False)) is not None:
            skipped.append(f"{address}: this server's own --listen {own} (a loop)")
        else:
            servers.append(server)
    return Found(tuple(servers), tuple(skipped))
