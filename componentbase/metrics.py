"""What every long-running miniplane process exports: its metrics and a status endpoint.

``Registry`` is one component's set of metrics on ``prometheus_client`` (a registry of
its own, never the library's global one, so tests and several components in one
process don't collide): histograms are the library's; gauges read a callback at
scrape time; values a component keeps in plain fields (counters bumped on a hot
path, or by code that only knows the field) are exported by a collector that reads
them at scrape time. ``StatusServer`` serves ``/metrics``, ``/healthz`` (``/livez``)
and ``/readyz`` on a socket the process bound early (so a busy port fails at start,
with one line). Health is open to anyone who can connect (probes, healthchecks);
``/metrics`` has no authentication, so it answers only callers on loopback, as
kube-proxy keeps its metrics on ``127.0.0.1`` by default: a status socket bound to
another address for probes does not publish the metrics with it. The controllers, dnsd, the node agent and the API server each keep
their own ``Metrics`` on a ``Registry``.

``_created`` series are off, as Kubernetes components expose none.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ipaddress
import math
import socket
from collections.abc import Callable, Iterable, Sequence

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Kubernetes components expose no `_created` series; the library has no annotation here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

Check = Callable[[], tuple[bool, str]]

MAX_REQUEST_HEAD = 8192  # a scraper's request line and headers; anything bigger is abuse
REQUEST_TIMEOUT = 5.0  # seconds to send a request head before the connection is dropped
# What generate_latest writes (the library's CONTENT_TYPE_LATEST may name a newer one).
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _always_ok() -> tuple[bool, str]:
    return True, ""


class _Callback(Collector):
    """Families made at scrape time by a function (fields, callbacks)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


class Histogram(Collector):
    """A histogram whose ``observe`` is one list increment; ``prometheus_client`` exposes it.

    ``prometheus_client.Histogram.observe`` takes a lock and walks the buckets: about
    2 µs here, against 0.4 µs for a ``bisect`` into a list, and dnsd observes every
    query (tens of thousands a second on one core). So the counts are ours and the
    family is built at scrape time as a ``HistogramMetricFamily``, the library's way
    for custom collectors: names, text format and registry stay the library's.
    Observed from one thread (the component's event loop), as every caller does.
    ``observe(v, ("x",))`` takes the label values as a tuple the caller already holds.
    """

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], *,
                 labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help_text = help_text
        self.buckets = tuple(sorted(buckets))
        self.labels = tuple(labels)
        # the ``le`` labels as the library writes them ("0.1", "1.0", "+Inf"); it has no
        # annotations on this helper
        self._bounds: tuple[str, ...] = tuple(
            floatToGoString(b) for b in (*self.buckets, math.inf))  # type: ignore[no-untyped-call]
        # per label values: a count per bucket and +Inf (not cumulative), then sum, count
        self.series: dict[tuple[str, ...], list[float]] = {}
        if not self.labels:
            self._counts(())  # an unlabelled histogram shows its zero buckets at once

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        counts = self.series.get(labels) or self._counts(labels)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-2] += value
        counts[-1] += 1

    def count(self, labels: tuple[str, ...] = ()) -> int:
        counts = self.series.get(labels)
        return int(counts[-1]) if counts else 0

    def total(self, labels: tuple[str, ...] = ()) -> float:
        counts = self.series.get(labels)
        return counts[-2] if counts else 0.0

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.help_text, labels=self.labels)
        for labels, counts in sorted(self.series.items()):
            cumulative, buckets = 0.0, []
            for bound, n in zip(self._bounds, counts, strict=False):
                cumulative += n
                buckets.append((bound, cumulative))
            family.add_metric(list(labels), buckets, counts[-2])
        yield family

    def _counts(self, labels: tuple[str, ...]) -> list[float]:
        counts = self.series[labels] = [0.0] * (len(self.buckets) + 3)
        return counts


class Registry:
    """One component's metrics: histograms, scrape-time gauges and field collectors."""

    def __init__(self) -> None:
        self.prometheus = prometheus_client.CollectorRegistry()
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def histogram(self, name: str, help_text: str, buckets: Sequence[float], *,
                  labels: Sequence[str] = ()) -> Histogram:
        histogram = Histogram(name, help_text, buckets, labels=labels)
        self.prometheus.register(histogram)
        return histogram

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Export ``read()`` as gauge ``name``, read at scrape time (a later call with
        the same name replaces the callback). They come after the families
        registered before the first one."""
        if not self._gauges:
            self.collector(self._collect_gauges)
        self._gauges[name] = (help_text, read)

    def collector(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Export the families ``collect()`` yields at each scrape."""
        self.prometheus.register(_Callback(collect))

    def render(self) -> str:
        """The Prometheus text exposition of everything registered."""
        return prometheus_client.generate_latest(self.prometheus).decode()

    def _collect_gauges(self) -> Iterable[Metric]:
        for name, (help_text, read) in sorted(self._gauges.items()):
            yield GaugeMetricFamily(name, help_text, value=float(read()))


def is_loopback_peer(peer: object) -> bool:
    """Whether a socket's peer address (``getpeername()``) is on loopback."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return False
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


class StatusServer:
    """``GET /metrics``, ``/healthz``, ``/livez``, ``/readyz`` over HTTP/1.1, one request each."""

    def __init__(self, render: Callable[[], str], *, readiness: Check = _always_ok,
                 health: Check = _always_ok) -> None:
        self.render = render
        self.readiness = readiness
        self.health = health
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound socket (bound early, so a taken port fails at start)."""
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = self.respond(
                head[:MAX_REQUEST_HEAD],
                from_loopback=is_loopback_peer(writer.get_extra_info("peername")))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def respond(self, head: bytes, *, from_loopback: bool) -> tuple[str, str, bytes]:
        """(status line, content type, body) for one request head; ``/metrics`` only
        ``from_loopback``."""
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            if not from_loopback:
                return ("403 Forbidden", "text/plain",
                        b"metrics are served to loopback callers only\n")
            return "200 OK", PROMETHEUS_TEXT, self.render().encode()
        for name, check in ((b"/healthz", self.health), (b"/livez", self.health),
                            (b"/readyz", self.readiness)):
            if path == name:
                ok, why = check()
                if ok:
                    return "200 OK", "text/plain", b"ok\n"
                return "503 Service Unavailable", "text/plain", f"{why}\n".encode()
        return "404 Not Found", "text/plain", b"not found\n"
