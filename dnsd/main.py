"""``mp-dnsd``: the cluster DNS server.

Wiring only: flags (``config``), sockets (``netns``), the zone and its index fed by
informers (``sync``), the listeners (``server``), forwarding (``upstream``, with the
cache of its answers, ``cache``) and the status endpoint (``metrics``). Sockets are bound before anything else, so a busy
port or a missing namespace fails at once with one line; then queries are
answered (SERVFAIL for would-be NXDOMAINs until the first sync) while the
informers list and watch. SIGTERM or SIGINT stops it cleanly with exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from client.config import ClientConfig, ConfigError, load_config
from componentbase.startup import fail, setup_logging
from componentbase.tasks import run_until_first_done
from dnsd.cache import ForwardCache
from dnsd.config import Config, Listen, parse_args
from dnsd.index import Index
from dnsd.metrics import Metrics, StatusServer
from dnsd.names import split_name
from dnsd.netns import bound_socket
from dnsd.rrl import RateLimiter
from dnsd.server import DnsServer, TcpLimits
from dnsd.sync import Syncer
from dnsd.upstream import Upstream
from dnsd.wire import AnswerTable
from dnsd.zone import ZoneData

log = logging.getLogger("dnsd")


class Sockets:
    """Every listening socket, bound up front."""

    def __init__(self) -> None:
        self.udp: list[socket.socket] = []
        self.tcp: list[socket.socket] = []
        self.metrics: socket.socket | None = None

    def close(self) -> None:
        for sock in (*self.udp, *self.tcp, *([self.metrics] if self.metrics else [])):
            sock.close()


def open_sockets(config: Config) -> Sockets:
    """Bind UDP and TCP for each ``--listen`` and TCP for ``--metrics-listen``.

    Raises ``OSError`` naming the address that failed; nothing stays open then.
    """
    sockets = Sockets()
    try:
        for spec in config.listen:
            _bind(spec, socket.SOCK_DGRAM, sockets.udp)
            _bind(spec, socket.SOCK_STREAM, sockets.tcp)
        if config.metrics_listen is not None:
            holder: list[socket.socket] = []
            _bind(config.metrics_listen, socket.SOCK_STREAM, holder)
            sockets.metrics = holder[0]
    except OSError:
        sockets.close()
        raise
    return sockets


def _bind(spec: Listen, kind: int, into: list[socket.socket]) -> None:
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    try:
        into.append(bound_socket(spec.host, spec.port, kind, netns=spec.netns))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {spec} ({proto}): "
                      f"{exc.strerror or exc}") from exc


# Python's full garbage collection walks every tracked object: ~75 ms for the
# ~100k objects of 1,000 Services on a small VM, a stall every query in flight
# would wait out. Objects that survived until now are the index and caches,
# which live as long as the process, so they are frozen out of collections
# (``gc.freeze``); what accumulates later is collected and frozen every minute,
# a pass over only what is new.
GC_FREEZE_EVERY = 60.0


async def freeze_long_lived(ready: Callable[[], bool]) -> None:
    """Freeze the heap once the index is built, then again every ``GC_FREEZE_EVERY``."""
    while not ready():
        await asyncio.sleep(0.1)
    while True:
        gc.collect()
        gc.freeze()
        await asyncio.sleep(GC_FREEZE_EVERY)


async def serve(config: Config, sockets: Sockets, api: ClientConfig) -> int:
    """Run until SIGTERM/SIGINT (exit status 0), or until syncing fails for good (1)."""
    zone = ZoneData(split_name(config.cluster_domain), ttl=config.ttl,
                    pod_records=config.pod_records, local_ips=config.local_ips)
    table = AnswerTable(ra=bool(config.upstreams), max_udp=config.max_udp_size)
    metrics = Metrics()
    upstream = Upstream(list(config.upstreams), timeout=config.upstream_timeout) \
        if config.upstreams else None
    index = Index(zone, table, metrics, dynamic_chase=upstream is not None)
    syncer = Syncer(api, index)
    rrl = RateLimiter(config.rrl_responses_per_second, slip=config.rrl_slip) \
        if config.rrl_responses_per_second else None
    cache = ForwardCache(config.forward_cache) \
        if upstream is not None and config.forward_cache.size > 0 else None
    server = DnsServer(index, metrics, upstream, rrl=rrl, cache=cache, tcp=TcpLimits(
        config.max_tcp_connections, config.max_tcp_connections_per_client,
        config.tcp_idle_timeout))
    if cache is not None:
        metrics.forward_cache(cache)
    status = StatusServer(metrics.render, readiness=lambda: _not_ready_reason(syncer))
    metrics.gauge("dns_index_services", "Services in the index.", lambda: len(zone.services))
    metrics.gauge("dns_index_endpointslices", "EndpointSlices in the index.",
                  lambda: len(zone.slices))
    metrics.gauge("dns_precomputed_answers", "Answers held as wire bytes by the index.",
                  lambda: len(table.entries))
    metrics.gauge("dns_cached_answers", "Answers the slow path rendered, kept until what "
                  "they were read from changes.", lambda: len(table.cache))
    metrics.gauge("dns_ready", "1 when synced and every watch is connected.",
                  lambda: 1.0 if syncer.readiness()[0] else 0.0)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await server.start(sockets.udp, sockets.tcp)
    if sockets.metrics is not None:
        await status.start(sockets.metrics)
    log.info("serving %s on %s (udp+tcp)%s; ttl %ds; pod records %s; %s; API server %s",
             config.cluster_domain, ", ".join(str(s) for s in config.listen),
             f", metrics on {config.metrics_listen}" if config.metrics_listen else "",
             config.ttl, "enabled" if config.pod_records else "disabled",
             _forwarding(config),
             ", ".join(syncer.client.config.servers))
    log.info("limits: UDP replies up to %d bytes; %s; TCP %d connections, %d per client, "
             "idle %gs", config.max_udp_size,
             f"{config.rrl_responses_per_second} UDP responses/s per client prefix "
             f"(slip {config.rrl_slip})" if rrl else "no response rate limit",
             config.max_tcp_connections, config.max_tcp_connections_per_client,
             config.tcp_idle_timeout)
    status_code = 0
    try:
        await run_until_first_done({
            "syncer": syncer.run(), "gc": freeze_long_lived(lambda: index.live)}, stop=stop)
    except Exception as exc:
        log.error("index sync stopped: %r", exc)
        status_code = 1
    log.info("stopping")
    await server.stop()
    await status.stop()
    return status_code


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        api = load_config(server=config.server, kubeconfig=config.kubeconfig)
    except ConfigError as exc:
        return fail("mp-dnsd", exc, 2)
    setup_logging(config.log_level)
    try:
        sockets = open_sockets(config)
    except OSError as exc:
        return fail("mp-dnsd", exc.strerror or exc, 1)
    try:
        import uvloop  # noqa: PLC0415 - optional; 4-5x the UDP queries per second here
    except ImportError:
        uvloop = None  # type: ignore[assignment]  # mypy types the name as the module
    try:
        if uvloop is not None:
            return uvloop.run(serve(config, sockets, api))
        return asyncio.run(serve(config, sockets, api))
    except KeyboardInterrupt:
        return 0
    finally:
        sockets.close()


if __name__ == "__main__":
    sys.exit(main())


def _forwarding(config: Config) -> str:
    """How names outside the zone are answered, for the start-up line."""
    if not config.upstreams:
        return "refusing other names"
    text = "forwarding other names to " + ", ".join(str(u) for u in config.upstreams)
    if config.upstream_resolv_conf:
        text += f" (from {config.upstream_resolv_conf}"
        text += f"; left out {', '.join(config.upstream_skipped)})" \
            if config.upstream_skipped else ")"
    limits = config.forward_cache
    if limits.size:
        text += (f", caching {limits.size} answers (at most {limits.success_ttl}s, "
                 f"denials {limits.denial_ttl}s, SERVFAIL {limits.servfail_ttl}s)")
    return text


def _not_ready_reason(syncer: Syncer) -> tuple[bool, str]:
    ready, why = syncer.readiness()
    return ready, f"not ready: {why}"
