"""UDP and TCP listeners, the slow path, and the one place that maps failures to rcodes.

Every query first tries ``wire.fast_reply`` (a dict lookup and a few byte
slices). What it can't answer is parsed with dnspython here:

====================================  ===========================================
packet shorter than a header, or a    dropped (answering responses invites loops)
response (QR=1)
unparseable, or not one question      FORMERR
opcode other than QUERY               NOTIMP
EDNS version > 0                      BADVERS (with an OPT of version 0)
class other than IN; AXFR/IXFR        REFUSED
not ours (``Answer.forward``)         from the cache of forwarded answers
                                      (``cache.py``), else forwarded upstream and
                                      kept; SERVFAIL if none answers (kept 5 s);
                                      REFUSED without ``--upstream``
in the zone before the first sync     SERVFAIL instead of NXDOMAIN (CoreDNS), so
                                      resolvers don't cache a premature "no"
an unexpected exception               SERVFAIL, logged once per distinct error
====================================  ===========================================

Answers the slow path renders are cached in the table (until a change to what
they were read from), so the next identical question takes the fast path.

Limits against abuse (each a flag; README "Limits"):

- UDP replies are at most ``--max-udp-size`` bytes (1,232), whatever buffer the
  client's EDNS claims; bigger answers go out truncated with TC (``wire.py``).
- With ``--rrl-responses-per-second``, UDP responses to one client prefix are
  rate limited, every ``--rrl-slip``-th dropped one sent as an empty TC reply
  (``rrl.py``). Off by default.
- TCP: at most ``--max-tcp-connections`` at once, ``--max-tcp-connections-per-client``
  from one address; a connection past either is closed at once. One that sends
  nothing (or reads nothing) for ``--tcp-idle-timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from componentbase.tasks import cancel_and_wait
from dnsd import records
from dnsd.cache import FAILED, ForwardCache, answers_question, with_opt
from dnsd.index import Index
from dnsd.metrics import Metrics
from dnsd.records import Answer, Record
from dnsd.rrl import RateLimiter, Verdict
from dnsd.upstream import Upstream
from dnsd.wire import (
    CLASS_IN,
    CLASSIC_UDP_LIMIT,
    MAX_MESSAGE,
    OPT_SIZE,
    AnswerTable,
    Entry,
    fast_reply,
    name_wire,
    render,
    truncated_copy,
    udp_limit,
)

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP client may stay silent (CoreDNS's read timeout)
MAX_TCP_CLIENTS = 1024  # concurrent TCP connections; more are closed at once
MAX_TCP_PER_CLIENT = 32  # concurrent TCP connections from one address
LOG_EVERY = 10.0  # seconds between repeated warnings of one kind (upstream down, …)
# Forwarded queries in flight, each holding a socket until its answer or timeout:
# beyond this (a flood of external names at a dead upstream), SERVFAIL at once
# rather than run out of file descriptors.
MAX_FORWARDS = 1000
AA_BIT, RD_BIT = 0x04, 0x01  # in a message's third byte
REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
# Meta types that are never a valid question (RFC 6895): OPT, TKEY, TSIG.
INVALID_QTYPES = frozenset({dns.rdatatype.OPT, dns.rdatatype.TKEY, dns.rdatatype.TSIG})

Reply = tuple[bytes | None, int]  # (bytes to send or None to drop, rcode for the metric)


@dataclass(frozen=True)
class TcpLimits:
    """How many TCP connections, and how long an idle one lives: each holds a file
    descriptor and a task, so a client opening (or leaving open) many must not use
    them all up."""

    max_connections: int = MAX_TCP_CLIENTS
    max_per_client: int = MAX_TCP_PER_CLIENT
    idle_timeout: float = TCP_IDLE_TIMEOUT


class DnsServer:
    """Answers DNS queries from the table and zone; owns the listeners."""

    def __init__(self, index: Index, metrics: Metrics, upstream: Upstream | None, *,
                 tcp: TcpLimits = TcpLimits(), rrl: RateLimiter | None = None,
                 cache: ForwardCache | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.cache = cache
        self.clock = clock
        self.zone = index.zone
        self.table: AnswerTable = index.table
        self.metrics = metrics
        self.upstream = upstream
        self.tcp = tcp
        self.rrl = rrl
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_clients = 0
        self._tcp_by_client: dict[str, int] = {}
        self._forwards = 0
        self._last_log: dict[str, float] = {}

    # -- listeners -------------------------------------------------------------------

    async def start(self, udp: list[socket.socket], tcp: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sock in udp:
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                               sock=sock)
            self._transports.append(transport)
        for sock in tcp:
            self._servers.append(await asyncio.start_server(self._tcp_client, sock=sock))

    async def stop(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        await cancel_and_wait(list(self._tasks))
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await server.wait_closed()

    def on_datagram(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport) -> None:
        """The UDP hot path: fast reply inline, anything else through ``answer``."""
        start = time.perf_counter()
        metrics = self.metrics
        metrics.requests["udp"] += 1
        try:
            fast = fast_reply(self.table, data, udp=True)
        except Exception:  # noqa: BLE001 - the slow path will judge this packet
            fast = None
        if fast is not None:
            metrics.fast_path += 1
            if self.rrl is not None:
                self._send_udp(fast, addr, transport, start)
                return
            transport.sendto(fast[0], addr)  # _send_udp inlined: this is most queries
            metrics.responses[fast[1]] += 1
            metrics.query_duration.observe(time.perf_counter() - start)
            return
        result = self._slow_guarded(data, udp=True)
        if isinstance(result, tuple):
            self._send_udp(result, addr, transport, start)
        else:
            self._spawn(self._finish_udp(result, addr, transport, start))

    async def _finish_udp(self, pending: Awaitable[Reply], addr: Any,
                          transport: asyncio.DatagramTransport, start: float) -> None:
        self._send_udp(await pending, addr, transport, start)

    def _send_udp(self, result: Reply, addr: Any, transport: asyncio.DatagramTransport,
                  start: float) -> None:
        reply, rcode = result
        if reply is None or transport.is_closing():
            return
        if self.rrl is not None:
            verdict = self.rrl.check(addr[0])
            if verdict is not Verdict.SEND:
                self.metrics.rate_limited[verdict.name.lower()] += 1
                if verdict is Verdict.DROP:
                    return
                ours = reply[-OPT_SIZE:]  # our replies to EDNS queries end with our OPT
                reply = truncated_copy(reply, ours if ours in self.table.opt else b"")
        transport.sendto(reply, addr)
        self.metrics.responses[rcode] += 1
        self.metrics.query_duration.observe(time.perf_counter() - start)

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        limits = self.tcp
        mine = self._tcp_by_client.get(client, 0)
        if self._tcp_clients >= limits.max_connections or mine >= limits.max_per_client:
            self.metrics.tcp_refused["total" if self._tcp_clients >= limits.max_connections
                                     else "per_client"] += 1
            writer.close()
            return
        self._tcp_clients += 1
        self._tcp_by_client[client] = mine + 1
        idle = limits.idle_timeout
        try:
            while True:
                async with asyncio.timeout(idle):
                    prefix = await reader.readexactly(2)
                (length,) = struct.unpack("!H", prefix)
                async with asyncio.timeout(idle):
                    data = await reader.readexactly(length)
                start = time.perf_counter()
                self.metrics.requests["tcp"] += 1
                reply, rcode = await self.answer(data, udp=False)
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                async with asyncio.timeout(idle):  # a client that never reads
                    await writer.drain()
                self.metrics.responses[rcode] += 1
                self.metrics.query_duration.observe(time.perf_counter() - start)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_clients -= 1
            left = self._tcp_by_client[client] - 1
            if left:
                self._tcp_by_client[client] = left
            else:
                del self._tcp_by_client[client]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- answering -------------------------------------------------------------------

    async def answer(self, data: bytes, *, udp: bool) -> Reply:
        """The reply to one query (for TCP and tests; UDP inlines the fast path)."""
        try:
            fast = fast_reply(self.table, data, udp=udp)
        except Exception:  # noqa: BLE001
            fast = None
        if fast is not None:
            self.metrics.fast_path += 1
            return fast
        result = self._slow_guarded(data, udp=udp)
        return result if isinstance(result, tuple) else await result

    def _slow_guarded(self, data: bytes, *, udp: bool) -> Reply | Awaitable[Reply]:
        self.metrics.slow_path += 1
        try:
            return self._slow(data, udp=udp)
        except Exception as exc:  # noqa: BLE001 - nothing a packet does may stop the server
            self._log_sometimes("internal", "internal error answering a query: %r", exc)
            return _header_only(data, dns.rcode.SERVFAIL)

    def _slow(self, data: bytes, *, udp: bool) -> Reply | Awaitable[Reply]:
        if len(data) < 12 or data[2] & 0x80:
            self.metrics.malformed += 1
            return None, 0
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - DNSException mostly, plain errors on some garbage
            self.metrics.malformed += 1
            return _header_only(data, dns.rcode.FORMERR)
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1 or query.question[0].rdtype in INVALID_QTYPES:
            self.metrics.malformed += 1
            return self._error(query, dns.rcode.FORMERR)
        if query.edns > 0:
            return self._error(query, dns.rcode.BADVERS)
        question = query.question[0]
        qtype = question.rdtype
        if question.rdclass != dns.rdataclass.IN or qtype in REFUSED_TYPES:
            return self._error(query, dns.rcode.REFUSED)

        labels = tuple(label.decode("latin-1").lower() for label in question.name.labels[:-1])
        key = name_wire(labels) + struct.pack("!H", qtype) + CLASS_IN
        # to_wire() with no file returns the bytes (its stub says "or None")
        echo = cast(bytes, question.name.to_wire()) + struct.pack("!H", qtype) + CLASS_IN
        edns = 1 if query.edns == 0 else 0
        opt = self.table.opt[1 if query.ednsflags & dns.flags.DO else 0] if edns else b""
        limit = udp_limit(query.payload, edns, self.table.max_udp) if udp else MAX_MESSAGE
        rd = 1 if query.flags & dns.flags.RD else 0

        def send(entry: Entry) -> Reply:
            entry = entry.fitted(limit)
            return entry.reply(data[:2], rd, echo, opt, self.table.serial), entry.rcode

        entry = self.table.get(key)
        if entry is not None:
            return send(entry)
        ans = records.answer(self.zone, labels, qtype)
        if ans.forward and self.upstream is not None:
            return self._forward(data, query, key + _cache_flags(query), echo, udp=udp)
        if not self.index.live and not ans.forward and ans.rcode != dns.rcode.NOERROR:
            return self._error(query, dns.rcode.SERVFAIL)
        if ans.chase and self.upstream is not None:
            return self._chase(ans, key, qtype, udp=udp, send=send)
        entry = render(ans, key, ra=self.table.ra)
        if self.index.live:
            self.table.put_cached(key, entry, records.cache_tag(self.zone, labels, ans))
        return send(entry)

    def _forward(self, data: bytes, query: dns.message.Message, ckey: bytes, echo: bytes, *,
                 udp: bool) -> Reply | Awaitable[Reply]:
        """From the cache at once if it holds the question, else asked upstream."""
        if self.cache is not None and (kept := self.cache.get(ckey, self.clock())) is not None:
            if kept == FAILED:
                return self._error(query, dns.rcode.SERVFAIL)
            # the asker's ID, RD bit and question (its letter case: some resolvers check
            # it), AA off (an answer from a cache is not authoritative), and an OPT if it
            # sent one
            flags = bytes([kept[2] & ~(AA_BIT | RD_BIT) | data[2] & RD_BIT])
            reply = data[:2] + flags + kept[3:12] + echo + kept[12 + len(echo):]
            if query.edns >= 0:
                reply = with_opt(reply, self.table.opt[1 if query.ednsflags & dns.flags.DO
                                                       else 0])
            return self._relay(reply, query, udp=udp)
        return self._forward_upstream(data, query, ckey, udp=udp)

    async def _forward_upstream(self, data: bytes, query: dns.message.Message, ckey: bytes,
                                *, udp: bool) -> Reply:
        assert self.upstream is not None
        if self._forwards >= MAX_FORWARDS:
            self._log_sometimes("busy", "%d queries already forwarded; SERVFAIL for %s",
                                self._forwards, query.question[0].name)
            return self._error(query, dns.rcode.SERVFAIL)
        self._forwards += 1
        try:
            reply = await self._ask(data, ckey, tcp=not udp)
        finally:
            self._forwards -= 1
        if reply is None:
            self.metrics.forwarded["timeout" if "timeout" in self.upstream.last_failure
                                   else "error"] += 1
            self._log_sometimes("upstream", "no upstream answered %s: %s",
                                query.question[0].name, self.upstream.last_failure)
            return self._error(query, dns.rcode.SERVFAIL)
        self.metrics.forwarded["ok"] += 1
        return self._relay(reply, query, udp=udp)

    async def _ask(self, wire: bytes, ckey: bytes, *, tcp: bool) -> bytes | None:
        """``wire`` asked upstream; the reply (or that there was none) kept in the cache."""
        assert self.upstream is not None
        reply = await self.upstream.query(wire, tcp=tcp)
        if self.cache is not None:
            if reply is None:
                self.cache.put_failure(ckey, self.clock())
            elif answers_question(wire, reply):
                self.cache.put(ckey, reply, self.clock())
        return reply

    def _relay(self, reply: bytes, query: dns.message.Message, *, udp: bool) -> Reply:
        """An upstream's reply (fresh or kept) as sent to the client."""
        limit = min(max(query.payload, CLASSIC_UDP_LIMIT), self.table.max_udp) \
            if query.edns >= 0 else CLASSIC_UDP_LIMIT
        if udp and len(reply) > limit:
            # The query went upstream with the client's own buffer size; the cap holds
            # for relayed answers too (the client's retry over TCP is forwarded over TCP).
            opt = b""
            if query.edns >= 0:
                opt = self.table.opt[1 if query.ednsflags & dns.flags.DO else 0]
            reply = truncated_copy(reply, opt)
        return reply, reply[3] & 0x0F

    async def _chase(self, ans: Answer, key: bytes, qtype: int, *, udp: bool,
                     send: Callable[[Entry], Reply]) -> Reply:
        """An ExternalName's CNAME plus the target's records, asked of the upstream; the
        CNAME alone if it doesn't answer (the client's resolver can follow it)."""
        assert self.upstream is not None
        chased = list(ans.answer)
        ask = dns.message.make_query(ans.chase, dns.rdatatype.RdataType.make(qtype))
        wire = ask.to_wire()
        ckey = cast(bytes, ask.question[0].name.canonicalize().to_wire()) + key[-4:] + b"\0"
        kept = self.cache.get(ckey, self.clock()) if self.cache is not None else None
        if kept is None:
            reply = await self._ask(wire, ckey, tcp=not udp)
        else:
            reply = None if kept == FAILED else kept
        if reply is not None:
            try:
                for rrset in dns.message.from_wire(reply).answer:
                    chased += [Record(rrset.name.to_text(), rrset.rdtype, rrset.ttl, rd.to_text())
                               for rd in rrset]
            except dns.exception.DNSException:
                pass
        return send(render(Answer(ans.rcode, tuple(chased)), key, ra=self.table.ra))

    def _error(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> Reply:
        """A reply carrying only the question (if any) and ``rcode``."""
        response = dns.message.make_response(query)
        if self.upstream is not None:
            response.flags |= dns.flags.RA
        if rcode > 15 or query.edns >= 0:
            response.use_edns(0, 0, self.table.max_udp)
        response.set_rcode(rcode)
        return response.to_wire(max_size=MAX_MESSAGE), rcode

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log_sometimes(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._last_log[kind] = now
            log.warning(msg, *args)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport quacks like DatagramTransport without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.server.on_datagram(data, addr, self.transport)

    def error_received(self, exc: Exception) -> None:
        return  # ICMP errors from clients that went away: nothing to do


def _cache_flags(query: dns.message.Message) -> bytes:
    """What, beside the question, changes an upstream's answer: DO (DNSSEC records) and
    CD (unvalidated data), as CoreDNS's cache key. EDNS itself does not: the OPT record
    is not kept (``cache.without_opt``) but added for the asker."""
    return bytes([bool(query.ednsflags & dns.flags.DO) | bool(query.flags & dns.flags.CD) << 1])


def _header_only(data: bytes, rcode: int) -> Reply:
    """A reply of just a header (ID, opcode, RD echoed) for packets that can't be parsed."""
    if len(data) < 12 or data[2] & 0x80:
        return None, 0
    flags = 0x8000 | (data[2] & 0x79) << 8 | rcode
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0), rcode
