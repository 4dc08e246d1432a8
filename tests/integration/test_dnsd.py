"""mp-dnsd against a real mp-apiserver: every record kind and edge of issue 4, over the wire.

One API server and one dnsd serve the whole module; each test works in its own
namespace, writes objects with the blocking client and polls dnsd (dnspython
UDP/TCP, and dig) until the watch has delivered, with a deadline.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from apimachinery.kinds import ENDPOINTSLICE, NAMESPACE, SERVICE
from client.http import Client
from dnsd.testing import DnsdProcess
from tests.conftest import ApiServer, admin_config, wait_until

_ns_numbers = itertools.count()
DEADLINE = 5.0  # seconds for a write to show up in DNS; it normally takes milliseconds


@pytest.fixture(scope="module")
def dnsd(shared_api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsdProcess]:
    proc = DnsdProcess(shared_api.url, tmp_path_factory.mktemp("dnsd") / "dnsd.log",
                       kubeconfig=shared_api.kubeconfig)
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def kube(shared_api: ApiServer) -> Iterator[Client]:
    with Client(admin_config(shared_api.url)) as c:
        yield c


@pytest.fixture
def ns(kube: Client) -> str:
    name = f"t{next(_ns_numbers)}"
    kube.create(NAMESPACE, {"metadata": {"name": name}})
    return name


# -- helpers ---------------------------------------------------------------------------


def svc(kube: Client, ns: str, name: str, *, ports: list | None = None, **spec: object) -> dict:
    body: dict = {"ports": ports if ports is not None else [{"name": "http", "port": 80}]}
    body.update(spec)
    return kube.create(SERVICE, {"metadata": {"name": name}, "spec": body}, ns)


def endpoint_slice(kube: Client, ns: str, name: str, service: str,
                   endpoints: list[dict], *, address_type: str = "IPv4",
                   ports: list | None = None, annotations: dict | None = None) -> dict:
    return kube.create(ENDPOINTSLICE, {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service},
                     "annotations": annotations or {}},
        "addressType": address_type, "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "pg", "port": 5432,
                                                   "protocol": "TCP"}]}, ns)


def ready(ip: str, hostname: str | None = None, is_ready: bool | None = True) -> dict:
    ep: dict = {"addresses": [ip], "conditions": {} if is_ready is None else {"ready": is_ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def data(msg: dns.message.Message, section: str = "answer") -> list[str]:
    return [rd.to_text() for rrset in getattr(msg, section) for rd in rrset]


def rcode(msg: dns.message.Message) -> str:
    return dns.rcode.to_text(msg.rcode())


def wait_for(dnsd: DnsdProcess, name: str, qtype: str = "A", *, want: str = "NOERROR",
             answers: list[str] | None = None, **query: object) -> dns.message.Message:
    """Poll until ``name`` answers with rcode ``want`` (and exactly ``answers``, if given)."""
    def check() -> dns.message.Message | None:
        msg = dnsd.query(name, qtype, **query)
        if rcode(msg) != want:
            return None
        if answers is not None and sorted(data(msg)) != sorted(answers):
            return None
        return msg
    return wait_until(check, timeout=DEADLINE, what=f"{name} {qtype} → {want} {answers or ''}")


def check_soa(msg: dns.message.Message, *, zone: str = "cluster.local.", ttl: int = 5) -> None:
    """Negative answers: authoritative, no answer, exactly the zone's SOA in authority."""
    assert msg.flags & dns.flags.AA
    assert msg.answer == []
    (soa,) = msg.authority
    assert soa.name.to_text().lower() == zone and soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == min(ttl, 300)
    assert soa[0].minimum == ttl
    assert soa[0].mname.to_text() == "ns.dns." + zone


# -- records ---------------------------------------------------------------------------


def test_cluster_ip_service(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web")["spec"]["clusterIP"]
    name = f"web.{ns}.svc.cluster.local."
    msg = wait_for(dnsd, name, answers=[ip])
    assert msg.flags & dns.flags.AA and msg.answer[0].ttl == 5
    # known name, other types: NODATA with the SOA
    for qtype in ("AAAA", "TXT", "MX"):
        nodata = dnsd.query(name, qtype)
        assert rcode(nodata) == "NOERROR"
        check_soa(nodata)


def test_headless_service(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    svc(kube, ns, "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    name = f"db.{ns}.svc.cluster.local."
    # no endpoints at all: NXDOMAIN (a ClusterIP Service would still answer)
    check_soa(wait_for(dnsd, name, want="NXDOMAIN"))
    endpoint_slice(kube, ns, "db-a", "db", [
        ready("10.244.0.5", "db-0"), ready("10.244.0.6", is_ready=None),
        ready("10.244.0.7", "db-2", is_ready=False)])
    endpoint_slice(kube, ns, "db-b", "db", [ready("fd00::5", "db-3")], address_type="IPv6")
    wait_for(dnsd, name, answers=["10.244.0.5", "10.244.0.6"])
    wait_for(dnsd, name, "AAAA", answers=["fd00::5"])
    wait_for(dnsd, f"db-0.db.{ns}.svc.cluster.local.", answers=["10.244.0.5"])
    wait_for(dnsd, f"10-244-0-6.db.{ns}.svc.cluster.local.", answers=["10.244.0.6"])
    wait_for(dnsd, f"db-3.db.{ns}.svc.cluster.local.", "AAAA", answers=["fd00::5"])
    # not ready: not published
    wait_for(dnsd, f"db-2.db.{ns}.svc.cluster.local.", want="NXDOMAIN")


def test_publish_not_ready_addresses(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    svc(kube, ns, "peers", clusterIP="None", publishNotReadyAddresses=True,
        ports=[{"name": "pg", "port": 5432}])
    endpoint_slice(kube, ns, "peers-a", "peers", [ready("10.244.1.5", "p-0", is_ready=False)])
    wait_for(dnsd, f"peers.{ns}.svc.cluster.local.", answers=["10.244.1.5"])
    wait_for(dnsd, f"p-0.peers.{ns}.svc.cluster.local.", answers=["10.244.1.5"])


def test_srv_records(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web", ports=[{"name": "http", "port": 80},
                                     {"name": "dns", "port": 53, "protocol": "UDP"}]
             )["spec"]["clusterIP"]
    target = f"web.{ns}.svc.cluster.local."
    msg = wait_for(dnsd, f"_http._tcp.{target}", "SRV", answers=[f"0 100 80 {target}"])
    assert data(msg, "additional") == [ip]
    assert msg.additional[0].name.to_text() == target
    wait_for(dnsd, f"_dns._udp.{target}", "SRV", answers=[f"0 100 53 {target}"])
    wait_for(dnsd, f"_dns._tcp.{target}", "SRV", want="NXDOMAIN")

    svc(kube, ns, "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    endpoint_slice(kube, ns, "db-a", "db", [ready("10.244.2.5", "db-0"),
                                            ready("10.244.2.6")])
    suffix = f"db.{ns}.svc.cluster.local."
    msg = wait_for(dnsd, f"_pg._tcp.{suffix}", "SRV", answers=[
        f"0 50 5432 db-0.{suffix}", f"0 50 5432 10-244-2-6.{suffix}"])
    assert sorted(rr.to_text() for rr in msg.additional) == sorted([
        f"db-0.{suffix} 5 IN A 10.244.2.5", f"10-244-2-6.{suffix} 5 IN A 10.244.2.6"])


def test_ptr_records(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web")["spec"]["clusterIP"]
    reverse = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
    wait_for(dnsd, reverse, "PTR", answers=[f"web.{ns}.svc.cluster.local."])
    svc(kube, ns, "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    endpoint_slice(kube, ns, "db-a", "db", [ready("10.244.3.5", "db-0"), ready("10.244.3.6")])
    suffix = f"db.{ns}.svc.cluster.local."
    wait_for(dnsd, "5.3.244.10.in-addr.arpa.", "PTR", answers=[f"db-0.{suffix}"])
    wait_for(dnsd, "6.3.244.10.in-addr.arpa.", "PTR", answers=[f"10-244-3-6.{suffix}"])
    # an address nobody owns is not ours: REFUSED without an upstream
    assert rcode(dnsd.query("9.9.244.10.in-addr.arpa.", "PTR")) == "REFUSED"


def test_external_name(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    svc(kube, ns, "ext", type="ExternalName", externalName="www.example.com", ports=[])
    name = f"ext.{ns}.svc.cluster.local."
    msg = wait_for(dnsd, name, "CNAME", answers=["www.example.com."])
    assert msg.flags & dns.flags.AA
    # without an upstream, other types get the CNAME for the client to follow
    assert data(dnsd.query(name, "A")) == ["www.example.com."]
    assert rcode(dnsd.query(f"x.{name}", "A")) == "NXDOMAIN"


def test_pod_records(dnsd: DnsdProcess, ns: str) -> None:
    # served once the namespace's watch event is in (no pod needs to exist: "insecure")
    wait_for(dnsd, f"10-244-1-7.{ns}.pod.cluster.local.", answers=["10.244.1.7"])
    assert rcode(dnsd.query("10-244-1-7.no-such-ns.pod.cluster.local.", "A")) == "NXDOMAIN"


def test_zone_records(dnsd: DnsdProcess) -> None:
    txt = dnsd.query("dns-version.cluster.local.", "TXT")
    assert data(txt) == ['"1.1.0"'] and txt.answer[0].ttl == 28800
    soa = dnsd.query("cluster.local.", "SOA")
    assert soa.answer[0][0].minimum == 5 and soa.answer[0][0].serial > 1_600_000_000
    ns_msg = dnsd.query("cluster.local.", "NS")
    assert data(ns_msg) == ["ns.dns.cluster.local."]
    assert data(ns_msg, "additional") == ["127.0.0.1"]


def test_kube_dns_service_is_the_nameserver(dnsd: DnsdProcess, kube: Client) -> None:
    kube.create(SERVICE, {"metadata": {"name": "kube-dns"}, "spec": {
        "clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                             {"name": "dns-tcp", "port": 53}]}}, "kube-system")
    try:
        msg = wait_for(dnsd, "cluster.local.", "NS",
                       answers=["kube-dns.kube-system.svc.cluster.local."])
        assert data(msg, "additional") == ["10.96.0.10"]
    finally:
        kube.delete(SERVICE, "kube-dns", "kube-system")
    wait_for(dnsd, "cluster.local.", "NS", answers=["ns.dns.cluster.local."])


def test_negative_answers(dnsd: DnsdProcess, ns: str) -> None:
    for name in (f"nope.{ns}.svc.cluster.local.", "nope.cluster.local.",
                 "nope.no-such-ns.svc.cluster.local.",
                 f"a.b.c.web.{ns}.svc.cluster.local.",
                 # the ndots:5 search path of a pod asking for kubernetes.io
                 f"kubernetes.io.{ns}.svc.cluster.local.", "kubernetes.io.svc.cluster.local."):
        msg = dnsd.query(name, "A")
        assert rcode(msg) == "NXDOMAIN", name
        check_soa(msg)
    for name in (f"{ns}.svc.cluster.local.", "svc.cluster.local.", "cluster.local."):
        msg = dnsd.query(name, "A")
        assert rcode(msg) == "NOERROR", name
        check_soa(msg)


def test_case_insensitive_and_echoed(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web")["spec"]["clusterIP"]
    wait_for(dnsd, f"web.{ns}.svc.cluster.local.", answers=[ip])
    mixed = f"WeB.{ns.upper()}.SvC.cLuStEr.LoCaL."
    for tcp in (False, True):
        msg = dnsd.query(mixed, "A", tcp=tcp)
        assert data(msg) == [ip]
        assert msg.answer[0].name.to_text() == mixed
        assert msg.question[0].name.to_text() == mixed
    nx = dnsd.query(f"NoPe.{ns}.SVC.Cluster.Local.", "A")
    assert nx.authority[0].name.to_text() == "Cluster.Local."  # the zone, as asked


def test_out_of_zone_is_refused_without_upstream(dnsd: DnsdProcess) -> None:
    msg = dnsd.query("example.com.", "A")
    assert rcode(msg) == "REFUSED"
    assert not msg.flags & dns.flags.AA and msg.answer == [] and msg.authority == []


def test_truncation_and_tcp(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    svc(kube, ns, "big", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    ips = [f"10.245.{i // 200}.{i % 200 + 1}" for i in range(120)]
    endpoint_slice(kube, ns, "big-a", "big", [ready(ip) for ip in ips])
    name = f"big.{ns}.svc.cluster.local."
    full = wait_for(dnsd, name, tcp=True, answers=ips)
    assert not full.flags & dns.flags.TC

    plain = dns.message.make_query(name, "A", use_edns=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(2)
        sock.sendto(plain.to_wire(), ("127.0.0.1", dnsd.port))
        wire = sock.recv(65535)
    finally:
        sock.close()
    assert len(wire) <= 512
    cut = dns.message.from_wire(wire)
    assert cut.flags & dns.flags.TC
    assert 20 <= len(data(cut)) < len(ips)  # what fits, as CoreDNS: not an empty reply

    edns = dnsd.query(name, "A", use_edns=0, payload=1232)
    assert edns.flags & dns.flags.TC and edns.edns == 0
    assert len(edns.to_wire()) <= 1232 and len(data(cut)) < len(data(edns)) < len(ips)
    # a bigger buffer doesn't buy a bigger datagram: 1,232 at most (CoreDNS's bufsize)
    roomy = dnsd.query(name, "A", use_edns=0, payload=4096)
    assert roomy.flags & dns.flags.TC and len(data(roomy)) == len(data(edns))


def test_edns_65535_srv_answer_is_capped(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    """Issue 15: an SRV query with EDNS 65535 on a 100-endpoint Service drew an 8.5 KB
    UDP answer. Now at most 1,232 bytes with TC, and the TCP retry gets everything."""
    svc(kube, ns, "wide", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    ips = [f"10.246.0.{i + 1}" for i in range(100)]
    endpoint_slice(kube, ns, "wide-a", "wide", [ready(ip, f"w{i}") for i, ip in enumerate(ips)])
    name = f"wide.{ns}.svc.cluster.local."
    full = wait_for(dnsd, name, "SRV", tcp=True)
    assert len(data(full)) == 100 and len(full.to_wire()) > 4000
    query = dns.message.make_query(name, "SRV", use_edns=0, payload=65535)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), ("127.0.0.1", dnsd.port))
        wire = sock.recv(65535)
    assert len(wire) <= 1232
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.TC and reply.edns == 0 and reply.payload <= 1232
    assert 0 < len(data(reply)) < 100


def test_malformed_and_unusual_queries(dnsd: DnsdProcess) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)

    def send(wire: bytes) -> dns.message.Message | None:
        sock.sendto(wire, ("127.0.0.1", dnsd.port))
        try:
            return dns.message.from_wire(sock.recv(65535), question_only=True)
        except TimeoutError:
            return None

    try:
        good = dns.message.make_query("cluster.local.", "SOA").to_wire()
        # a header and then garbage: FORMERR with the same ID
        garbage = send(good[:12] + b"\xff\xfe\xfd")
        assert garbage is not None and garbage.rcode() == dns.rcode.FORMERR
        assert garbage.id == struct.unpack("!H", good[:2])[0]
        two = good[:4] + b"\x00\x02" + good[6:] + good[12:]
        assert send(two).rcode() == dns.rcode.FORMERR  # type: ignore[union-attr]
        notify = dns.message.make_query("cluster.local.", "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        assert send(notify.to_wire()).rcode() == dns.rcode.NOTIMP  # type: ignore[union-attr]
        chaos = dns.message.make_query("version.bind.", "TXT", "CH")
        assert send(chaos.to_wire()).rcode() == dns.rcode.REFUSED  # type: ignore[union-attr]
        axfr = dns.message.make_query("cluster.local.", "AXFR")
        assert send(axfr.to_wire()).rcode() == dns.rcode.REFUSED  # type: ignore[union-attr]
        # a response, and a runt: no reply at all (answering responses invites loops).
        # Checked without waiting: a probe sent after them must get the first reply.
        probe = dns.message.make_query("cluster.local.", "SOA")
        sock.sendto(good[:2] + bytes([good[2] | 0x80]) + good[3:], ("127.0.0.1", dnsd.port))
        sock.sendto(b"\x00\x01\x02", ("127.0.0.1", dnsd.port))
        assert send(probe.to_wire()).id == probe.id  # type: ignore[union-attr]
    finally:
        sock.close()
    v1 = dns.message.make_query("cluster.local.", "SOA", use_edns=1)
    reply = dnsd_raw(dnsd, v1.to_wire())
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0


def dnsd_raw(dnsd: DnsdProcess, wire: bytes) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(wire, ("127.0.0.1", dnsd.port))
        return dns.message.from_wire(sock.recv(65535))


def test_tcp_pipelining(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web")["spec"]["clusterIP"]
    wait_for(dnsd, f"web.{ns}.svc.cluster.local.", answers=[ip])
    names = [f"web.{ns}.svc.cluster.local.", "nope.cluster.local.", "cluster.local."]
    queries = [dns.message.make_query(n, "A") for n in names]
    with socket.create_connection(("127.0.0.1", dnsd.port), timeout=2) as conn:
        conn.sendall(b"".join(struct.pack("!H", len(w)) + w
                              for w in (q.to_wire() for q in queries)))
        replies = []
        stream = conn.makefile("rb")
        for _ in queries:
            (length,) = struct.unpack("!H", stream.read(2))
            replies.append(dns.message.from_wire(stream.read(length)))
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [rcode(r) for r in replies] == ["NOERROR", "NXDOMAIN", "NOERROR"]


# -- behaviour -------------------------------------------------------------------------


def test_watch_drives_answers(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    name = f"live.{ns}.svc.cluster.local."
    assert rcode(dnsd.query(name)) == "NXDOMAIN"  # cached as negative, must not stick
    ip = svc(kube, ns, "live")["spec"]["clusterIP"]
    wait_for(dnsd, name, answers=[ip])  # within DEADLINE; milliseconds normally
    kube.delete(SERVICE, "live", ns)
    check_soa(wait_for(dnsd, name, want="NXDOMAIN"))

    svc(kube, ns, "hl", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    endpoint_slice(kube, ns, "hl-a", "hl", [ready("10.244.9.1")])
    hl = f"hl.{ns}.svc.cluster.local."
    wait_for(dnsd, hl, answers=["10.244.9.1"])
    current = kube.get(ENDPOINTSLICE, "hl-a", ns)
    current["endpoints"] = [ready("10.244.9.2"), ready("10.244.9.3")]
    kube.replace(ENDPOINTSLICE, current, ns)
    wait_for(dnsd, hl, answers=["10.244.9.2", "10.244.9.3"])
    kube.delete(ENDPOINTSLICE, "hl-a", ns)
    wait_for(dnsd, hl, want="NXDOMAIN")


def test_metrics_and_health(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    svc(kube, ns, "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    endpoint_slice(kube, ns, "db-a", "db", [ready("10.244.8.1")],
                   annotations={"endpoints.kubernetes.io/last-change-trigger-time": stamp})
    wait_for(dnsd, f"db.{ns}.svc.cluster.local.", answers=["10.244.8.1"])
    dnsd.query("nope.cluster.local.")
    text = dnsd.metrics()
    assert 'dns_responses_total{rcode="NOERROR"}' in text
    assert 'dns_responses_total{rcode="NXDOMAIN"}' in text
    assert 'dns_requests_total{proto="udp"}' in text
    assert "dns_request_duration_seconds_bucket{le=" in text
    assert 'dns_programming_duration_seconds_count{service_kind="headless"}' in text
    (line,) = [x for x in text.splitlines()
               if x.startswith('dns_programming_duration_seconds_sum{service_kind="headless"}')]
    assert 0 < float(line.split()[-1]) < 60
    assert "dns_ready 1.0" in text
    assert dnsd.healthz() and dnsd.readyz()


# -- a standard client agrees ----------------------------------------------------------


@pytest.mark.skipif(shutil.which("dig") is None,
                    reason="dig is missing (Debian package bind9-dnsutils; `make test` "
                           "installs it)")
def test_dig_agrees(dnsd: DnsdProcess, kube: Client, ns: str) -> None:
    ip = svc(kube, ns, "web")["spec"]["clusterIP"]
    name = f"web.{ns}.svc.cluster.local"
    wait_for(dnsd, name + ".", answers=[ip])

    def dig(*args: str) -> list[str]:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(dnsd.port), "+short", "+tries=1",
                              "+time=2", *args], capture_output=True, text=True, timeout=10,
                             check=True)
        return out.stdout.split("\n")[:-1]

    assert dig(name, "A") == [ip]
    assert dig(f"_http._tcp.{name}", "SRV") == [f"0 100 80 {name}."]
    assert dig("-x", ip) == [f"{name}."]
    assert dig("+tcp", name, "A") == [ip]
