"""dnsd.records: (zone data, name, type) → rcode + records, as zone-file lines.

One zone with every kind of Service the spec and CoreDNS distinguish; each row
is a question and the whole expected answer (answer, authority, additional).
"""

from __future__ import annotations

import dns.rcode
import pytest

from dnsd.model import Endpoint, Port, ServiceInfo, ServiceKind, SliceInfo
from dnsd.names import split_name
from dnsd.records import answer, answer_text, cache_tag, ptr_targets
from dnsd.zone import ZoneData

HTTP, HTTPS, PG = Port("http", "tcp", 80), Port("https", "tcp", 443), Port("pg", "tcp", 5432)
CIP, HL, EXT = ServiceKind.CLUSTER_IP, ServiceKind.HEADLESS, ServiceKind.EXTERNAL_NAME
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"
Z = "svc.cluster.local."

SERVICES = [
    ServiceInfo("default", "web", CIP, ("10.96.0.5",), (HTTP, HTTPS)),
    ServiceInfo("default", "dual", CIP, ("10.96.0.6", "fd00::6"), (HTTP,)),
    ServiceInfo("default", "unnamed", CIP, ("10.96.0.8",), (Port("", "tcp", 8080),)),
    ServiceInfo("default", "db", HL, (), (PG,)),
    ServiceInfo("default", "pub", HL, (), (PG,), publish_not_ready=True),
    ServiceInfo("default", "empty", HL, (), (PG,)),
    ServiceInfo("default", "noports", HL),
    ServiceInfo("default", "many", HL, (), (HTTP, HTTPS)),
    ServiceInfo("default", "ext", EXT, external_name="example.com"),
    ServiceInfo("default", "ipext", EXT, external_name="1.2.3.4"),
    ServiceInfo("default", "alias", EXT, external_name="web.default.svc.cluster.local"),
    ServiceInfo("default", "loop1", EXT, external_name="loop2.default.svc.cluster.local"),
    ServiceInfo("default", "loop2", EXT, external_name="loop1.default.svc.cluster.local"),
    ServiceInfo("other", "db", HL, (), (PG,)),
    ServiceInfo("kube-system", "kube-dns", CIP, ("10.96.0.10",),
                (Port("dns", "udp", 53), Port("dns-tcp", "tcp", 53))),
]
SLICES = [
    SliceInfo("default", "db-a", "db", (
        Endpoint("10.244.0.5", "db-0", True, (PG,)),
        Endpoint("10.244.0.6", "", True, (PG,)),
        Endpoint("10.244.0.7", "", False, (PG,)),
    )),
    SliceInfo("default", "db-b", "db", (Endpoint("fd00::7", "", True, (PG,)),
                                        Endpoint("10.244.0.5", "db-0", True, (PG,)))),
    SliceInfo("default", "pub-a", "pub", (Endpoint("10.244.1.1", "", False, (PG,)),)),
    SliceInfo("default", "empty-a", "empty", (Endpoint("10.244.2.1", "", False, (PG,)),)),
    SliceInfo("default", "noports-a", "noports", (Endpoint("10.244.3.1"),)),
    SliceInfo("default", "many-a", "many", (Endpoint("10.244.4.1", "", True, (HTTP, HTTPS)),
                                            Endpoint("10.244.4.2", "", True, (HTTP, HTTPS)),
                                            Endpoint("10.244.4.3", "", True, (HTTP, HTTPS)))),
    SliceInfo("other", "db-a", "db", (Endpoint("10.244.0.6", "x", True, (PG,)),)),
]


def make_zone(**options: object) -> ZoneData:
    zone = ZoneData(("cluster", "local"), ttl=5, serial=7, local_ips=("127.0.0.1",),
                    **options)  # type: ignore[arg-type]
    zone.replace_all(services=SERVICES, slices=SLICES,
                     namespaces=["default", "other", "kube-system", "lonely"])
    return zone


ZONE = make_zone()


def a(name: str, ip: str, ttl: int = 5) -> str:
    kind = "AAAA" if ":" in ip else "A"
    return f"{name} {ttl} IN {kind} {ip}"


CASES = [
    # ClusterIP: the ClusterIP, any number of endpoints (here none at all)
    ("web.default.svc.cluster.local", "A", "NOERROR", [a("web.default." + Z, "10.96.0.5")]),
    ("web.default.svc.cluster.local", "AAAA", "NOERROR", [SOA]),
    ("web.default.svc.cluster.local", "TXT", "NOERROR", [SOA]),
    ("web.default.svc.cluster.local", "MX", "NOERROR", [SOA]),
    ("dual.default.svc.cluster.local", "A", "NOERROR", [a("dual.default." + Z, "10.96.0.6")]),
    ("dual.default.svc.cluster.local", "AAAA", "NOERROR", [a("dual.default." + Z, "fd00::6")]),
    # SRV: named port; the ClusterIP in additional
    ("_http._tcp.web.default.svc.cluster.local", "SRV", "NOERROR", [
        f"_http._tcp.web.default.{Z} 5 IN SRV 0 100 80 web.default.{Z}",
        a("web.default." + Z, "10.96.0.5")]),
    ("_HTTPS._TCP.web.default.svc.cluster.local", "SRV", "NOERROR", [
        f"_https._tcp.web.default.{Z} 5 IN SRV 0 100 443 web.default.{Z}",
        a("web.default." + Z, "10.96.0.5")]),
    ("_http._udp.web.default.svc.cluster.local", "SRV", "NXDOMAIN", [SOA]),
    ("_nope._tcp.web.default.svc.cluster.local", "SRV", "NXDOMAIN", [SOA]),
    # SRV without _port._proto: every port (CoreDNS), weight split 50/50
    ("web.default.svc.cluster.local", "SRV", "NOERROR", [
        f"web.default.{Z} 5 IN SRV 0 50 80 web.default.{Z}",
        f"web.default.{Z} 5 IN SRV 0 50 443 web.default.{Z}",
        a("web.default." + Z, "10.96.0.5")]),
    # dual-stack: two candidate rows → weight 50, one SRV, both addresses
    ("_http._tcp.dual.default.svc.cluster.local", "SRV", "NOERROR", [
        f"_http._tcp.dual.default.{Z} 5 IN SRV 0 50 80 dual.default.{Z}",
        a("dual.default." + Z, "10.96.0.6"), a("dual.default." + Z, "fd00::6")]),
    # CoreDNS answers A for a port name, too
    ("_http._tcp.web.default.svc.cluster.local", "A", "NOERROR",
     [a("_http._tcp.web.default." + Z, "10.96.0.5")]),
    # an unnamed port gets no _port._proto name, but the service's own SRV lists it
    ("_http._tcp.unnamed.default.svc.cluster.local", "SRV", "NXDOMAIN", [SOA]),
    ("unnamed.default.svc.cluster.local", "SRV", "NOERROR", [
        f"unnamed.default.{Z} 5 IN SRV 0 100 8080 unnamed.default.{Z}",
        a("unnamed.default." + Z, "10.96.0.8")]),
    # ClusterIP Services have no endpoint names (spec)
    ("db-0.web.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    # headless: one A per ready address, deduplicated; AAAA for the v6 one
    ("db.default.svc.cluster.local", "A", "NOERROR", [
        a("db.default." + Z, "10.244.0.5"), a("db.default." + Z, "10.244.0.6")]),
    ("db.default.svc.cluster.local", "AAAA", "NOERROR", [a("db.default." + Z, "fd00::7")]),
    ("db-0.db.default.svc.cluster.local", "A", "NOERROR", [a("db-0.db.default." + Z,
                                                               "10.244.0.5")]),
    ("db-0.db.default.svc.cluster.local", "AAAA", "NOERROR", [SOA]),
    ("10-244-0-6.db.default.svc.cluster.local", "A", "NOERROR",
     [a("10-244-0-6.db.default." + Z, "10.244.0.6")]),
    ("fd00--7.db.default.svc.cluster.local", "AAAA", "NOERROR",
     [a("fd00--7.db.default." + Z, "fd00::7")]),
    # not ready → not published
    ("10-244-0-7.db.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("db-9.db.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    # headless SRV: one per endpoint × port, target the endpoint's name, weight 100/4
    ("_pg._tcp.db.default.svc.cluster.local", "SRV", "NOERROR", [
        f"_pg._tcp.db.default.{Z} 5 IN SRV 0 25 5432 db-0.db.default.{Z}",
        f"_pg._tcp.db.default.{Z} 5 IN SRV 0 25 5432 10-244-0-6.db.default.{Z}",
        f"_pg._tcp.db.default.{Z} 5 IN SRV 0 25 5432 fd00--7.db.default.{Z}",
        a("db-0.db.default." + Z, "10.244.0.5"),
        a("10-244-0-6.db.default." + Z, "10.244.0.6"),
        a("fd00--7.db.default." + Z, "fd00::7")]),
    # six candidate rows (3 endpoints × 2 ports) → weight 16
    ("many.default.svc.cluster.local", "SRV", "NOERROR", [
        *(f"many.default.{Z} 5 IN SRV 0 16 {port} 10-244-4-{i}.many.default.{Z}"
          for i in (1, 2, 3) for port in (80, 443)),
        *(a(f"10-244-4-{i}.many.default.{Z}", f"10.244.4.{i}") for i in (1, 2, 3))]),
    # publishNotReadyAddresses publishes not-ready endpoints
    ("pub.default.svc.cluster.local", "A", "NOERROR", [a("pub.default." + Z, "10.244.1.1")]),
    # headless with no ready endpoints: NXDOMAIN (spec)
    ("empty.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("empty.default.svc.cluster.local", "AAAA", "NXDOMAIN", [SOA]),
    # endpoints without ports: addresses yes, SRV nothing
    ("noports.default.svc.cluster.local", "A", "NOERROR",
     [a("noports.default." + Z, "10.244.3.1")]),
    ("noports.default.svc.cluster.local", "SRV", "NOERROR", [SOA]),
    # ExternalName: a CNAME for every type; sub-names and IP literals don't exist
    ("ext.default.svc.cluster.local", "CNAME", "NOERROR",
     [f"ext.default.{Z} 5 IN CNAME example.com."]),
    ("ext.default.svc.cluster.local", "A", "NOERROR",
     [f"ext.default.{Z} 5 IN CNAME example.com."]),
    ("_http._tcp.ext.default.svc.cluster.local", "SRV", "NXDOMAIN", [SOA]),
    ("x.ext.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("ipext.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    # an in-zone target is resolved here
    ("alias.default.svc.cluster.local", "A", "NOERROR", [
        f"alias.default.{Z} 5 IN CNAME web.default.{Z}", a("web.default." + Z, "10.96.0.5")]),
    # a loop ends before it repeats a record
    ("loop1.default.svc.cluster.local", "A", "NOERROR", [
        f"loop1.default.{Z} 5 IN CNAME loop2.default.{Z}",
        f"loop2.default.{Z} 5 IN CNAME loop1.default.{Z}"]),
    # names that don't exist, and structure names that do
    ("nope.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("web.nope.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("foo.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("a.b.c.web.default.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("default.svc.cluster.local", "A", "NOERROR", [SOA]),
    ("lonely.svc.cluster.local", "A", "NOERROR", [SOA]),
    ("missing.svc.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("svc.cluster.local", "A", "NOERROR", [SOA]),
    ("pod.cluster.local", "TXT", "NOERROR", [SOA]),
    # the apex
    ("cluster.local", "SOA", "NOERROR", [SOA]),
    ("cluster.local", "A", "NOERROR", [SOA]),
    ("cluster.local", "NS", "NOERROR", [
        f"cluster.local. 5 IN NS kube-dns.kube-system.{Z}", a("kube-dns.kube-system." + Z,
                                                                "10.96.0.10")]),
    ("ns.dns.cluster.local", "A", "NOERROR", [a("ns.dns.cluster.local.", "10.96.0.10")]),
    ("dns-version.cluster.local", "TXT", "NOERROR",
     ['dns-version.cluster.local. 28800 IN TXT "1.1.0"']),
    ("dns-version.cluster.local", "A", "NOERROR", [SOA]),
    # pods (insecure mode): built from the name, namespace must exist
    ("10-244-1-7.default.pod.cluster.local", "A", "NOERROR",
     [a("10-244-1-7.default.pod.cluster.local.", "10.244.1.7")]),
    ("10-244-1-7.default.pod.cluster.local", "AAAA", "NOERROR", [SOA]),
    ("fd00--9.default.pod.cluster.local", "AAAA", "NOERROR",
     [a("fd00--9.default.pod.cluster.local.", "fd00::9")]),
    ("10-244-1-7.missing.pod.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("not-an-ip.default.pod.cluster.local", "A", "NXDOMAIN", [SOA]),
    ("default.pod.cluster.local", "A", "NOERROR", [SOA]),
    # reverse: a ClusterIP names its Service; a headless endpoint, once per Service
    ("5.0.96.10.in-addr.arpa", "PTR", "NOERROR",
     [f"5.0.96.10.in-addr.arpa. 5 IN PTR web.default.{Z}"]),
    ("5.0.244.10.in-addr.arpa", "PTR", "NOERROR",
     [f"5.0.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.{Z}"]),
    ("6.0.244.10.in-addr.arpa", "PTR", "NOERROR", [
        f"6.0.244.10.in-addr.arpa. 5 IN PTR 10-244-0-6.db.default.{Z}",
        f"6.0.244.10.in-addr.arpa. 5 IN PTR x.db.other.{Z}"]),
    ("5.0.96.10.in-addr.arpa", "A", "NOERROR",
     ["in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 7 7200 1800 "
      "86400 5"]),
    ("6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "PTR", "NOERROR",
     ["6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR "
      f"dual.default.{Z}"]),
    # case never matters
    ("WeB.DeFaUlT.SvC.ClUsTeR.LoCaL", "A", "NOERROR", [a("web.default." + Z, "10.96.0.5")]),
]


@pytest.mark.parametrize(("name", "qtype", "rcode", "lines"), CASES,
                         ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_answer(name: str, qtype: str, rcode: str, lines: list[str]) -> None:
    result = answer_text(ZONE, name, qtype)
    assert (dns.rcode.to_text(result.rcode), result.lines()) == (rcode, lines)
    assert result.authoritative and not result.forward


@pytest.mark.parametrize("name", ["example.com", "kubernetes.io", "1.1.1.1.in-addr.arpa",
                                  "0.96.10.in-addr.arpa", "cluster.local.evil.com"])
def test_not_ours(name: str) -> None:
    result = answer_text(ZONE, name, "A")
    assert result.forward and not result.authoritative
    assert result.rcode == dns.rcode.REFUSED and result.lines() == []


def test_out_of_zone_cname_target_is_left_to_chase() -> None:
    assert answer_text(ZONE, "ext.default.svc.cluster.local", "A").chase == "example.com."
    assert answer_text(ZONE, "alias.default.svc.cluster.local", "A").chase == ""
    assert answer_text(ZONE, "ext.default.svc.cluster.local", "CNAME").chase == ""


def test_pod_records_disabled() -> None:
    zone = make_zone(pod_records=False)
    for name in ("10-244-1-7.default.pod.cluster.local", "default.pod.cluster.local"):
        assert answer_text(zone, name, "A").rcode == dns.rcode.NXDOMAIN
    assert answer_text(zone, "pod.cluster.local", "A").rcode == dns.rcode.NOERROR


def test_nameserver_falls_back_to_listen_addresses() -> None:
    zone = ZoneData(("cluster", "local"), serial=1, local_ips=("127.0.0.1", "::1"))
    assert answer_text(zone, "cluster.local", "NS").lines() == [
        "cluster.local. 5 IN NS ns.dns.cluster.local.",
        "ns.dns.cluster.local. 5 IN A 127.0.0.1", "ns.dns.cluster.local. 5 IN AAAA ::1"]
    assert answer_text(zone, "ns.dns.cluster.local", "AAAA").lines() == [
        "ns.dns.cluster.local. 5 IN AAAA ::1"]


def test_ttl_and_soa_follow_the_flag() -> None:
    zone = ZoneData(("cluster", "local"), ttl=600, serial=9)
    zone.put_service(ServiceInfo("default", "web", CIP, ("10.96.0.5",), (HTTP,)))
    assert answer_text(zone, "web.default.svc.cluster.local", "A").lines() == [
        "web.default.svc.cluster.local. 600 IN A 10.96.0.5"]
    assert answer_text(zone, "nope.cluster.local", "A").lines() == [
        "cluster.local. 300 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 9 7200 1800 "
        "86400 600"]


def test_serial_override() -> None:
    result = answer_text(ZONE, "nope.cluster.local", "A")
    assert " 7 7200 " in result.lines()[0]
    assert " 0 7200 " in answer(ZONE, split_name("nope.cluster.local"), 1, serial=0).lines()[0]


def test_cluster_ip_wins_ptr() -> None:
    zone = make_zone()
    zone.put_slice(SliceInfo("default", "db-c", "db", (Endpoint("10.96.0.5", "", True, (PG,)),)))
    assert ptr_targets(zone, "10.96.0.5") == [f"web.default.{Z}"]
    assert ptr_targets(zone, "10.244.0.7") == []  # not ready: no PTR


@pytest.mark.parametrize(("name", "tag"), [
    ("nope.default.svc.cluster.local", ("svc", "default", "nope")),
    ("api.example.com.default.svc.cluster.local", ("svc", "default", "com")),
    ("api.example.com.svc.cluster.local", ("svc", "com", "example")),
    ("x.db.default.svc.cluster.local", ("svc", "default", "db")),
    ("missing.svc.cluster.local", ("ns", "missing")),
    ("10-1-2-3.missing.pod.cluster.local", ("ns", "missing")),
    ("5.0.96.10.in-addr.arpa", ("ip", "10.96.0.5")),
    ("api.example.com.cluster.local", ()),
    ("example.com", ()),
    ("cluster.local", ("apex",)),
    ("alias.default.svc.cluster.local", ("any",)),  # a CNAME chain reads two Services
])
def test_cache_tag(name: str, tag: tuple[str, ...]) -> None:
    labels = split_name(name)
    assert cache_tag(ZONE, labels, answer(ZONE, labels, 1)) == tag
