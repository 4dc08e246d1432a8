"""Forwarding names outside the cluster zone to ``--upstream`` servers.

A query is sent as the client sent it, except for a fresh random ID (so a reply
can't be forged by guessing the client's), over the transport the client used:
UDP from a new socket with a random source port, or TCP when the client came
over TCP (a UDP client that gets TC from upstream retries over TCP itself).
Servers are tried in order, each with its own ``timeout``, and all within
``MAX_QUERY_TIME``: a glibc client gives up after 5 s, so a later answer (or
SERVFAIL) would reach no one. A server that failed lately (``DOWN_FOR``) is tried
after those that didn't, so one dead nameserver of a resolv.conf doesn't cost
every query its timeout first. The first valid reply wins and gets the client's ID
back. If none answers, the caller sends SERVFAIL, as CoreDNS's ``forward`` does
(and keeps it 5 s, ``cache.py``).

Errors stay inside: ``query`` returns None for every failure and says which in
``last_failure``, for the metric and the log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0  # per server: CoreDNS's forward gives up on a server after ~2 s
MAX_QUERY_TIME = 4.5  # every server together: within glibc's 5 s timeout
DOWN_FOR = 5.0  # seconds a server that failed is tried last
MAX_UDP_REPLY = 65535


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _OneReply(asyncio.DatagramProtocol):
    """Waits for the first datagram whose ID matches; ignores everything else."""

    def __init__(self, qid: bytes) -> None:
        self.qid = qid
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 12 and data[:2] == self.qid and data[2] & 0x80 \
                and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class Upstream:
    """The configured upstream servers."""

    def __init__(self, servers: list[Server], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.servers = servers
        self.timeout = timeout
        self.last_failure = ""
        self.failed_at: dict[Server, float] = {}

    def order(self, now: float) -> list[Server]:
        """The servers to try: those that answered lately (or were never tried) first,
        each group in the configured order."""
        down = {s for s, when in self.failed_at.items() if now - when < DOWN_FOR}
        return [s for s in self.servers if s not in down] + \
            [s for s in self.servers if s in down]

    async def query(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """Forward ``wire`` (a whole query); the reply with the original ID, or None."""
        original, qid = wire[:2], secrets.token_bytes(2)
        outgoing = qid + wire[2:]
        failures = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.timeout, MAX_QUERY_TIME)
        for server in self.order(loop.time()):
            left = deadline - loop.time()
            if left <= 0:
                failures.append(f"{server}: not tried (out of time)")
                continue
            try:
                async with asyncio.timeout(min(self.timeout, left)):
                    reply = await (self._tcp(server, outgoing, qid) if tcp
                                   else self._udp(server, outgoing, qid))
            except TimeoutError:
                failures.append(f"{server}: timeout")
                self.failed_at[server] = loop.time()
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failures.append(f"{server}: {exc or type(exc).__name__}")
                self.failed_at[server] = loop.time()
                continue
            self.failed_at.pop(server, None)
            return original + reply[2:]
        self.last_failure = "; ".join(failures)
        return None

    async def _udp(self, server: Server, wire: bytes, qid: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _OneReply(qid), remote_addr=(server.host, server.port))
        try:
            transport.sendto(wire)
            return await protocol.reply
        finally:
            transport.close()

    async def _tcp(self, server: Server, wire: bytes, qid: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await reader.readexactly(length)
                if len(reply) >= 12 and reply[:2] == qid:
                    return reply
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
