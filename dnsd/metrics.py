"""dnsd's metrics, in Prometheus text format, and the small HTTP endpoint serving them.

Counting sits on the query fast path, so the hot counters are plain lists
indexed by rcode and histogram bucket, not labelled objects: one list
increment and one ``bisect`` per query. Names follow CoreDNS's where it has one
(``dns_requests_total``, ``dns_responses_total{rcode}``,
``dns_request_duration_seconds``, ``dns_programming_duration_seconds{service_kind}``).

The endpoint answers ``GET /metrics``, ``/healthz`` (the process is up) and
``/readyz`` (200 only when the index has synced and every watch is connected).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence

import dns.rcode

log = logging.getLogger(__name__)

# Query latency inside the server: a fast-path answer takes tens of microseconds,
# a forwarded one up to the upstream timeout, so buckets span 25 µs to 5 s.
QUERY_BUCKETS = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Programming latency: from a write to its answer being served; milliseconds when
# healthy, minutes when a watch was down. CoreDNS's range (1 ms … ~17 min) coarsened.
PROGRAMMING_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                       10.0, 30.0, 60.0, 300.0, 1020.0)
MAX_RCODE = 24  # rcodes 0..23 are defined; BADVERS (16) is the largest dnsd sends


class Histogram:
    """Cumulative-bucket histogram with optional labels, Prometheus semantics."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        counts = self.series.get(labels)
        if counts is None:
            # one slot per bucket, +Inf, then sum and count
            counts = self.series[labels] = [0] * (len(self.buckets) + 3)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-2] += value
        counts[-1] += 1

    def count(self, labels: tuple[str, ...] = ()) -> int:
        counts = self.series.get(labels)
        return int(counts[-1]) if counts else 0

    def lines(self, name: str, label_names: tuple[str, ...] = ()) -> list[str]:
        out: list[str] = []
        for labels, counts in sorted(self.series.items()):
            base = [f'{k}="{v}"' for k, v in zip(label_names, labels, strict=True)]
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=False):
                running += int(n)
                le = "+Inf" if bound == float("inf") else repr(bound)
                labels_text = ",".join([*base, f'le="{le}"'])
                out.append(f"{name}_bucket{{{labels_text}}} {running}")
            suffix = f"{{{','.join(base)}}}" if base else ""
            out.append(f"{name}_sum{suffix} {counts[-2]!r}")
            out.append(f"{name}_count{suffix} {int(counts[-1])}")
        return out


class Metrics:
    """Every metric dnsd exports. Hot-path fields are public for direct increments."""

    def __init__(self) -> None:
        self.requests = {"udp": 0, "tcp": 0}
        self.responses = [0] * MAX_RCODE
        self.fast_path = 0
        self.slow_path = 0
        self.malformed = 0
        self.forwarded = {"ok": 0, "timeout": 0, "error": 0}
        self.query_duration = Histogram(QUERY_BUCKETS)
        self.programming = Histogram(PROGRAMMING_BUCKETS)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Export ``fn()`` as gauge ``name``, read at scrape time."""
        self.gauges[name] = (help_text, fn)

    def render(self) -> str:
        lines = [
            "# HELP dns_requests_total DNS queries received, by transport.",
            "# TYPE dns_requests_total counter",
            *(f'dns_requests_total{{proto="{p}"}} {n}' for p, n in self.requests.items()),
            "# HELP dns_responses_total DNS responses sent, by rcode.",
            "# TYPE dns_responses_total counter",
            *(f'dns_responses_total{{rcode="{dns.rcode.to_text(code)}"}} {n}'
              for code, n in enumerate(self.responses) if n),
            "# HELP dns_fast_path_total Queries answered from precomputed wire bytes.",
            "# TYPE dns_fast_path_total counter",
            f"dns_fast_path_total {self.fast_path}",
            "# HELP dns_slow_path_total Queries parsed and answered with dnspython.",
            "# TYPE dns_slow_path_total counter",
            f"dns_slow_path_total {self.slow_path}",
            "# HELP dns_malformed_total Packets answered with FORMERR or dropped.",
            "# TYPE dns_malformed_total counter",
            f"dns_malformed_total {self.malformed}",
            "# HELP dns_forward_requests_total Queries forwarded upstream, by outcome.",
            "# TYPE dns_forward_requests_total counter",
            *(f'dns_forward_requests_total{{result="{r}"}} {n}'
              for r, n in self.forwarded.items()),
            "# HELP dns_request_duration_seconds Time from receiving a query to sending "
            "its answer.",
            "# TYPE dns_request_duration_seconds histogram",
            *self.query_duration.lines("dns_request_duration_seconds"),
            "# HELP dns_programming_duration_seconds Time from an object's write (its "
            "trigger-time annotation, or a sub-second creationTimestamp) to its answers "
            "being served.",
            "# TYPE dns_programming_duration_seconds histogram",
            *self.programming.lines("dns_programming_duration_seconds", ("service_kind",)),
        ]
        for name, (help_text, fn) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {fn()!r}"]
        return "\n".join(lines) + "\n"


# -- the HTTP endpoint -----------------------------------------------------------------

MAX_REQUEST_HEAD = 8192  # a scraper's request line and headers; anything bigger is abuse
REQUEST_TIMEOUT = 5.0  # seconds to send a request head before the connection is dropped


class StatusServer:
    """Serves /metrics, /healthz and /readyz over HTTP/1.1, one request per connection."""

    def __init__(self, metrics: Metrics, readiness: Callable[[], tuple[bool, str]]) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
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
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    def respond(self, head: bytes) -> tuple[str, str, bytes]:
        """(status line, content type, body) for a request head; pure apart from reads."""
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or parts[0] not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        path = parts[1].split(b"?", 1)[0]
        if path == b"/metrics":
            return ("200 OK", "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render().encode())
        if path in (b"/healthz", b"/livez"):
            return "200 OK", "text/plain", b"ok\n"
        if path == b"/readyz":
            ready, why = self.readiness()
            if ready:
                return "200 OK", "text/plain", b"ok\n"
            return "503 Service Unavailable", "text/plain", f"not ready: {why}\n".encode()
        return "404 Not Found", "text/plain", b"not found\n"
