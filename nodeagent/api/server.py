"""The agent's HTTPS server: TLS, the caller check, uvicorn inside the agent's loop.

``serving_context`` requires a client certificate signed by the cluster CA; the
protocol then refuses, before reading the request, any caller ``auth.refusal``
rejects (403 with a ``Status`` body, then close), so no route, WebSocket upgrade
included, runs for anyone but the API server. uvicorn runs as a task of the
agent's own event loop; the agent keeps its signal handlers (uvicorn's are not
installed) and stops the server with ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Generator, Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nodeagent.api.auth import refusal

log = logging.getLogger(__name__)

DEFAULT_PORT = 10250  # kubelet's


def serving_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    """TLS 1.2+, our serving pair, and a client certificate from the cluster CA required.

    Raises ``OSError``/``ssl.SSLError`` for unreadable or mismatched files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def forbidden_response(reason: str) -> bytes:
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": reason, "reason": "Forbidden",
                       "code": 403}).encode()
    return (b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))


def make_protocol(allowed: Sequence[str]) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP protocol, refusing callers ``allowed`` does not name."""

    class CheckedProtocol(HttpToolsProtocol):
        _refused: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object: Any = transport.get_extra_info("ssl_object")
            self._refused = refusal(ssl_object.getpeercert() if ssl_object else None, allowed)
            if self._refused:
                log.warning("refused a caller from %s: %s", self.client, self._refused)

        def data_received(self, data: bytes) -> None:
            if self._refused is not None:
                if not self.transport.is_closing():
                    self.transport.write(forbidden_response(self._refused))
                    self.transport.close()
                return
            super().data_received(data)

    return CheckedProtocol


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the agent owns SIGTERM/SIGINT


class AgentServer:
    """The API on an already bound socket, serving ``routes``."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext,
                 routes: Sequence[BaseRoute], *, allowed: Sequence[str],
                 closing: asyncio.Event | None = None) -> None:
        self.sock = sock
        # set on stop, before uvicorn's graceful wait: long answers (followed logs)
        # end by themselves instead of being cancelled mid-stream
        self.closing = closing or asyncio.Event()
        app = Starlette(routes=list(routes))
        self.server = _Server(uvicorn.Config(
            app, http=make_protocol(allowed), ws="websockets-sansio", lifespan="off",
            log_level="warning", access_log=False, proxy_headers=False,
            ssl_context_factory=lambda _c, _d: context, timeout_graceful_shutdown=2))
        self.task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]),
                                        name="agent-api")

    async def stop(self) -> None:
        if self.task is None:
            return
        self.closing.set()
        self.server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await self.task
