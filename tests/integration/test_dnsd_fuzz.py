"""Fuzzing mp-dnsd with hypothesis: random and mutated packets, then a normal query.

After every packet a probe query (a known name, a fresh ID) is sent on the same
socket; every reply that arrives before the probe's must parse with dnspython
(dnsd may answer garbage with FORMERR, or stay silent, but never with garbage),
and the probe must get the right answer, which proves the server is alive and
its index intact. Loopback UDP keeps order, so no reply is waited for in vain.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import dns.edns
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apimachinery.kinds import SERVICE
from client.http import Client
from dnsd.testing import DnsdProcess
from tests.conftest import ApiServer, admin_config, admin_kubeconfig, wait_until

PROBE_NAME = "fuzz.default.svc.cluster.local."


@pytest.fixture(scope="module")
def fuzz_dnsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DnsdProcess, str]]:
    tmp = tmp_path_factory.mktemp("dnsd-fuzz")
    api = ApiServer(db_path=tmp / "state.db", log_path=tmp / "apiserver.log")
    dnsd = DnsdProcess("", tmp / "dnsd.log", kubeconfig=admin_kubeconfig())
    try:
        api.start()
        dnsd.api_url = api.url
        dnsd.start()
        with Client(admin_config(api.url)) as kube:
            ip = kube.create(SERVICE, {"metadata": {"name": "fuzz"},
                                       "spec": {"ports": [{"name": "http", "port": 80}]}}
                             )["spec"]["clusterIP"]
        wait_until(lambda: [r.to_text() for rr in dnsd.query(PROBE_NAME).answer for r in rr]
                   == [ip], timeout=5, what="the probe name")
        yield dnsd, ip
    finally:
        dnsd.stop()
        api.stop()


@pytest.fixture(scope="module")
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    try:
        yield sock
    finally:
        sock.close()


def seeds() -> list[bytes]:
    """Valid queries of many shapes, the starting points for mutation."""
    out = []
    for name, qtype in (("fuzz.default.svc.cluster.local.", "A"),
                        ("_http._tcp.fuzz.default.svc.cluster.local.", "SRV"),
                        ("nope.cluster.local.", "AAAA"), ("1.0.96.10.in-addr.arpa.", "PTR"),
                        ("example.com.", "MX"), ("cluster.local.", "SOA")):
        out.append(dns.message.make_query(name, qtype, use_edns=False).to_wire())
        out.append(dns.message.make_query(name, qtype, use_edns=0, payload=4096,
                                          want_dnssec=True).to_wire())
        cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x07" * 8)
        out.append(dns.message.make_query(name, qtype, use_edns=0,
                                          options=[cookie]).to_wire())
    return out


SEEDS = seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "append", "count", "label"]))
        if op == "flip" and packet:
            i = draw(st.integers(0, len(packet) - 1))
            packet[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and packet:
            packet[draw(st.integers(0, len(packet) - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del packet[draw(st.integers(0, len(packet))):]
        elif op == "append":
            packet += draw(st.binary(max_size=40))
        elif op == "count" and len(packet) >= 12:
            at = draw(st.sampled_from([4, 6, 8, 10]))
            packet[at:at + 2] = struct.pack("!H", draw(st.integers(0, 65535)))
        elif op == "label" and len(packet) > 13:
            packet[12] = draw(st.sampled_from([0, 63, 64, 0xC0, 0xFF]))
    return bytes(packet)


packets = st.one_of(st.binary(max_size=600), mutated(), mutated(), mutated())


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(packet=packets)
def test_fuzz_then_probe(fuzz_dnsd: tuple[DnsdProcess, str], udp: socket.socket,
                         packet: bytes) -> None:
    dnsd, ip = fuzz_dnsd
    udp.sendto(packet, ("127.0.0.1", dnsd.port))
    probe = dns.message.make_query(PROBE_NAME, "A")
    probe.id = random.randrange(65536)
    udp.sendto(probe.to_wire(), ("127.0.0.1", dnsd.port))
    while True:
        reply = dns.message.from_wire(udp.recv(65535))  # never unparseable
        if reply.id == probe.id and reply.question and \
                reply.question[0].name.to_text() == PROBE_NAME:
            break
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for rr in reply.answer for r in rr] == [ip]


def test_tcp_garbage_does_not_hurt(fuzz_dnsd: tuple[DnsdProcess, str]) -> None:
    dnsd, ip = fuzz_dnsd
    rng = random.Random(4)
    for attempt in range(30):
        with socket.create_connection(("127.0.0.1", dnsd.port), timeout=2) as conn:
            if attempt % 3 == 0:
                conn.sendall(struct.pack("!H", 4000) + rng.randbytes(100))  # then hang up
            elif attempt % 3 == 1:
                conn.sendall(b"\x00")  # half a length prefix
            else:
                junk = rng.randbytes(rng.randrange(0, 300))
                conn.sendall(struct.pack("!H", len(junk)) + junk)
    msg = dnsd.query(PROBE_NAME, "A", tcp=True)
    assert [r.to_text() for rr in msg.answer for r in rr] == [ip]
    assert dnsd.proc is not None and dnsd.proc.poll() is None


def test_no_internal_errors_were_logged(fuzz_dnsd: tuple[DnsdProcess, str]) -> None:
    """Runs last: whatever the fuzzing sent was handled, not caught as a crash."""
    dnsd, _ = fuzz_dnsd
    log = dnsd.log_path.read_text()
    assert "internal error" not in log and "Traceback" not in log
    assert "dns_malformed_total 0.0" not in dnsd.metrics()
