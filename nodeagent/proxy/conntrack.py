"""Clearing stale UDP conntrack entries after endpoints change.

A UDP "connection" follows its conntrack entry, not the rules: a client that keeps
sending from one source port (a DNS resolver, statsd) would keep reaching an
endpoint that was removed until the entry times out (30–120 s), and a flow that
started while a Service had no endpoints would never be DNATed. So after every
successful sync, ``stale_flows`` (pure) compares the UDP Service ports' endpoint
sets before and after, and ``Conntrack.delete`` runs ``conntrack -D`` inside the
namespace for each filter:

- an endpoint that left a Service port: flows to the ClusterIP:port, to each
  external IP and load balancer IP on that port (and to the NodePort) whose reply
  source is that endpoint;
- a Service port that went from no endpoints to some: every flow to those
  destinations, which were all created without DNAT.

TCP is never flushed; its connections end by themselves (reference §8.6).
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nodeagent.proxy.model import Endpoint, ServicePort
from nodeagent.proxy.ruleset import usable_endpoints

log = logging.getLogger(__name__)

_DELETED = re.compile(r"(\d+) flow entries have been deleted")
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class UdpPort:
    """What conntrack cleanup needs to know about one UDP Service port."""

    cluster_ip: str
    port: int
    node_port: int | None
    endpoints: frozenset[str]  # endpoint IPs traffic may be sent to
    external: tuple[str, ...] = ()  # external IPs and load balancer IPs, on ``port``

    @property
    def destinations(self) -> tuple[str, ...]:
        return (self.cluster_ip, *self.external)


def udp_port(sp: ServicePort, endpoints: Sequence[Endpoint], node_name: str, *,
             zone: str = "") -> UdpPort | None:
    """The UDP facts of ``sp``; None for other protocols."""
    if sp.protocol != "UDP":
        return None
    cluster, local = usable_endpoints(endpoints, node_name, zone=zone)
    return UdpPort(cluster_ip=sp.cluster_ip, port=sp.port, node_port=sp.node_port,
                   endpoints=frozenset(e.ip for e in (*cluster, *local)),
                   external=(*sp.external_ips, *sp.load_balancer_ips))


def stale_flows(old: Mapping[str, UdpPort], new: Mapping[str, UdpPort]
                ) -> list[tuple[str, ...]]:
    """``conntrack -D`` arguments clearing flows that the new rules would not create."""
    filters: list[tuple[str, ...]] = []
    for key in sorted(old):
        before, after = old[key], new.get(key)
        gone = before.endpoints - (after.endpoints if after else frozenset())
        for ip in sorted(gone):
            filters += [("-p", "udp", "--orig-dst", dst, "--orig-port-dst", str(before.port),
                         "--reply-src", ip) for dst in before.destinations]
            if before.node_port is not None:
                filters.append(("-p", "udp", "--orig-port-dst", str(before.node_port),
                                "--reply-src", ip))
    for key in sorted(new):
        after = new[key]
        prior = old.get(key)
        if after.endpoints and (prior is None or not prior.endpoints):
            filters += [("-p", "udp", "--orig-dst", dst, "--orig-port-dst", str(after.port))
                        for dst in after.destinations]
            if after.node_port is not None:
                filters.append(("-p", "udp", "--orig-port-dst", str(after.node_port)))
    return filters


class Conntrack:
    """Runs ``conntrack -D`` in one namespace (None: the agent's own)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns

    def delete(self, args: Sequence[str]) -> int:
        """Delete matching entries; return how many went. ``conntrack`` exits 1 when
        nothing matched, which is not an error here."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        try:
            result = subprocess.run([*prefix, "conntrack", "-D", *args], capture_output=True,
                                    text=True, timeout=TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("conntrack -D %s: %s", " ".join(args), exc)
            return 0
        found = _DELETED.search(result.stderr) or _DELETED.search(result.stdout)
        if found:
            return int(found.group(1))
        if result.returncode not in (0, 1):
            log.warning("conntrack -D %s failed: %s", " ".join(args), result.stderr.strip())
        return 0
