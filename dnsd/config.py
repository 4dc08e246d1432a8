"""``mp-dnsd`` flags → a validated ``Config``; every rejection is unit-tested.

The command-line contract (DESIGN.md) is ``--server URL`` or ``--kubeconfig PATH``, ``--listen HOST:PORT``
(repeatable; default ``127.0.0.1:5353``), ``--cluster-domain D``, ``--ttl S``,
``--upstream HOST:PORT`` (repeatable), ``--metrics-listen HOST:PORT``; issue 4
adds ``--pod-records=enabled|disabled``. Extras: ``--upstream-timeout``,
``--log-level``. Issue 15 adds the limits: ``--max-udp-size``,
``--rrl-responses-per-second``, ``--rrl-slip``, ``--max-tcp-connections``,
``--max-tcp-connections-per-client``, ``--tcp-idle-timeout``. Issue 18 adds the host's
upstreams, ``--upstream-resolv-conf PATH`` (``resolvconf.py``), and the cache of
forwarded answers: ``--cache-size``, ``--cache-success-ttl``, ``--cache-denial-ttl``,
``--cache-servfail-ttl`` (``cache.py``).

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

from client.config import SERVER_HELP
from componentbase import flags
from componentbase.flags import Listen
from dnsd import cache, resolvconf
from dnsd.rrl import DEFAULT_SLIP
from dnsd.server import MAX_TCP_CLIENTS, MAX_TCP_PER_CLIENT, TCP_IDLE_TIMEOUT
from dnsd.upstream import DEFAULT_TIMEOUT, Server
from dnsd.wire import CLASSIC_UDP_LIMIT, MAX_UDP_CAP, SERVER_UDP_PAYLOAD

DEFAULT_LISTEN = "127.0.0.1:5353"
MAX_TTL = 3600  # CoreDNS's bound: longer TTLs make deleted Services linger in caches
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Config:
    server: str | None
    kubeconfig: str | None
    listen: tuple[Listen, ...]
    cluster_domain: str  # lower case, no trailing dot
    ttl: int
    upstreams: tuple[Server, ...]
    upstream_timeout: float
    metrics_listen: Listen | None
    pod_records: bool
    log_level: str
    max_udp_size: int = SERVER_UDP_PAYLOAD
    rrl_responses_per_second: int = 0  # 0: no rate limiting
    rrl_slip: int = DEFAULT_SLIP
    max_tcp_connections: int = MAX_TCP_CLIENTS
    max_tcp_connections_per_client: int = MAX_TCP_PER_CLIENT
    tcp_idle_timeout: float = TCP_IDLE_TIMEOUT
    upstream_resolv_conf: str | None = None  # where ``upstreams`` came from, if a file
    upstream_skipped: tuple[str, ...] = ()  # the file's nameservers left out, and why
    forward_cache: cache.Limits = cache.Limits()

    @property
    def local_ips(self) -> tuple[str, ...]:
        """Specific listen addresses (not wildcards), for the NS glue."""
        ips: dict[str, None] = {}
        for spec in self.listen:
            if not ipaddress.ip_address(spec.host).is_unspecified:
                ips.setdefault(spec.host)
        return tuple(ips)


def _parser() -> argparse.ArgumentParser:
    p = flags.Parser(prog="mp-dnsd", description="miniplane cluster DNS: answers the cluster "
                     "zone from Services and EndpointSlices watched on the API server")
    p.add_argument("--server", help=SERVER_HELP)
    p.add_argument("--kubeconfig", metavar="PATH",
                   help="kubeconfig with the CA and dnsd's credentials (and the server, "
                        "unless --server is given)")
    p.add_argument("--listen", action="append", metavar="[netns:NAME:]HOST:PORT",
                   type=flags.typed(parse_listen, "listen"),
                   help=f"UDP+TCP address to serve on, repeatable (default {DEFAULT_LISTEN})")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="D",
                   type=flags.typed(parse_domain, "domain"))
    p.add_argument("--ttl", default=5, metavar="S", type=flags.integer(0, MAX_TTL),
                   help=f"answer TTL, 0-{MAX_TTL} (default 5)")
    p.add_argument("--upstream", action="append", metavar="HOST:PORT",
                   type=flags.typed(parse_upstream, "upstream"),
                   help="forward names outside the zone here, repeatable (else REFUSED)")
    p.add_argument("--upstream-resolv-conf", metavar="PATH",
                   help="forward names outside the zone to the nameservers of this "
                        "resolv.conf (the host's: /etc/resolv.conf), leaving out this "
                        "server's own addresses; instead of --upstream")
    p.add_argument("--upstream-timeout", default=DEFAULT_TIMEOUT, metavar="DURATION",
                   type=flags.duration(maximum=60.0))
    p.add_argument("--metrics-listen", metavar="[HOST]:PORT",
                   type=flags.typed(parse_metrics_listen, "listen"),
                   help="serve /metrics, /healthz and /readyz here (default: off); "
                        "':PORT' is loopback, and /metrics answers loopback callers only")
    p.add_argument("--pod-records", default="enabled", choices=("enabled", "disabled"),
                   help="answer a-b-c-d.<ns>.pod.<zone> (kubeadm's 'pods insecure')")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.add_argument("--max-udp-size", default=SERVER_UDP_PAYLOAD, metavar="BYTES",
                   type=flags.integer(CLASSIC_UDP_LIMIT, MAX_UDP_CAP),
                   help=f"largest UDP reply whatever the client's EDNS buffer size, "
                        f"{CLASSIC_UDP_LIMIT}-{MAX_UDP_CAP} (default {SERVER_UDP_PAYLOAD}); "
                        "larger answers are truncated (TC) and retried over TCP")
    p.add_argument("--rrl-responses-per-second", default=0, metavar="N",
                   type=flags.integer(0, 1_000_000),
                   help="UDP responses per second to one client /24 (IPv4) or /56 (IPv6) "
                        "before dropping; 0 turns rate limiting off (default 0)")
    p.add_argument("--rrl-slip", default=DEFAULT_SLIP, metavar="N",
                   type=flags.integer(0, 10),
                   help="answer every Nth rate-limited response with an empty truncated "
                        f"reply so real clients retry over TCP; 0 drops all (default "
                        f"{DEFAULT_SLIP})")
    p.add_argument("--max-tcp-connections", default=MAX_TCP_CLIENTS, metavar="N",
                   type=flags.integer(1, 100_000),
                   help=f"TCP connections open at once; more are closed at once "
                        f"(default {MAX_TCP_CLIENTS})")
    p.add_argument("--max-tcp-connections-per-client", default=MAX_TCP_PER_CLIENT,
                   metavar="N", type=flags.integer(1, 100_000),
                   help=f"TCP connections open at once from one address "
                        f"(default {MAX_TCP_PER_CLIENT})")
    p.add_argument("--tcp-idle-timeout", default=TCP_IDLE_TIMEOUT, metavar="DURATION",
                   type=flags.duration(maximum=3600.0),
                   help=f"close a TCP connection that sends or reads nothing this long "
                        f"(default {TCP_IDLE_TIMEOUT:g}s)")
    p.add_argument("--cache-size", default=cache.DEFAULT_SIZE, metavar="N",
                   type=flags.integer(0, 1_000_000),
                   help=f"forwarded answers kept, the least recently used evicted; 0 turns "
                        f"the cache off (default {cache.DEFAULT_SIZE})")
    p.add_argument("--cache-success-ttl", default=cache.SUCCESS_TTL, metavar="S",
                   type=flags.integer(0, 86400),
                   help=f"longest a forwarded answer is kept, whatever its TTL "
                        f"(default {cache.SUCCESS_TTL})")
    p.add_argument("--cache-denial-ttl", default=cache.DENIAL_TTL, metavar="S",
                   type=flags.integer(0, 86400),
                   help=f"longest a forwarded NXDOMAIN or NODATA is kept, whatever its "
                        f"SOA says (default {cache.DENIAL_TTL})")
    p.add_argument("--cache-servfail-ttl", default=cache.SERVFAIL_TTL, metavar="S",
                   type=flags.integer(0, 300),
                   help=f"how long a SERVFAIL (no upstream answered) is kept "
                        f"(default {cache.SERVFAIL_TTL})")
    return p


def parse_args(argv: Sequence[str] | None) -> Config:
    """Parse and validate; a bad flag exits 2 with argparse's one line on stderr."""
    parser = _parser()
    args = parser.parse_args(argv)
    listen = tuple(args.listen or [parse_listen(DEFAULT_LISTEN)])
    upstreams: tuple[Server, ...] = tuple(args.upstream or ())
    for up in upstreams:
        if (spec := resolvconf.loops_back(up, listen, wildcard=True)) is not None:
            parser.error(f"--upstream {up} is this server's own --listen {spec}: "
                         "queries would loop")
    skipped: tuple[str, ...] = ()
    if args.upstream_resolv_conf is not None:
        if upstreams:
            parser.error("--upstream and --upstream-resolv-conf: give one or the other")
        found = _resolv_conf(parser, args.upstream_resolv_conf, listen)
        upstreams, skipped = found.servers, found.skipped
    return Config(
        server=args.server,
        kubeconfig=args.kubeconfig,
        listen=listen,
        cluster_domain=args.cluster_domain,
        ttl=args.ttl,
        upstreams=upstreams,
        upstream_timeout=args.upstream_timeout,
        metrics_listen=args.metrics_listen,
        pod_records=args.pod_records == "enabled",
        log_level=args.log_level,
        max_udp_size=args.max_udp_size,
        rrl_responses_per_second=args.rrl_responses_per_second,
        rrl_slip=args.rrl_slip,
        max_tcp_connections=args.max_tcp_connections,
        max_tcp_connections_per_client=args.max_tcp_connections_per_client,
        tcp_idle_timeout=args.tcp_idle_timeout,
        upstream_resolv_conf=args.upstream_resolv_conf,
        upstream_skipped=skipped,
        forward_cache=cache.Limits(args.cache_size, args.cache_success_ttl, args.cache_denial_ttl,
                           args.cache_servfail_ttl),
    )


def _resolv_conf(parser: argparse.ArgumentParser, path: str,
                 listen: Sequence[Listen]) -> resolvconf.Found:
    """The file's usable nameservers; none (or no file) is an error, not a silent
    REFUSED for every outside name."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            found = resolvconf.upstreams(f.read(), listen)
    except OSError as exc:
        parser.error(f"--upstream-resolv-conf {path}: {exc.strerror or exc}")
    if not found.servers:
        why = "; ".join(found.skipped) or "no nameserver line"
        parser.error(f"--upstream-resolv-conf {path}: no usable nameserver ({why})")
    return found


def parse_metrics_listen(value: str) -> Listen:
    """As ``parse_listen``; ``:PORT`` is loopback (metrics stay on the host)."""
    return parse_listen(value, default_host="127.0.0.1")


def parse_listen(value: str, default_host: str | None = None) -> Listen:
    return flags.parse_listen(value, default_host=default_host)


def parse_upstream(value: str) -> Server:
    return Server(*flags.parse_host_port(value, ip_only=True))


def parse_domain(value: str) -> str:
    """A domain name, lower case and without the trailing dot."""
    domain = value.strip().rstrip(".").lower()
    labels = domain.split(".") if domain else []
    if not labels or len(domain) > 253 or not all(_LABEL.match(lab) for lab in labels):
        raise ValueError(f"{value!r}: not a valid domain name")
    return domain
