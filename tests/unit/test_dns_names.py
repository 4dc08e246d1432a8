"""dnsd.names: query name → ParsedName, as a table (CoreDNS's parse_test.go cases and ours)."""

from __future__ import annotations

import pytest

from dnsd.names import (
    NameKind,
    ParsedName,
    address_from_dashed,
    address_from_reverse,
    dashed_address,
    parse_name,
    reverse_labels,
    split_name,
)

ZONE = ("cluster", "local")
K = NameKind


@pytest.mark.parametrize(("name", "expected"), [
    ("cluster.local", ParsedName(K.APEX)),
    ("dns-version.cluster.local", ParsedName(K.DNS_VERSION)),
    ("ns.dns.cluster.local", ParsedName(K.NS_HOST)),
    ("svc.cluster.local", ParsedName(K.SVC_ROOT)),
    ("pod.cluster.local", ParsedName(K.POD_ROOT)),
    ("default.svc.cluster.local", ParsedName(K.NAMESPACE, namespace="default")),
    ("web.default.svc.cluster.local", ParsedName(K.SERVICE, namespace="default", service="web")),
    ("db-0.db.prod.svc.cluster.local",
     ParsedName(K.ENDPOINT, namespace="prod", service="db", endpoint="db-0")),
    ("_http._tcp.web.default.svc.cluster.local",
     ParsedName(K.PORT, namespace="default", service="web", port="http", protocol="tcp")),
    # underscores are optional, as in CoreDNS
    ("http.tcp.web.default.svc.cluster.local",
     ParsedName(K.PORT, namespace="default", service="web", port="http", protocol="tcp")),
    ("a.b.c.web.default.svc.cluster.local", ParsedName(K.INVALID)),
    ("foo.cluster.local", ParsedName(K.INVALID)),
    ("web.default.nope.cluster.local", ParsedName(K.INVALID)),
    ("dns-version.x.cluster.local", ParsedName(K.INVALID)),
    ("default.pod.cluster.local", ParsedName(K.POD_NAMESPACE, namespace="default")),
    ("10-244-1-7.default.pod.cluster.local",
     ParsedName(K.POD, namespace="default", ip="10.244.1.7")),
    ("fd00--1.default.pod.cluster.local", ParsedName(K.POD, namespace="default", ip="fd00::1")),
    ("10-244-1.default.pod.cluster.local", ParsedName(K.INVALID)),
    ("10-244-1-999.default.pod.cluster.local", ParsedName(K.INVALID)),
    ("x.10-244-1-7.default.pod.cluster.local", ParsedName(K.INVALID)),
    ("1.0.96.10.in-addr.arpa", ParsedName(K.REVERSE, ip="10.96.0.1")),
    ("0.96.10.in-addr.arpa", ParsedName(K.OUTSIDE)),
    ("01.0.96.10.in-addr.arpa", ParsedName(K.OUTSIDE)),
    ("256.0.96.10.in-addr.arpa", ParsedName(K.OUTSIDE)),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
     ParsedName(K.REVERSE, ip="fd00::1")),
    ("example.com", ParsedName(K.OUTSIDE)),
    ("local", ParsedName(K.OUTSIDE)),
    ("notcluster.local", ParsedName(K.OUTSIDE)),
    (".", ParsedName(K.OUTSIDE)),
    ("WEB.Default.SVC.Cluster.Local", ParsedName(K.SERVICE, namespace="default", service="web")),
])
def test_parse_name(name: str, expected: ParsedName) -> None:
    assert parse_name(split_name(name), ZONE) == expected


def test_other_zone() -> None:
    zone = split_name("k8s.example.org")
    assert parse_name(split_name("web.ns.svc.k8s.example.org"), zone).kind is K.SERVICE
    assert parse_name(split_name("web.ns.svc.cluster.local"), zone).kind is K.OUTSIDE


@pytest.mark.parametrize(("ip", "label"), [
    ("10.0.0.5", "10-0-0-5"),
    ("2001:db8::1", "2001-db8--1"),
    ("::1", "0--1"),
    ("fd00::", "fd00--0"),
])
def test_dashed_address(ip: str, label: str) -> None:
    assert dashed_address(ip) == label


@pytest.mark.parametrize(("label", "ip"), [
    ("10-0-0-5", "10.0.0.5"),
    ("2001-db8--1", "2001:db8::1"),
    ("fd00-0-0-0-0-0-0-1", "fd00::1"),
    ("10-0-0", ""),
    ("web", ""),
    ("1-2-3-4-5", ""),
])
def test_address_from_dashed(label: str, ip: str) -> None:
    assert address_from_dashed(label) == ip


@pytest.mark.parametrize("ip", ["10.96.0.1", "192.168.255.0", "fd00::1", "2001:db8::abcd:1"])
def test_reverse_round_trip(ip: str) -> None:
    assert address_from_reverse(reverse_labels(ip)) == ip


def test_reverse_rejects_bad_nibbles() -> None:
    labels = list(reverse_labels("fd00::1"))
    labels[0] = "g"
    assert address_from_reverse(tuple(labels)) == ""
    labels[0] = "10"
    assert address_from_reverse(tuple(labels)) == ""
