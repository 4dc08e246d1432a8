"""mp-dnsd as a process: forwarding, API server outages, flags, signals.

Upstreams are tiny dnspython servers on loopback started by the test (one that
answers, one that never does); API servers are real and get killed and
restarted on the same port and database.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest

from apimachinery.kinds import SERVICE
from client.http import Client
from dnsd.testing import BIN, DnsdProcess, free_port
from tests.conftest import ApiServer, admin_config, admin_kubeconfig, wait_until
from tests.dnsstub import SOA_TTL, StubDns

# -- a tiny upstream -------------------------------------------------------------------

UPSTREAM_RECORDS = {
    ("example.com.", "A"): "192.0.2.1",
    ("www.example.com.", "A"): "192.0.2.2",
    ("1.2.0.192.in-addr.arpa.", "PTR"): "host.example.com.",
}


BIG_NAME = "big.example.com."  # 200 A records: 3.2 KB however it is compressed


def upstream_reply(wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    q = query.question[0]
    if q.name.to_text().lower() == BIG_NAME:
        response.answer.append(dns.rrset.from_text_list(
            q.name, 60, "IN", "A", [f"198.51.100.{i}" for i in range(1, 201)]))
        return response.to_wire()
    value = UPSTREAM_RECORDS.get((q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)))
    if value is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    else:
        response.answer.append(dns.rrset.from_text(q.name, 60, "IN", q.rdtype, value))
    return response.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(upstream_reply(data), self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        length = int.from_bytes(self.rfile.read(2), "big")
        reply = upstream_reply(self.rfile.read(length))
        self.wfile.write(len(reply).to_bytes(2, "big") + reply)


@pytest.fixture
def upstream() -> Iterator[int]:
    """A UDP+TCP upstream on one loopback port; yields the port."""
    port = free_port()
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), _Udp)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Tcp)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (udp, tcp)]
    for t in threads:
        t.start()
    try:
        yield port
    finally:
        for s in (udp, tcp):
            s.shutdown()
            s.server_close()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A UDP port that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def start_dnsd(tmp_path: Path) -> Iterator:
    """Factory for dnsd processes; all are stopped at teardown, even on failure."""
    procs: list[DnsdProcess] = []

    def start(api_url: str, *args: str, wait_ready: bool = True) -> DnsdProcess:
        proc = DnsdProcess(api_url, tmp_path / f"dnsd{len(procs)}.log", extra_args=args,
                           kubeconfig=admin_kubeconfig())
        procs.append(proc)
        return proc.start(wait_ready=wait_ready)

    yield start
    for proc in procs:
        proc.stop()


def rcode(msg: dns.message.Message) -> str:
    return dns.rcode.to_text(msg.rcode())


def data(msg: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in msg.answer for rd in rrset]


# -- forwarding ------------------------------------------------------------------------


def test_forwards_names_outside_the_zone(shared_api: ApiServer, upstream: int,
                                         start_dnsd) -> None:
    dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{upstream}")
    for tcp in (False, True):
        msg = dnsd.query("Example.COM.", "A", tcp=tcp)
        assert data(msg) == ["192.0.2.1"] and msg.flags & dns.flags.RA
        assert not msg.flags & dns.flags.AA
    assert rcode(dnsd.query("nothing.example.com.", "A")) == "NXDOMAIN"
    # reverse names of addresses the cluster doesn't own go upstream too
    assert data(dnsd.query("1.2.0.192.in-addr.arpa.", "PTR")) == ["host.example.com."]
    # the zone is still ours, and in-zone answers say recursion is available
    zone = dnsd.query("kubernetes.default.svc.cluster.local.", "A")
    assert data(zone) == ["10.96.0.1"] and zone.flags & dns.flags.RA
    assert 'dns_forward_requests_total{result="ok"}' in dnsd.metrics()


def test_forwarded_udp_answers_are_capped_too(shared_api: ApiServer, upstream: int,
                                              start_dnsd) -> None:
    """The 1,232-byte cap holds for an upstream's answer relayed to an EDNS 65535
    client: truncated (TC), and the TCP retry gets it whole."""
    dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{upstream}")
    query = dns.message.make_query(BIG_NAME, "A", use_edns=0, payload=65535)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), ("127.0.0.1", dnsd.port))
        wire = sock.recv(65535)
    assert len(wire) <= 1232
    cut = dns.message.from_wire(wire)
    assert cut.id == query.id and cut.flags & dns.flags.TC and rcode(cut) == "NOERROR"
    # an EDNS query is answered with an OPT (RFC 6891): dnsd's, advertising its cap
    assert cut.edns == 0 and cut.payload == 1232
    assert len(data(dnsd.query(BIG_NAME, "A", tcp=True))) == 200


def test_external_name_is_chased_upstream(shared_api: ApiServer, upstream: int,
                                          start_dnsd) -> None:
    dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{upstream}")
    with Client(admin_config(shared_api.url)) as kube:
        kube.create(SERVICE, {"metadata": {"name": "ext"},
                              "spec": {"type": "ExternalName",
                                       "externalName": "www.example.com"}}, "default")
    name = "ext.default.svc.cluster.local."
    chased = ["www.example.com.", "192.0.2.2"]
    wait_until(lambda: data(dnsd.query(name, "A")) == chased, timeout=5,
               what="the ExternalName")
    msg = dnsd.query(name, "A")
    assert msg.flags & dns.flags.AA
    assert data(dnsd.query(name, "CNAME")) == ["www.example.com."]


def test_upstream_timeout_is_servfail(shared_api: ApiServer, black_hole: int,
                                      start_dnsd) -> None:
    dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{black_hole}",
                      "--upstream-timeout", "0.3")
    started = time.monotonic()
    msg = dnsd.query("example.com.", "A", timeout=5)
    assert rcode(msg) == "SERVFAIL" and time.monotonic() - started < 2
    assert 'dns_forward_requests_total{result="timeout"} 1.0' in dnsd.metrics()
    # the zone doesn't depend on the upstream
    assert data(dnsd.query("kubernetes.default.svc.cluster.local.", "A")) == ["10.96.0.1"]


def test_forwards_to_a_resolv_confs_nameservers_and_keeps_the_answers(
        shared_api: ApiServer, start_dnsd, tmp_path: Path) -> None:
    """``--upstream-resolv-conf``; then the cache: the upstream asked once per question
    whether the client used EDNS or not (each gets an OPT only if it sent one), NXDOMAIN
    kept as RFC 2308 says, TTLs never above the upstream's."""
    with StubDns({("www.upstream.test.", "A"): ["192.0.2.20"]}, port_53=True) as stub:
        conf = tmp_path / "resolv.conf"
        conf.write_text(stub.resolv_conf())
        dnsd = start_dnsd(shared_api.url, "--upstream-resolv-conf", str(conf))
        plain = dnsd.query("www.upstream.test.", "A")
        edns = dnsd.query("WWW.upstream.test.", "A", use_edns=0)
        assert data(plain) == data(edns) == ["192.0.2.20"]
        assert (plain.edns, edns.edns) == (-1, 0)
        assert not edns.flags & dns.flags.AA  # the stub's AA: not for a kept answer
        assert edns.question[0].name.to_text() == "WWW.upstream.test."
        assert all(rrset.ttl <= stub.ttl for rrset in (*plain.answer, *edns.answer))
        for _ in range(2):
            msg = dnsd.query("missing.upstream.test.", "A", tcp=True)
            assert rcode(msg) == "NXDOMAIN" and msg.authority[0].ttl <= SOA_TTL
        assert (stub.count("www.upstream.test", "A"),
                stub.count("missing.upstream.test", "A")) == (1, 1)
        assert "dns_cache_hits_total 2.0" in dnsd.metrics()


def test_servfail_is_kept_so_a_dead_upstream_costs_one_wait(
        shared_api: ApiServer, black_hole: int, start_dnsd) -> None:
    dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{black_hole}",
                      "--upstream-timeout", "3")
    assert rcode(dnsd.query("example.com.", "A", timeout=8)) == "SERVFAIL"
    started = time.monotonic()
    assert rcode(dnsd.query("example.com.", "A", timeout=8)) == "SERVFAIL"
    assert time.monotonic() - started < 2.5  # not another upstream timeout
    metrics = dnsd.metrics()  # the upstream asked once
    assert 'dns_forward_requests_total{result="timeout"} 1.0' in metrics
    assert "dns_cache_hits_total 1.0" in metrics


def test_a_dead_first_server_costs_its_timeout_once_not_per_query(
        shared_api: ApiServer, upstream: int, start_dnsd) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:  # takes, never answers
        dead.bind(("127.0.0.1", 0))
        dnsd = start_dnsd(shared_api.url, "--upstream", f"127.0.0.1:{dead.getsockname()[1]}",
                          "--upstream", f"127.0.0.1:{upstream}", "--upstream-timeout", "3")
        assert data(dnsd.query("example.com.", "A", timeout=8)) == ["192.0.2.1"]
        started = time.monotonic()  # another name: not from the cache, from the live server
        assert data(dnsd.query("www.example.com.", "A", timeout=8)) == ["192.0.2.2"]
        assert time.monotonic() - started < 2.5  # not the dead one's 3 s first
        dead.setblocking(False)
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(dead.recv(512))
        assert len(got) == 1  # only the first query went there
    assert 'dns_forward_requests_total{result="ok"} 2.0' in dnsd.metrics()


# -- the API server going away ---------------------------------------------------------


def test_api_server_restart(apiserver: ApiServer, start_dnsd) -> None:
    dnsd = start_dnsd(apiserver.url)
    with Client(admin_config(apiserver.url)) as kube:
        ip = kube.create(SERVICE, {"metadata": {"name": "before"},
                                   "spec": {"ports": [{"port": 80}]}})["spec"]["clusterIP"]
    before = "before.default.svc.cluster.local."
    wait_until(lambda: data(dnsd.query(before)) == [ip], timeout=5, what="before")

    apiserver.kill()
    wait_until(lambda: not dnsd.readyz(), timeout=10, what="/readyz to turn 503")
    assert "not ready" in _readyz_text(dnsd)
    # still answering from what it has, fast path and slow path alike
    assert data(dnsd.query(before)) == [ip]
    assert rcode(dnsd.query("nope.default.svc.cluster.local.")) == "NXDOMAIN"
    assert dnsd.proc is not None and dnsd.proc.poll() is None

    apiserver.start()
    wait_until(dnsd.readyz, timeout=15, what="/readyz after the API server came back")
    with Client(admin_config(apiserver.url)) as kube:
        ip2 = kube.create(SERVICE, {"metadata": {"name": "after"},
                                    "spec": {"ports": [{"port": 80}]}})["spec"]["clusterIP"]
        kube.delete(SERVICE, "before")
    wait_until(lambda: data(dnsd.query("after.default.svc.cluster.local.")) == [ip2],
               timeout=5, what="a Service created after the restart")
    wait_until(lambda: rcode(dnsd.query(before)) == "NXDOMAIN", timeout=5,
               what="a Service deleted after the restart")


def test_starts_before_the_api_server(tmp_path: Path, start_dnsd) -> None:
    server = ApiServer(db_path=tmp_path / "late.db", log_path=tmp_path / "late.log")
    try:
        dnsd = start_dnsd(server.url, wait_ready=False)
        assert not dnsd.readyz()
        assert "initial sync" in _readyz_text(dnsd)
        # no data yet: SERVFAIL rather than an NXDOMAIN resolvers would cache
        assert rcode(dnsd.query("kubernetes.default.svc.cluster.local.")) == "SERVFAIL"
        assert rcode(dnsd.query("example.com.")) == "REFUSED"
        server.start()
        wait_until(dnsd.readyz, timeout=15, what="dnsd to sync with a late API server")
        assert data(dnsd.query("kubernetes.default.svc.cluster.local.")) == ["10.96.0.1"]
    finally:
        server.stop()


def _readyz_text(dnsd: DnsdProcess) -> str:
    return httpx.get(dnsd.metrics_url + "/readyz", timeout=2).text


# -- flags -----------------------------------------------------------------------------


def test_pod_records_disabled_domain_and_ttl(shared_api: ApiServer, start_dnsd) -> None:
    dnsd = start_dnsd(shared_api.url, "--pod-records=disabled", "--cluster-domain", "k8s.test",
                      "--ttl", "30")
    msg = dnsd.query("kubernetes.default.svc.k8s.test.", "A")
    assert data(msg) == ["10.96.0.1"] and msg.answer[0].ttl == 30
    nx = dnsd.query("10-244-1-7.default.pod.k8s.test.", "A")
    assert rcode(nx) == "NXDOMAIN" and nx.authority[0][0].minimum == 30
    assert rcode(dnsd.query("kubernetes.default.svc.cluster.local.", "A")) == "REFUSED"


@pytest.mark.parametrize(("args", "message"), [
    (["--ttl", "soon"], "argument --ttl: 'soon' is not an integer"),
    (["--listen", "localhost:53"], "not an IP address"),
    (["--pod-records", "sometimes"], "invalid choice"),
    (["--bogus"], "unrecognized arguments"),
    (["--server", "ftp://nowhere"], "must start with http"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = subprocess.run([str(BIN / "mp-dnsd"), *args], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stderr.startswith("mp-dnsd: error: ")


def test_busy_port_exits_1_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = subprocess.run([str(BIN / "mp-dnsd"), "--listen", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port} (udp)" in result.stderr


def test_sigterm_stops_cleanly(shared_api: ApiServer, tmp_path: Path) -> None:
    dnsd = DnsdProcess(shared_api.url, tmp_path / "dnsd.log", kubeconfig=shared_api.kubeconfig)
    try:
        dnsd.start()
        started = time.monotonic()
        assert dnsd.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
    finally:
        dnsd.stop(signal.SIGKILL)
    log = (tmp_path / "dnsd.log").read_text()
    assert "stopping" in log and "Traceback" not in log
