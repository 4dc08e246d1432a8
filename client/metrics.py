"""What every long-running miniplane process exports: histograms and a status endpoint.

``Histogram`` renders Prometheus' cumulative-bucket text; ``StatusServer`` serves
``/metrics``, ``/healthz`` (``/livez``) and ``/readyz`` on a socket the process bound
early (so a busy port fails at start, with one line). The controllers, dnsd and the
node agent each keep their own ``Metrics`` (what they count) and share these.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import socket
from collections.abc import Callable, Sequence

Check = Callable[[], tuple[bool, str]]

MAX_REQUEST_HEAD = 8192  # a scraper's request line and headers; anything bigger is abuse
REQUEST_TIMEOUT = 5.0  # seconds to send a request head before the connection is dropped
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _always_ok() -> tuple[bool, str]:
    return True, ""


class Histogram:
    """Cumulative buckets per label set, with Prometheus semantics (``le`` inclusive)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        counts = self.series.get(labels)
        if counts is None:  # a slot per bucket, +Inf, then sum and count
            counts = self.series[labels] = [0] * (len(self.buckets) + 3)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-2] += value
        counts[-1] += 1

    def count(self, labels: tuple[str, ...] = ()) -> int:
        counts = self.series.get(labels)
        return int(counts[-1]) if counts else 0

    def total(self, labels: tuple[str, ...] = ()) -> float:
        counts = self.series.get(labels)
        return float(counts[-2]) if counts else 0.0

    def lines(self, name: str, label_names: tuple[str, ...] = ()) -> list[str]:
        out: list[str] = []
        series = sorted(self.series.items()) or ([((), [0] * (len(self.buckets) + 3))]
                                                 if not label_names else [])
        for labels, counts in series:
            base = [f'{k}="{v}"' for k, v in zip(label_names, labels, strict=True)]
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=False):
                running += int(n)
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                labels_text = ",".join([*base, f'le="{le}"'])
                out.append(f"{name}_bucket{{{labels_text}}} {running}")
            suffix = f"{{{','.join(base)}}}" if base else ""
            out.append(f"{name}_sum{suffix} {float(counts[-2])!r}")
            out.append(f"{name}_count{suffix} {int(counts[-1])}")
        return out


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
