"""mp-dnsd's limits against abuse (issue 15), on real processes and real sockets.

Response rate limiting per client prefix (a burst from one /24 is cut to the
rate, every second dropped answer slipped as an empty TC reply; another /24 and
TCP are unaffected), and bounded TCP connections (per client address and in
total; idle ones closed). Clients use other loopback addresses (127.0.0.2,
127.0.1.1) to be other clients; that needs nothing but Linux's 127/8.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dnsd.testing import DnsdProcess
from tests.conftest import ApiServer, wait_until

ZONE = "cluster.local."


@pytest.fixture
def start_dnsd(shared_api: ApiServer, tmp_path: Path) -> Iterator:
    started: list[DnsdProcess] = []

    def start(*flags: str) -> DnsdProcess:
        proc = DnsdProcess(shared_api.url, tmp_path / f"dnsd{len(started)}.log",
                           kubeconfig=shared_api.kubeconfig, extra_args=flags)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def metric(dnsd: DnsdProcess, name: str, **labels: str) -> float:
    """One sample of ``name`` (0 if absent) from the process's /metrics."""
    text = dnsd.metrics()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# -- response rate limiting ----------------------------------------------------------------


def test_rrl_limits_a_prefix_and_slips_every_second(start_dnsd) -> None:
    rate, burst = 5, 40
    dnsd = start_dnsd("--rrl-responses-per-second", str(rate), "--rrl-slip", "2")
    # every other pair of IDs with EDNS (slips come every second query, so both kinds
    # slip): a slipped reply to an EDNS query carries dnsd's OPT (RFC 6891)
    def edns(qid: int) -> bool:
        return qid // 2 % 2 == 0

    queries = [dns.message.make_query(ZONE, "SOA", use_edns=0 if edns(i) else None)
               for i in range(1, burst + 1)]
    for i, q in enumerate(queries):
        q.id = i + 1
    before = metric(dnsd, "dns_requests_total", proto="udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        started = time.monotonic()
        for q in queries:
            sock.sendto(q.to_wire(), ("127.0.0.1", dnsd.port))
        # every query handled (and its reply, if any, sent: loopback delivers at once)
        wait_until(lambda: metric(dnsd, "dns_requests_total", proto="udp") >= before + burst,
                   what="dnsd to read the burst")
        elapsed = time.monotonic() - started
        sock.setblocking(False)
        replies = []
        while True:
            try:
                replies.append(dns.message.from_wire(sock.recv(65535)))
            except BlockingIOError:
                break
    full = [r for r in replies if not r.flags & dns.flags.TC]
    slipped = [r for r in replies if r.flags & dns.flags.TC]
    assert all(r.answer and r.rcode() == dns.rcode.NOERROR for r in full)
    # one second's credit, plus what refilled while the burst went out
    assert rate <= len(full) <= rate + rate * elapsed + 1
    over = burst - len(full)
    assert over // 2 - 1 <= len(slipped) <= over // 2 + 1  # slip 2: every second dropped one
    for reply in slipped:  # an empty TC reply to the question asked: retry over TCP
        assert reply.answer == reply.authority == [] and reply.question[0].name.to_text() == ZONE
        assert 1 <= reply.id <= burst
        assert (reply.edns, reply.payload) == ((0, 1232) if edns(reply.id) else (-1, 0)), \
            reply.id
    assert {edns(r.id) for r in slipped} == {True, False}
    assert len(replies) < burst  # the rest were dropped
    assert metric(dnsd, "dns_rrl_responses_total", action="slip") == len(slipped)
    assert metric(dnsd, "dns_rrl_responses_total", action="drop") == over - len(slipped)

    # the client that got TC retries over TCP, which is never limited
    assert dnsd.query(ZONE, "SOA", tcp=True).answer
    # another /24 has its own allowance
    other = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=dnsd.port,
                          source="127.0.1.1", timeout=2)
    assert other.answer and not other.flags & dns.flags.TC


# -- TCP connections -----------------------------------------------------------------------


def connect(dnsd: DnsdProcess, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", dnsd.port), timeout=5,
                                    source_address=(source, 0))
    return sock


def tcp_answers(sock: socket.socket) -> bool:
    """Whether ``sock`` gets an answer to a query (False if the server closed it)."""
    wire = dns.message.make_query(ZONE, "SOA").to_wire()
    try:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        head = sock.recv(2)
        if len(head) < 2:
            return False
        (length,) = struct.unpack("!H", head)
        data = b""
        while len(data) < length:
            chunk = sock.recv(length - len(data))
            if not chunk:
                return False
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return False
    return bool(dns.message.from_wire(data).answer)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), within its timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_tcp_connections_bounded_per_client_and_in_total(start_dnsd) -> None:
    dnsd = start_dnsd("--max-tcp-connections", "4", "--max-tcp-connections-per-client", "2")
    held: list[socket.socket] = []
    try:
        for _ in range(2):
            held.append(connect(dnsd, "127.0.0.1"))
            assert tcp_answers(held[-1])
        extra = connect(dnsd, "127.0.0.1")  # a third from the same client
        assert closed_by_server(extra)
        extra.close()
        for _ in range(2):  # another client has its own two: four in all
            held.append(connect(dnsd, "127.0.0.2"))
            assert tcp_answers(held[-1])
        fifth = connect(dnsd, "127.0.0.3")  # a new client, but the total is reached
        assert closed_by_server(fifth)
        fifth.close()
        assert all(tcp_answers(s) for s in held)  # the ones kept still work

        held.pop(0).close()  # one of 127.0.0.1's goes: it may open another

        def reopened() -> bool:
            sock = connect(dnsd, "127.0.0.1")
            if tcp_answers(sock):
                held.append(sock)
                return True
            sock.close()
            return False
        wait_until(reopened, what="a new connection once one closed")
    finally:
        for sock in held:
            sock.close()
    assert metric(dnsd, "dns_tcp_connections_refused_total", limit="per_client") >= 1
    assert metric(dnsd, "dns_tcp_connections_refused_total", limit="total") >= 1


def test_idle_tcp_connections_are_closed(start_dnsd) -> None:
    dnsd = start_dnsd("--tcp-idle-timeout", "500ms")
    silent = connect(dnsd, "127.0.0.1")
    half = connect(dnsd, "127.0.0.1")
    try:
        assert tcp_answers(half)
        half.sendall(b"\x00\x40")  # a length prefix, then nothing: a slow sender
        started = time.monotonic()
        assert closed_by_server(silent) and closed_by_server(half)
        assert time.monotonic() - started < 4  # 0.5 s asked; generous on a busy machine
    finally:
        silent.close()
        half.close()
