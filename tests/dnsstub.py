"""A stub upstream DNS server for tests: dnsd forwards to it instead of anything real.

UDP and TCP on one port of 127.0.0.1 (dnsd, in the host's network namespace, reaches
it; nothing leaves the machine). It answers from a dict, as an authoritative server
for ``ZONE`` would: a known name with another type is NODATA and an unknown name
NXDOMAIN, both with the zone's SOA (so resolvers and dnsd may cache the denial,
RFC 2308); a reverse (PTR) name gets ``ptr`` if set. It counts the questions it gets,
so a test can tell an answer from dnsd's cache from one it asked for. ``stop`` and
``start`` again (same port) stand for an upstream going away and coming back.

``port_53=True`` puts it where a resolv.conf can name it (resolv.conf has no port): a
random address of 127/8 other than 127.0.0.1, port 53, so ``resolv_conf()`` is a file
for dnsd's ``--upstream-resolv-conf`` (and ``cluster up --dns-upstream PATH``).
"""

from __future__ import annotations

import secrets
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
                 ptr: str | None = None, port_53: bool = False) -> None:
        self.records = {(name.lower(), rtype): values for (name, rtype), values in records.items()}
        self.ttl = ttl
        self.ptr = ptr
        self.port_53 = port_53
        self.host = "127.0.0.1"
        self.port = 53 if port_53 else ports.free_port(udp=True)
        self.asked: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._started_once = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def resolv_conf(self) -> str:
        assert self.port == 53, "a resolv.conf names port 53 only"
        return f"# the test's stub upstream (tests/dnsstub.py)\nnameserver {self.host}\n"

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
        """Serve; with ``port_53`` the first time, on a free random 127/8 address."""
        if self.port_53 and not self._started_once:
            for _ in range(20):
                self.host = f"127.53.{secrets.randbelow(254) + 1}.{secrets.randbelow(254) + 1}"
                try:
                    return self._serve()
                except OSError:
                    continue
            raise OSError("no free 127.53.x.y:53 for the stub upstream")
        return self._serve()

    def _serve(self) -> StubDns:
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
        self._started_once = True
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
