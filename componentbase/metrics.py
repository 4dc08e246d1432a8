"""What every long-running miniplane process exports: its metrics and a status endpoint.

``Registry`` is one component's set of metrics on ``prometheus_client`` (a registry of
its own, never the library's global one, so tests and several components in one
process don't collide): histograms are the library's; gauges read a callback at
scrape time; values a component keeps in plain fields (counters bumped on a hot
path, or by code that only knows the field) are exported by a collector that reads
them at scrape time. ``StatusServer`` serves ``/metrics``, ``/healthz`` (``/livez``)
and ``/readyz`` on a socket the process bound early (so a busy port fails at start,
with one line). The controllers, dnsd, the node agent and the API server each keep
their own ``Metrics`` on a ``Registry``.

``_created`` series are off, as Kubernetes components expose none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable, Sequence

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class Histogram:
    """A ``prometheus_client`` histogram with labels given as a tuple of values.

    ``observe(v, ("x",))`` instead of ``.labels("x").observe(v)``, so callers on a hot
    path pass a tuple they already hold; ``count`` and ``total`` read one series back.
    """

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], *,
                 labels: Sequence[str] = (),
                 registry: prometheus_client.CollectorRegistry) -> None:
        self.name = name
        self._labels = tuple(labels)
        self._metric = prometheus_client.Histogram(
            name, help_text, labelnames=self._labels, buckets=tuple(buckets),
            registry=registry)

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        (self._metric.labels(*labels) if labels else self._metric).observe(value)

    def count(self, labels: tuple[str, ...] = ()) -> int:
        return int(self._sample("_count", labels))

    def total(self, labels: tuple[str, ...] = ()) -> float:
        return self._sample("_sum", labels)

    def _sample(self, suffix: str, labels: tuple[str, ...]) -> float:
        want = dict(zip(self._labels, labels, strict=True))
        for family in self._metric.collect():
            for sample in family.samples:
                if sample.name == self.name + suffix and sample.labels == want:
                    return float(sample.value)
        return 0.0


class Registry:
    """One component's metrics: histograms, scrape-time gauges and field collectors."""

    def __init__(self) -> None:
        self.prometheus = prometheus_client.CollectorRegistry()
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def histogram(self, name: str, help_text: str, buckets: Sequence[float], *,
                  labels: Sequence[str] = ()) -> Histogram:
        return Histogram(name, help_text, buckets, labels=labels, registry=self.prometheus)

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
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            status, ctype, body = self.respond(head[:MAX_REQUEST_HEAD])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def respond(self, head: bytes) -> tuple[str, str, bytes]:
        """(status line, content type, body) for one request head."""
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return "200 OK", PROMETHEUS_TEXT, self.render().encode()
        for name, check in ((b"/healthz", self.health), (b"/livez", self.health),
                            (b"/readyz", self.readiness)):
            if path == name:
                ok, why = check()
                if ok:
                    return "200 OK", "text/plain", b"ok\n"
                return "503 Service Unavailable", "text/plain", f"{why}\n".encode()
        return "404 Not Found", "text/plain", b"not found\n"
