"""Connection limits: what a client that connects and then stalls may hold.

kube-apiserver leans on Go's ``http.Server`` for these; uvicorn has none of them, so
the API server accepts its connections itself (``LimitedServer``, ``Acceptor``): each
is counted at its accept, before its TLS handshake (a socket that never completes
one holds a file descriptor as surely as one that never sends its headers), then
handed to uvloop's TLS protocol and uvicorn's HTTP one, as uvloop's TLS server does.

- a **connection cap** (``--max-connections``, default from the open-file limit, with
  room left for the database, its threads and logs): the process never runs out of
  file descriptors. At the cap a new connection takes the place of the oldest one
  that is serving no request (in its TLS handshake, sending its headers, or idle
  between requests), which is closed; when every one is serving a request the new
  one is closed at once. A flood of stalled sockets so churns itself, and a fresh
  ``/readyz`` probe is still answered;
- a **header read timeout** (``--read-header-timeout``, 32 s as kube-apiserver):
  from the accept (the TLS handshake included) or a request's first byte to the end
  of its headers; a client that never finishes is closed (Go's ``ReadHeaderTimeout``);
- the **idle keep-alive timeout** is uvicorn's ``timeout_keep_alive``
  (``--idle-timeout``). The header size cap and HTTP/1.0 framing live in the HTTP
  protocol (``serving.ClientCertProtocol``).

Everything runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import resource
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvicorn
import uvloop
import uvloop.loop
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

# Descriptors kept back from the connection cap: SQLite's files for each reader
# thread and the writer, logs, the event loop's own, the listening sockets.
RESERVED_FDS = 256
WARN_EVERY = 10.0  # seconds between two "at the cap" log lines
# why a limit closed a connection (the reason label)
EVICTED = "evicted"  # at the cap, the oldest not serving a request, for a new one
REFUSED = "refused"  # at the cap with every connection serving a request
HEADER_TIMEOUT = "header_timeout"  # headers (or the TLS handshake) not done in time
HANDSHAKE_FAILED = "handshake_failed"  # a TLS handshake that failed, or was cut off
HEADERS_TOO_LARGE = "headers_too_large"  # request line and headers over 1 MiB: 431
CLOSE_REASONS = (EVICTED, REFUSED, HEADER_TIMEOUT, HANDSHAKE_FAILED, HEADERS_TOO_LARGE)
# In a request's ASGI scope: ``async () -> None``, drop its connection (no TLS close,
# no flushing what a stuck client never reads) and return once the HTTP layer knows.
DROP_KEY = "miniplane.drop_connection"


class Connection(Protocol):
    """What the registry needs of a connection: whether it serves a request now, and
    a way to drop it."""

    @property
    def busy(self) -> bool: ...

    def abort(self) -> None: ...


def open_file_limit() -> int:
    """The open-file limit, its soft value raised to the hard one first (as Go's runtime
    does: the soft 1,024 is a leftover of ``select``; this process uses epoll)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(fd_limit: int) -> int:
    """Connections the process can hold with ``fd_limit`` descriptors, leaving room for
    everything else it opens."""
    return max(16, fd_limit - max(RESERVED_FDS, fd_limit // 10))


@dataclass
class Connections:
    """The open connections, oldest first, and the limits they are held to."""

    cap: int
    read_header_timeout: float
    # connections closed by a limit, by why (apiserver_connections_closed_total)
    closed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    _open: dict[Connection, None] = field(default_factory=dict)
    _warned: float = -WARN_EVERY

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, conn: Connection) -> bool:
        return conn in self._open

    def admit(self, conn: Connection) -> bool:
        """Count ``conn`` in, making room if the cap is reached; False: refuse it."""
        if len(self._open) >= self.cap:
            victim = next((c for c in self._open if not c.busy), None)
            self._warn()
            if victim is None:
                self.closed[REFUSED] += 1
                return False
            self.discard(victim)
            victim.abort()
            self.closed[EVICTED] += 1
        self._open[conn] = None
        return True

    def discard(self, conn: Connection) -> None:
        self._open.pop(conn, None)

    def abort_idle(self) -> None:
        """At a stop: drop every connection serving nothing (handshakes, half-sent heads)."""
        for conn in [c for c in self._open if not c.busy]:
            self.discard(conn)
            conn.abort()

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("%d connections open, the cap (--max-connections): closing the "
                        "oldest idle ones (%d so far) or refusing new ones (%d so far)",
                        len(self._open), self.closed[EVICTED], self.closed[REFUSED])

    def collect(self) -> Iterable[Metric]:
        """For ``/metrics``: open connections, the cap, and those closed by a limit."""
        yield GaugeMetricFamily("apiserver_connections", "Connections open (TLS handshakes "
                                "included).", value=len(self._open))
        yield GaugeMetricFamily("apiserver_connections_max",
                                "The connection cap (--max-connections).", value=self.cap)
        closed = CounterMetricFamily("apiserver_connections_closed",
                                     "Connections closed by a serving limit, by reason.",
                                     labels=("reason",))
        for reason in CLOSE_REASONS:
            closed.add_metric((reason,), self.closed[reason])
        yield closed


class HTTPProtocol(Connection, Protocol):
    """What ``serving.ClientCertProtocol`` offers the acceptor."""

    limits: Connections | None

    def accepted(self, raw: asyncio.Transport, deadline: float) -> None: ...

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class Acceptor(asyncio.Protocol):
    """A TCP connection at its accept: counted against the cap (the HTTP protocol
    stands for it), held to the header deadline, then handed at once (before anything
    is read) to a TLS protocol that serves HTTP once the handshake is done, as uvloop's
    own TLS server does. A handshake that fails or outlives the deadline drops it."""

    def __init__(self, connections: Connections, context: ssl.SSLContext | None,
                 make_http: Callable[[], HTTPProtocol]) -> None:
        self.connections = connections
        self.context = context
        self.make_http = make_http

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        http = self.make_http()
        if not self.connections.admit(http):
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        timeout = self.connections.read_header_timeout
        http.accepted(transport, loop.time() + timeout)
        if self.context is None:
            transport.set_protocol(http)  # type: ignore[arg-type]
            http.connection_made(transport)
            return
        handshake = loop.create_future()
        # uvloop's own TLS protocol (what its create_server uses); asyncio's on its loop
        make_tls: Any = (uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
                         if isinstance(loop, uvloop.Loop) else asyncio.sslproto.SSLProtocol)
        tls = make_tls(loop, http, self.context, handshake, server_side=True,
                       ssl_handshake_timeout=timeout)
        transport.set_protocol(tls)
        tls.connection_made(transport)

        def handshake_done(future: asyncio.Future) -> None:
            if future.cancelled() or future.exception() is not None:
                # HTTP never started, so never learns of the end: count it out here
                if http in self.connections:
                    self.connections.closed[HANDSHAKE_FAILED] += 1
                self.connections.discard(http)
                transport.abort()

        handshake.add_done_callback(handshake_done)


class LimitedServer(uvicorn.Server):
    """uvicorn's server, with connections accepted through an ``Acceptor`` (uvicorn's
    own startup hands sockets to ``create_server`` with no way to count them)."""

    def __init__(self, config: uvicorn.Config, connections: Connections) -> None:
        super().__init__(config)
        self.connections = connections

    async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
        assert sockets, "LimitedServer serves the sockets it is given"
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config
        loop = asyncio.get_running_loop()

        def make_http() -> HTTPProtocol:
            protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state,
                app_state=self.lifespan.state, _loop=loop)
            protocol.limits = self.connections  # type: ignore[attr-defined]
            return protocol  # type: ignore[return-value]

        def accept() -> Acceptor:
            return Acceptor(self.connections, config.ssl, make_http)

        self.servers = [await loop.create_server(accept, sock=sock, backlog=config.backlog)
                        for sock in sockets]
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.connections.abort_idle()
        await super().shutdown(sockets)
