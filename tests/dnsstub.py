"""A stub upstream DNS server for tests: dnsd forwards to it instead of anything real.

UDP and TCP on one port of 127.0.0.1 (dnsd, in the host's network namespace, reaches
it; nothing leaves the machine). It answers from a dict, as an authoritative server
for ``ZONE`` would: a known name with another type is NODATA and an unknown name
NXDOMAIN, both with the zone's SOA (so resolvers and dnsd may cache the denial,
RFC 2308); a reverse (PTR) name gets ``ptr`` if set. It counts the questions it gets,
so a test can tell an answer from dnsd's cache from one it asked for. ``stop`` and
``start`` again (same port) stand for an upstream going away and coming back.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from componentbase import ports

ZONE = "upstream.test."  # RFC 2606: never a real name
SOA_TTL = 60  # the SOA's TTL and MINIMUM: how long a denial may be kept
SOA = f"ns.{ZONE} hostmaster.{ZONE} 1 7200 1800 86400 {SOA_TTL}"


class StubDns:
    """``records`` maps (name with trailing dot, type) to values, answered with ``ttl``."""

    def __init__(self, records: dict[tuple[str, str], list[str]], *, ttl: int = 300,
                 ptr: str | None = None) -> None:
        self.records = {(name.lower(), rtype): values for (name, rtype), values in records.items()}
        self.ttl = ttl
        self.ptr = ptr
        self.host = "127.0.0.1"
        self.port = ports.free_port(udp=True)
        self.asked: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def count(self, name: str, rtype: str) -> int:
        with self._lock:
            return self.asked[(name.lower().rstrip(".") + ".", rtype)]

    def reply(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA | dns.flags.AA
        q = query.question[0]
        name, rtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.asked[(name, rtype)] += 1
        values = self.records.get((name, rtype))
        if values is None and rtype == "PTR" and self.ptr and name.endswith(".arpa."):
            values = [self.ptr]
        if values:
            response.answer.append(dns.rrset.from_text_list(q.name, self.ttl, "IN", q.rdtype,
                                                            values))
        else:
            if not any(known == name for known, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text(ZONE, SOA_TTL, "IN", "SOA", SOA))
        return response.to_wire()

    def start(self) -> StubDns:
        stub = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(stub.reply(data), self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = int.from_bytes(self.rfile.read(2), "big")
                reply = stub.reply(self.rfile.read(length))
                self.wfile.write(len(reply).to_bytes(2, "big") + reply)

        class TcpServer(socketserver.ThreadingTCPServer):
            allow_reuse_address = True  # started again on the same port after a stop
            daemon_threads = True

        udp = socketserver.ThreadingUDPServer((self.host, self.port), Udp)
        try:
            tcp = TcpServer((self.host, self.port), Tcp)
        except BaseException:
            udp.server_close()
            raise
        self._servers = [udp, tcp]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> StubDns:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
