"""``mp-dnsd`` flags → a validated ``Config``; pure, so every rejection is unit-tested.

The command-line contract (DESIGN.md) is ``--server URL``, ``--listen HOST:PORT``
(repeatable; default ``127.0.0.1:5353``), ``--cluster-domain D``, ``--ttl S``,
``--upstream HOST:PORT`` (repeatable), ``--metrics-listen HOST:PORT``; issue 4
adds ``--pod-records=enabled|disabled``. Extras: ``--upstream-timeout``,
``--log-level``.

A listen address may name a network namespace: ``netns:NAME:HOST:PORT``
(``netns:mp-c1-fabric:10.250.0.2:53``) binds inside ``/run/netns/NAME``. IPv6
hosts go in brackets: ``[::1]:5353``.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dnsd.upstream import DEFAULT_TIMEOUT, Server

DEFAULT_LISTEN = "127.0.0.1:5353"
MAX_TTL = 3600  # CoreDNS's bound: longer TTLs make deleted Services linger in caches
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class UsageError(ValueError):
    """A flag is wrong; the message is one line, fit for stderr."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    netns: str = ""

    def __str__(self) -> str:
        where = f"[{self.host}]" if ":" in self.host else self.host
        return (f"netns:{self.netns}:" if self.netns else "") + f"{where}:{self.port}"


@dataclass(frozen=True)
class Config:
    server: str | None
    listen: tuple[Listen, ...]
    cluster_domain: str  # lower case, no trailing dot
    ttl: int
    upstreams: tuple[Server, ...]
    upstream_timeout: float
    metrics_listen: Listen | None
    pod_records: bool
    log_level: str

    @property
    def local_ips(self) -> tuple[str, ...]:
        """Specific listen addresses (not wildcards), for the NS glue."""
        ips: dict[str, None] = {}
        for spec in self.listen:
            if not ipaddress.ip_address(spec.host).is_unspecified:
                ips.setdefault(spec.host)
        return tuple(ips)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mp-dnsd", description="miniplane cluster DNS: answers the cluster "
                "zone from Services and EndpointSlices watched on the API server")
    p.add_argument("--server", help="API server URL (else MINIPLANE_SERVER, kubeconfig, "
                   "http://127.0.0.1:6443)")
    p.add_argument("--listen", action="append", metavar="[netns:NAME:]HOST:PORT",
                   help=f"UDP+TCP address to serve on, repeatable (default {DEFAULT_LISTEN})")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="D")
    p.add_argument("--ttl", default="5", metavar="S", help="answer TTL, 0-3600 (default 5)")
    p.add_argument("--upstream", action="append", metavar="HOST:PORT",
                   help="forward names outside the zone here, repeatable (else REFUSED)")
    p.add_argument("--upstream-timeout", default=str(DEFAULT_TIMEOUT), metavar="SECONDS")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve /metrics, /healthz and /readyz here")
    p.add_argument("--pod-records", default="enabled", choices=("enabled", "disabled"),
                   help="answer a-b-c-d.<ns>.pod.<zone> (kubeadm's 'pods insecure')")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    return p


def parse_args(argv: Sequence[str] | None) -> Config:
    """Parse and validate; raises ``UsageError`` with a one-line message."""
    args = _parser().parse_args(argv)
    listen = tuple(parse_listen(v, "--listen") for v in (args.listen or [DEFAULT_LISTEN]))
    upstreams = tuple(Server(*parse_host_port(v, "--upstream")) for v in args.upstream or ())
    for up in upstreams:
        for spec in listen:
            if not spec.netns and spec.port == up.port and (
                    spec.host == up.host or ipaddress.ip_address(spec.host).is_unspecified):
                raise UsageError(f"--upstream {up} is this server's own --listen {spec}: "
                                 "queries would loop")
    metrics = parse_listen(args.metrics_listen, "--metrics-listen") \
        if args.metrics_listen else None
    return Config(
        server=args.server,
        listen=listen,
        cluster_domain=parse_domain(args.cluster_domain),
        ttl=_int_in(args.ttl, "--ttl", 0, MAX_TTL),
        upstreams=upstreams,
        upstream_timeout=_seconds(args.upstream_timeout, "--upstream-timeout"),
        metrics_listen=metrics,
        pod_records=args.pod_records == "enabled",
        log_level=args.log_level,
    )


def parse_listen(value: str, flag: str) -> Listen:
    """``HOST:PORT``, ``[V6]:PORT`` or ``netns:NAME:HOST:PORT``."""
    netns = ""
    if value.startswith("netns:"):
        _, netns, rest = value.split(":", 2) if value.count(":") >= 2 else ("", "", "")
        if not _NETNS.match(netns) or netns in (".", ".."):
            raise UsageError(f"{flag} {value!r}: expected netns:NAME:HOST:PORT")
        value = rest
    host, port = parse_host_port(value, flag)
    return Listen(host, port, netns)


def parse_host_port(value: str, flag: str) -> tuple[str, int]:
    """``10.0.0.1:53`` / ``[fd00::1]:53`` → (host, port). The host must be an IP address:
    names would need resolving, and a DNS server can't lean on DNS to start."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
        if ":" in host:
            raise UsageError(f"{flag} {value!r}: put an IPv6 address in brackets, "
                             "[::1]:5353")
    if not sep or not host:
        raise UsageError(f"{flag} {value!r}: expected HOST:PORT")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: {host!r} is not an IP address") from None
    return str(ip), _int_in(port, flag, 0, 65535)


def parse_domain(value: str) -> str:
    domain = value.strip().rstrip(".").lower()
    labels = domain.split(".") if domain else []
    if not labels or len(domain) > 253 or not all(_LABEL.match(lab) for lab in labels):
        raise UsageError(f"--cluster-domain {value!r}: not a valid domain name")
    return domain


def _int_in(value: str, flag: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: not an integer") from None
    if not low <= number <= high:
        raise UsageError(f"{flag} {value}: must be between {low} and {high}")
    return number


def _seconds(value: str, flag: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: not a number of seconds") from None
    if not 0 < number <= 60:
        raise UsageError(f"{flag} {value}: must be more than 0 and at most 60")
    return number
