"""apimachinery.services: what each Service type implies, as one table of specs → facts."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from apimachinery import services as facts
from apimachinery.services import DNSKind


class Facts(NamedTuple):
    cluster_ip: bool  # has_cluster_ip
    headless: bool
    node_ports: bool  # has_node_ports
    allocates: bool  # allocates_node_ports
    health_check: bool
    lb_ingress: bool
    external: bool  # is_externally_accessible
    proxied: bool
    dns: DNSKind


def facts_of(spec: dict[str, Any]) -> Facts:
    return Facts(facts.has_cluster_ip(spec), facts.is_headless(spec), facts.has_node_ports(spec),
                 facts.allocates_node_ports(spec), facts.needs_health_check(spec),
                 facts.has_load_balancer_ingress(spec), facts.is_externally_accessible(spec),
                 facts.is_proxied(spec), facts.dns_kind(spec))


IP = "10.96.0.5"
CIP, HL, EXT = DNSKind.CLUSTER_IP, DNSKind.HEADLESS, DNSKind.EXTERNAL_NAME
F, T = False, True

CASES: list[tuple[str, dict[str, Any], Facts]] = [
    ("cluster-ip", {"type": "ClusterIP", "clusterIP": IP},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    ("cluster-ip, no address yet", {"type": "ClusterIP"},
     Facts(T, F, F, F, F, F, F, F, CIP)),
    ("cluster-ip with externalIPs", {"type": "ClusterIP", "clusterIP": IP,
                                     "externalIPs": ["192.0.2.1"]},
     Facts(T, F, F, F, F, F, T, T, CIP)),
    ("headless", {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]},
     Facts(T, T, F, F, F, F, F, F, HL)),
    ("headless, only clusterIPs written", {"type": "ClusterIP", "clusterIPs": ["None"]},
     Facts(T, T, F, F, F, F, F, F, HL)),
    ("node-port", {"type": "NodePort", "clusterIP": IP},
     Facts(T, F, T, T, F, F, T, T, CIP)),
    ("load-balancer", {"type": "LoadBalancer", "clusterIP": IP},
     Facts(T, F, T, T, F, T, T, T, CIP)),
    ("load-balancer, Local", {"type": "LoadBalancer", "clusterIP": IP,
                              "externalTrafficPolicy": "Local"},
     Facts(T, F, T, T, T, T, T, T, CIP)),
    ("load-balancer, no node ports", {"type": "LoadBalancer", "clusterIP": IP,
                                      "allocateLoadBalancerNodePorts": False},
     Facts(T, F, T, F, F, T, T, T, CIP)),
    ("node-port, Local: no health check", {"type": "NodePort", "clusterIP": IP,
                                           "externalTrafficPolicy": "Local"},
     Facts(T, F, T, T, F, F, T, T, CIP)),
    ("external-name", {"type": "ExternalName", "externalName": "db.example.com"},
     Facts(F, F, F, F, F, F, F, F, EXT)),
    ("external-name with a leftover clusterIP", {"type": "ExternalName", "clusterIP": IP},
     Facts(F, F, F, F, F, F, F, F, EXT)),
    ("type unset: ClusterIP", {"clusterIP": IP, "externalIPs": ["192.0.2.1"]},
     Facts(T, F, F, F, F, F, T, T, CIP)),
    ("type empty: ClusterIP", {"type": "", "clusterIP": IP},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    # odd input: no rule matches, nothing raises (validation reports it)
    ("unknown type", {"type": "Weird", "clusterIP": IP},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    ("type not a string", {"type": ["NodePort"], "clusterIP": IP, "externalIPs": ["x"]},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    ("externalIPs not a list", {"type": "ClusterIP", "clusterIP": IP, "externalIPs": "x"},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    ("clusterIP not a string", {"type": "ClusterIP", "clusterIP": 5},
     Facts(T, F, F, F, F, F, F, T, CIP)),
    ("allocate flag not a bool", {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": 0},
     Facts(T, F, T, T, F, T, T, F, CIP)),
    ("empty spec", {}, Facts(T, F, F, F, F, F, F, F, CIP)),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_facts(spec: dict[str, Any], expected: Facts) -> None:
    assert facts_of(spec) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": None}, "ClusterIP"),
    ({"type": ""}, "ClusterIP"),
    ({"type": "NodePort"}, "NodePort"),
    ({"type": 0}, 0),  # as written, for validation to report
])
def test_service_type(spec: dict[str, Any], expected: object) -> None:
    assert facts.service_type(spec) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"clusterIP": IP, "clusterIPs": [IP, "fd00::5"]}, [IP, "fd00::5"]),
    ({"clusterIP": IP}, [IP]),
    ({"clusterIPs": ["None"], "clusterIP": "None"}, []),
    ({"clusterIPs": [], "clusterIP": IP}, [IP]),
    ({"clusterIPs": "10.96.0.5"}, []),  # not a list: ignored
    ({"clusterIPs": [5, "", None, IP]}, [IP]),
    ({"clusterIP": "garbage"}, ["garbage"]),  # validity is the caller's question
    ({}, []),
])
def test_cluster_ips(spec: dict[str, Any], expected: list[str]) -> None:
    assert facts.cluster_ips(spec) == expected


NP_PORTS = [{"port": 80, "nodePort": 30080}]
LEFTOVER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("ClusterIP → ExternalName drops the unchanged IP fields",
     {"type": "ClusterIP", "clusterIP": IP, "clusterIPs": [IP], "ipFamilies": ["IPv4"],
      "ipFamilyPolicy": "SingleStack"},
     {"type": "ExternalName", "externalName": "x.example", "clusterIP": IP, "clusterIPs": [IP],
      "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
     {"type": "ExternalName", "externalName": "x.example"}),
    ("a changed clusterIP is kept for validation",
     {"type": "ClusterIP", "clusterIP": IP},
     {"type": "ExternalName", "clusterIP": "10.96.0.6"},
     {"type": "ExternalName", "clusterIP": "10.96.0.6"}),
    ("NodePort → ClusterIP drops unchanged nodePorts and the traffic policy",
     {"type": "NodePort", "ports": NP_PORTS, "externalTrafficPolicy": "Cluster"},
     {"type": "ClusterIP", "ports": NP_PORTS, "externalTrafficPolicy": "Cluster"},
     {"type": "ClusterIP", "ports": [{"port": 80}]}),
    ("changed nodePorts are kept",
     {"type": "NodePort", "ports": NP_PORTS},
     {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]},
     {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]}),
    ("LoadBalancer Local → NodePort drops the health port and the allocate flag",
     {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
      "allocateLoadBalancerNodePorts": True, "ports": NP_PORTS},
     {"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
      "allocateLoadBalancerNodePorts": True, "ports": NP_PORTS},
     {"type": "NodePort", "externalTrafficPolicy": "Local", "ports": NP_PORTS}),
    ("no type change: nothing dropped",
     {"type": "NodePort", "ports": NP_PORTS}, {"type": "NodePort", "ports": NP_PORTS},
     {"type": "NodePort", "ports": NP_PORTS}),
    ("odd ports are left as they are",
     {"type": "NodePort", "ports": ["x", NP_PORTS[0]]},
     {"type": "ClusterIP", "ports": ["x", NP_PORTS[0]]},
     {"type": "ClusterIP", "ports": ["x", {"port": 80}]}),
    ("odd old spec", {"type": 7, "ports": "x"}, {"type": "ClusterIP", "ports": "x"},
     {"type": "ClusterIP", "ports": "x"}),
]


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in LEFTOVER_CASES],
                         ids=[c[0] for c in LEFTOVER_CASES])
def test_without_type_leftovers(old: dict[str, Any], new: dict[str, Any],
                                expected: dict[str, Any]) -> None:
    before = repr(new)
    assert facts.without_type_leftovers(new, old) == expected
    assert repr(new) == before  # the input is not modified
