"""dnsd.index: handler calls (as an informer makes them) → precomputed wire answers.

Objects are the API's dict shapes; the clock is a field, so programming-latency
observations are exact.
"""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype

from dnsd.index import Index
from dnsd.metrics import Metrics
from dnsd.names import reverse_labels, split_name
from dnsd.wire import AnswerTable, fast_reply, question_key
from dnsd.zone import ZoneData

NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def service(name: str, *, ip: str = "10.96.0.5", ns: str = "default", rv: str = "1",
            annotations: dict | None = None, **spec: object) -> dict:
    body = {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "annotations": annotations or {}}, "spec": body}


def endpoint_slice(name: str, service_name: str, addresses: list[str], *, rv: str = "1",
                   annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service_name},
                         "annotations": annotations or {}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def make(live: bool = True) -> tuple[Index, Clock]:
    clock = Clock()
    index = Index(ZoneData(("cluster", "local")), AnswerTable(ra=False), Metrics(), clock=clock)
    index.namespace_added({"metadata": {"name": "default"}})
    if live:
        index.go_live()
    return index, clock


def key(name: str, qtype: str) -> bytes:
    return question_key(split_name(name), dns.rdatatype.from_text(qtype))


def resolve(index: Index, name: str, qtype: str = "A") -> tuple[str, list[str]]:
    result = fast_reply(index.table, dns.message.make_query(name, qtype).to_wire(), udp=False)
    assert result is not None, f"{name}/{qtype} is not precomputed"
    reply = dns.message.from_wire(result[0])
    return dns.rcode.to_text(reply.rcode()), [rd.to_text() for rr in reply.answer for rd in rr]


def test_service_lifecycle() -> None:
    index, clock = make()
    index.service_added(service("web"))
    assert resolve(index, "web.default.svc.cluster.local.") == ("NOERROR", ["10.96.0.5"])
    assert resolve(index, "web.default.svc.cluster.local.", "AAAA") == ("NOERROR", [])
    assert resolve(index, "_http._tcp.web.default.svc.cluster.local.", "SRV") == (
        "NOERROR", ["0 100 80 web.default.svc.cluster.local."])
    ptr = ".".join(reverse_labels("10.96.0.5")) + "."
    assert resolve(index, ptr, "PTR") == ("NOERROR", ["web.default.svc.cluster.local."])
    assert index.zone.serial == int(NOW)

    # a no-op update (new resourceVersion, nothing DNS sees) re-renders nothing
    before = index.table.entries[key("web.default.svc.cluster.local", "A")]
    clock.now += 10
    index.service_updated(service("web"), service("web", rv="2"))
    assert index.table.entries[key("web.default.svc.cluster.local", "A")] is before
    assert index.zone.serial == int(NOW)

    # a port rename replaces the SRV names
    index.service_updated(service("web"), service("web", rv="3",
                                                  ports=[{"name": "web", "port": 8080}]))
    assert key("_http._tcp.web.default.svc.cluster.local", "SRV") not in index.table.entries
    assert resolve(index, "_web._tcp.web.default.svc.cluster.local.", "SRV") == (
        "NOERROR", ["0 100 8080 web.default.svc.cluster.local."])
    assert index.zone.serial == int(NOW) + 10

    index.service_deleted(service("web", rv="4"))
    assert not any(k.startswith(b"\x03web") for k in index.table.entries)
    assert key(ptr, "PTR") not in index.table.entries


def test_headless_follows_its_slices() -> None:
    index, _ = make()
    index.service_added(service("db", ip="None"))
    assert key("db.default.svc.cluster.local", "A") not in index.table.entries  # NXDOMAIN
    index.slice_added(endpoint_slice("db-1", "db", ["10.244.0.5", "10.244.0.6"]))
    assert resolve(index, "db.default.svc.cluster.local.") == ("NOERROR",
                                                               ["10.244.0.5", "10.244.0.6"])
    assert resolve(index, "10-244-0-6.db.default.svc.cluster.local.") == ("NOERROR",
                                                                          ["10.244.0.6"])
    index.slice_updated(endpoint_slice("db-1", "db", []),
                        endpoint_slice("db-1", "db", ["10.244.0.5"], rv="2"))
    assert resolve(index, "db.default.svc.cluster.local.") == ("NOERROR", ["10.244.0.5"])
    assert key("10-244-0-6.db.default.svc.cluster.local", "A") not in index.table.entries
    assert key("6.0.244.10.in-addr.arpa", "PTR") not in index.table.entries
    index.slice_deleted(endpoint_slice("db-1", "db", ["10.244.0.5"], rv="3"))
    assert key("db.default.svc.cluster.local", "A") not in index.table.entries


def test_changes_drop_only_the_cached_answers_they_touch() -> None:
    index, _ = make()
    entry = index.table.entries[key("cluster.local", "SOA")]
    index.table.put_cached(b"web", entry, ("svc", "default", "web"))
    index.table.put_cached(b"api", entry, ("svc", "default", "api"))
    index.table.put_cached(b"invalid", entry, ())
    index.table.put_cached(b"chain", entry, ("any",))
    index.table.put_cached(b"ns", entry, ("ns", "default"))
    index.table.put_cached(b"ptr", entry, ("ip", "10.96.0.5"))
    index.service_added(service("web"))
    assert set(index.table.cache) == {b"api", b"invalid"}


def test_nothing_is_rendered_before_going_live() -> None:
    index, _ = make(live=False)
    index.service_added(service("web"))
    assert index.table.entries == {}
    index.go_live()
    assert resolve(index, "web.default.svc.cluster.local.") == ("NOERROR", ["10.96.0.5"])
    assert resolve(index, "default.svc.cluster.local.") == ("NOERROR", [])
    assert resolve(index, "cluster.local.", "NS")[1] == ["ns.dns.cluster.local."]


def test_dns_service_becomes_the_nameserver() -> None:
    index, _ = make()
    index.service_added(service("kube-dns", ns="kube-system", ip="10.96.0.10"))
    assert resolve(index, "cluster.local.", "NS") == (
        "NOERROR", ["kube-dns.kube-system.svc.cluster.local."])


def test_alias_follows_its_target() -> None:
    index, _ = make()
    index.service_added(service("web"))
    index.service_added(service("alias", type="ExternalName", ip="",
                                externalName="web.default.svc.cluster.local"))
    assert resolve(index, "alias.default.svc.cluster.local.")[1] == [
        "web.default.svc.cluster.local.", "10.96.0.5"]
    index.service_updated(service("web"), service("web", ip="10.96.0.7", rv="2"))
    assert resolve(index, "alias.default.svc.cluster.local.")[1] == [
        "web.default.svc.cluster.local.", "10.96.0.7"]
    # an alias made before its target picks the target up when it comes
    index.service_added(service("early", type="ExternalName", ip="",
                                externalName="late.default.svc.cluster.local"))
    index.service_added(service("late", ip="10.96.0.8"))
    assert resolve(index, "early.default.svc.cluster.local.")[1] == [
        "late.default.svc.cluster.local.", "10.96.0.8"]
    # only in-zone aliases are re-rendered on every change, and only while they are aliases
    index.service_added(service("out", type="ExternalName", ip="", externalName="example.com"))
    index.service_updated(service("early"), service("early", ip="10.96.0.9", rv="2"))
    index.service_deleted(service("alias"))
    assert index.zone.in_zone_aliases() == set()


def test_programming_latency_is_observed_from_precise_timestamps() -> None:
    index, clock = make()
    histogram = index.metrics.programming
    index.service_added(service("web"))  # no precise time: not observed
    assert histogram.count(("cluster_ip",)) == 0
    stamp = {"endpoints.kubernetes.io/last-change-trigger-time": "2023-11-14T22:13:19.95Z"}
    clock.now = 1_699_999_999.95 + 0.05
    index.slice_added(endpoint_slice("web-1", "web", ["10.244.0.5"], annotations=stamp))
    assert histogram.count(("cluster_ip",)) == 1
    assert abs(histogram.total(("cluster_ip",)) - 0.05) < 1e-6
    assert "dns_programming_duration_seconds_count{service_kind=\"cluster_ip\"} 1.0" \
        in index.metrics.render().splitlines()
