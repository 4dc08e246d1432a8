"""API objects → validated proxy values; anything unsafe for iptables-restore is rejected."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.proxy.model import (
    Endpoint,
    InvalidObject,
    ServicePort,
    check_cidr,
    check_ipv4,
    external_addresses,
    merge_endpoints,
    service_ports,
    slice_endpoints,
    slice_service,
    trigger_time,
)
from nodeagent.proxy.ruleset import Context, UnsafeRule, build_fragment, rule


def svc(**spec: Any) -> dict[str, Any]:
    meta = spec.pop("metadata", {"namespace": "demo", "name": "web"})
    base = {"type": "ClusterIP", "clusterIP": "10.96.0.20",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return {"metadata": meta, "spec": {**base, **spec}}


def eps(*endpoints: dict[str, Any], ports: list[dict[str, Any]] | None = None,
        address_type: str = "IPv4") -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": "web-1",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": address_type, "endpoints": list(endpoints),
            "ports": ports if ports is not None else
            [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def test_service_ports_basic() -> None:
    [sp] = service_ports(svc())
    assert sp == ServicePort("demo", "web", "http", "TCP", "10.96.0.20", 80)
    assert sp.service_port_name == "demo/web:http" and sp.key == "demo/web:http/TCP"


def test_node_port_affinity_and_policies() -> None:
    [sp] = service_ports(svc(type="NodePort", sessionAffinity="ClientIP",
                             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                             externalTrafficPolicy="Local", internalTrafficPolicy="Local",
                             ports=[{"port": 53, "protocol": "UDP", "nodePort": 30053}]))
    assert (sp.port_name, sp.protocol, sp.node_port, sp.affinity_seconds) == \
        ("", "UDP", 30053, 60)
    assert sp.external_local and sp.internal_local and sp.is_external


def test_affinity_default_timeout_and_cluster_ip_type_ignores_node_port() -> None:
    [sp] = service_ports(svc(sessionAffinity="ClientIP",
                             ports=[{"port": 80, "nodePort": 30080}],
                             externalTrafficPolicy="Local"))
    assert sp.affinity_seconds == 10800 and sp.node_port is None and not sp.external_local


@pytest.mark.parametrize("spec", [
    {"type": "ExternalName", "externalName": "example.com", "clusterIP": ""},
    {"clusterIP": "None"},  # headless
    {"clusterIP": ""},  # not allocated yet
    {"clusterIP": "fd00::10"},  # IPv6: not this proxy's table
])
def test_services_without_rules(spec: dict[str, Any]) -> None:
    assert service_ports(svc(**spec)) == []


# Every one of these would put something other than a plain token into the restore text.
UNSAFE_SERVICES = [
    {"metadata": {"namespace": "demo", "name": 'web" -j ACCEPT'}},
    {"metadata": {"namespace": "demo\n-A INPUT", "name": "web"}},
    {"metadata": {"namespace": "demo", "name": "Web"}},
    {"metadata": {"namespace": "demo", "name": "w" * 64}},
    {"metadata": {"namespace": "demo", "name": None}},
    {"clusterIP": "10.96.0.1 -j ACCEPT"},
    {"clusterIP": "10.96.0.020"},
    {"clusterIP": "10.96.0"},
    {"clusterIP": "127.0.0.1"},
    {"clusterIP": "0.0.0.0"},
    {"clusterIP": "224.0.0.1"},
    {"clusterIP": 167772160},
    {"ports": [{"name": "http port", "port": 80}]},
    {"ports": [{"name": 'h"', "port": 80}]},
    {"ports": [{"name": "http", "port": "80"}]},
    {"ports": [{"name": "http", "port": 0}]},
    {"ports": [{"name": "http", "port": 70000}]},
    {"ports": [{"name": "http", "port": True}]},
    {"ports": [{"name": "http", "port": 80, "protocol": "ICMP"}]},
    {"ports": [{"name": "http", "port": 80, "protocol": "tcp -j ACCEPT"}]},
    {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": "30000 -j DROP"}]},
    {"sessionAffinity": "ClientIP", "sessionAffinityConfig":
        {"clientIP": {"timeoutSeconds": "10 --reap"}}},
    {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
    {"ports": "80"},
]


@pytest.mark.parametrize("change", UNSAFE_SERVICES)
def test_unsafe_services_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidObject):
        service_ports(svc(**change))


def test_slice_endpoints_and_condition_defaults() -> None:
    got = slice_endpoints(eps(
        {"addresses": ["10.244.1.5"], "nodeName": "node-a"},
        {"addresses": ["10.244.1.6"], "conditions": {"ready": False}},
        {"addresses": ["10.244.1.7"],
         "conditions": {"ready": False, "serving": True, "terminating": True}},
    ))
    assert got == {("http", "TCP"): [
        Endpoint("10.244.1.5", 8080, "node-a", ready=True, serving=True, terminating=False),
        Endpoint("10.244.1.6", 8080, "", ready=False, serving=False, terminating=False),
        Endpoint("10.244.1.7", 8080, "", ready=False, serving=True, terminating=True),
    ]}
    assert slice_service(eps()) == ("demo", "web")
    assert slice_endpoints(eps(address_type="IPv6")) == {}
    assert slice_endpoints(eps({"addresses": ["10.244.1.5"]}, ports=[{"name": "x"}])) == {}


@pytest.mark.parametrize("endpoint", [
    {"addresses": ["10.244.1.5; -j ACCEPT"]},
    {"addresses": ["10.244.1.05"]},
    {"addresses": ["10.244.1.5\n"]},
    {"addresses": ["127.0.0.1"]},
    {"addresses": ["169.254.1.1"]},
    {"addresses": ["10.244.1.5"], "nodeName": "node a"},
])
def test_unsafe_endpoints_are_rejected(endpoint: dict[str, Any]) -> None:
    with pytest.raises(InvalidObject):
        slice_endpoints(eps(endpoint))


@pytest.mark.parametrize("port", [{"name": "http", "port": 65536, "protocol": "TCP"},
                                  {"name": "HTTP", "port": 80, "protocol": "TCP"},
                                  {"name": "http", "port": 80, "protocol": "GRE"}])
def test_unsafe_slice_ports_are_rejected(port: dict[str, Any]) -> None:
    with pytest.raises(InvalidObject):
        slice_endpoints(eps({"addresses": ["10.244.1.5"]}, ports=[port]))


def test_merge_dedupes_and_sorts_as_strings() -> None:
    a = {("http", "TCP"): [Endpoint("10.0.0.2", 80), Endpoint("10.0.0.10", 80)]}
    b = {("http", "TCP"): [Endpoint("10.0.0.2", 80, ready=False), Endpoint("10.0.0.3", 80)]}
    merged = merge_endpoints([a, b])[("http", "TCP")]
    # lexicographic, as kube-proxy sorts "ip:port": 10.0.0.10 before 10.0.0.2
    assert [e.address for e in merged] == ["10.0.0.10:80", "10.0.0.2:80", "10.0.0.3:80"]
    assert merged[1].ready  # the first slice's copy wins


@pytest.mark.parametrize(("value", "expected"), [
    ("2023-11-14T22:13:20Z", 1700000000.0),
    ("2023-11-14T22:13:20.5Z", 1700000000.5),
    ("2023-11-14T23:13:20.25+01:00", 1700000000.25),
    ("yesterday", None),
    (None, None),
])
def test_trigger_time(value: Any, expected: float | None) -> None:
    obj = {"metadata": {"annotations":
                        {"endpoints.kubernetes.io/last-change-trigger-time": value}}}
    assert trigger_time(obj) == expected


def test_cidr_and_ip_checks() -> None:
    assert check_cidr("10.244.0.0/16", "x") == "10.244.0.0/16"
    for bad in ("10.244.0.1/16", "10.244.0.0/33", "10.244.0.0/16 -j ACCEPT"):
        with pytest.raises(InvalidObject):
            check_cidr(bad, "x")
    assert check_ipv4("10.96.0.1", "x") == "10.96.0.1"


@pytest.mark.parametrize("args", [("-d", "10.0.0.1 -j ACCEPT"), ("-j", 'X"'), ("-j", "A\nB"),
                                  ("-j", "A#"), ("-s", "")])
def test_rule_tokens_are_checked_again(args: tuple[str, ...]) -> None:
    with pytest.raises(UnsafeRule):
        rule("KUBE-SERVICES", *args)


@pytest.mark.parametrize("comment", ['a"b', "a\nb", "a\\b", "a`b"])
def test_rule_comments_are_checked(comment: str) -> None:
    with pytest.raises(UnsafeRule):
        rule("KUBE-SERVICES", "-j", "RETURN", comment=comment)
    with pytest.raises(UnsafeRule):
        rule("KUBE-SERVICES\n", "-j", "RETURN")


def test_a_value_that_skipped_the_model_still_cannot_reach_the_text() -> None:
    forged = ServicePort("demo", "web", "http", "TCP", "10.96.0.1 -j ACCEPT", 80)
    with pytest.raises(UnsafeRule):
        build_fragment(forged, (Endpoint("10.244.1.5", 80),), Context("n"))


def lb(spec: dict[str, Any], *ingress: dict[str, Any]) -> dict[str, Any]:
    service = svc(type="LoadBalancer", **spec)
    service["status"] = {"loadBalancer": {"ingress": list(ingress)}}
    return service


def test_external_addresses_of_a_load_balancer() -> None:
    service = lb({"externalIPs": ["192.0.2.10", "192.0.2.9", "192.0.2.10", "2001:db8::1"],
                  "loadBalancerSourceRanges": [" 10.250.0.1/24 ", "10.0.0.0/8", "2001:db8::/64"]},
                 {"ip": "10.250.0.200"}, {"hostname": "lb.example"}, {"ip": "2001:db8::2"},
                 {"ip": "10.250.0.201", "ipMode": "Proxy"}, {"ip": "10.250.0.202", "ipMode": "VIP"},
                 {"ip": "127.0.0.5"}, {"ip": "224.0.0.1"})
    # sorted, unique, IPv4 only; hostname-only and ipMode Proxy entries, and addresses
    # nothing is DNATed from (loopback, multicast), get no rule;
    # ranges trimmed and canonical (host bits cleared, as iptables-save prints them)
    assert external_addresses(service) == (("192.0.2.10", "192.0.2.9"),
                                           ("10.250.0.200", "10.250.0.202"),
                                           ("10.0.0.0/8", "10.250.0.0/24"))
    [port] = service_ports(service)
    assert port.is_external and port.uses_firewall
    assert port.load_balancer_ips == ("10.250.0.200", "10.250.0.202")


def test_ingress_and_ranges_count_only_on_a_load_balancer() -> None:
    service = svc(externalIPs=["192.0.2.10"], externalTrafficPolicy="Local")
    service["status"] = {"loadBalancer": {"ingress": [{"ip": "10.250.0.200"}]}}
    [port] = service_ports(service)
    assert (port.external_ips, port.load_balancer_ips, port.node_port) == (("192.0.2.10",), (), None)
    # a ClusterIP Service with externalIPs is externally accessible: its policy counts
    assert port.is_external and port.external_local


@pytest.mark.parametrize(("spec", "ingress", "field"), [
    ({"externalIPs": ["192.0.2.1 -j ACCEPT"]}, [], "spec.externalIPs[0]"),
    ({"loadBalancerSourceRanges": ["10.0.0.0/8\n-A X"]}, [], "spec.loadBalancerSourceRanges[0]"),
    ({"loadBalancerSourceRanges": ["10.0.0.1"]}, [], "spec.loadBalancerSourceRanges[0]"),
    ({}, [{"ip": "10.250.0.300"}], "status.loadBalancer.ingress[0].ip"),
])
def test_external_addresses_that_would_reach_the_ruleset_are_checked(
        spec: dict[str, Any], ingress: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(InvalidObject, match=field.replace("[", r"\[").replace("]", r"\]")):
        service_ports(lb(spec, *ingress))
