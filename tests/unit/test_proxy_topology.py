"""Topology-aware routing in the proxy: which endpoints a node uses, as kube-proxy's
``CategorizeEndpoints`` picks them, and the node's zone reaching the rules."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.proxy.apply import Backend
from nodeagent.proxy.model import Endpoint, ServicePort, slice_endpoints
from nodeagent.proxy.ruleset import Context, build_fragment, topology_mode, usable_endpoints
from nodeagent.proxy.sync import Proxier, ProxyConfig
from tests.unit.test_proxy_agent import PORTS, SLICE_PORTS, endpoint_slice, service

NODE = "node-a"


def E(ip: str, *, zones: tuple[str, ...] = (), nodes: tuple[str, ...] = (),  # noqa: N802
      node: str = "node-b", ready: bool = True, terminating: bool = False) -> Endpoint:
    return Endpoint(ip, 8080, node, ready=ready, serving=ready or terminating,
                    terminating=terminating, zone_hints=frozenset(zones),
                    node_hints=frozenset(nodes))


def ips(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return [e.ip for e in endpoints]


A1, A2 = E("10.0.0.1", zones=("a",)), E("10.0.0.2", zones=("a",), node=NODE)
B1 = E("10.0.0.3", zones=("b",))


@pytest.mark.parametrize(("endpoints", "zone", "mode", "cluster"), [
    # every ready endpoint hinted, some for this zone: only those
    ((A1, A2, B1), "a", "zone", ["10.0.0.1", "10.0.0.2"]),
    ((A1, A2, B1), "b", "zone", ["10.0.0.3"]),
    # none for this zone (or the node has no zone label): all of them
    ((A1, A2, B1), "c", "", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    ((A1, A2, B1), "", "", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    # one ready endpoint without a hint: all of them
    ((A1, B1, E("10.0.0.4")), "a", "", ["10.0.0.1", "10.0.0.3", "10.0.0.4"]),
    # ...but a not-ready one without a hint does not count
    ((A1, B1, E("10.0.0.4", ready=False)), "a", "zone", ["10.0.0.1"]),
    # this zone's endpoints not ready: the fallback to the other zones
    ((E("10.0.0.1", zones=("a",), ready=False), B1), "a", "", ["10.0.0.3"]),
    # a zone hint may name another zone than the endpoint's own (Auto's donations)
    ((E("10.0.0.1", zones=("b",)), B1), "b", "zone", ["10.0.0.1", "10.0.0.3"]),
    # node hints (PreferSameNode) come first, zone hints next
    ((E("10.0.0.1", zones=("a",), nodes=("node-b",)),
      E("10.0.0.2", zones=("a",), nodes=(NODE,), node=NODE)), "a", "node", ["10.0.0.2"]),
    ((E("10.0.0.1", zones=("a",), nodes=("node-b",)), E("10.0.0.3", zones=("b",))),
     "a", "zone", ["10.0.0.1"]),
    # no ready endpoint at all: serving-terminating ones, hints or not
    ((E("10.0.0.1", zones=("b",), ready=False, terminating=True),), "a", "",
     ["10.0.0.1"]),
])
def test_cluster_endpoints_follow_hints_only_when_kube_proxy_would(
        endpoints: tuple[Endpoint, ...], zone: str, mode: str, cluster: list[str]) -> None:
    assert topology_mode(endpoints, NODE, zone) == mode
    assert ips(usable_endpoints(endpoints, NODE, zone=zone)[0]) == cluster


def test_local_traffic_policy_ignores_hints() -> None:
    here = E("10.0.0.5", zones=("b",), node=NODE)
    _, local = usable_endpoints((A1, here), NODE, zone="a")
    assert ips(local) == ["10.0.0.5"]


def sp(**kw: Any) -> ServicePort:
    return ServicePort("demo", "web", "http", "TCP", "10.96.0.20", 80, **kw)


def dnat_targets(endpoints: tuple[Endpoint, ...], zone: str, **kw: Any) -> set[str]:
    fragment = build_fragment(sp(**kw), endpoints, Context(NODE, zone=zone))
    return {r.rsplit(" ", 1)[1] for c in fragment.chains for r in c.rules if "DNAT" in r}


def test_the_ruleset_sends_cluster_traffic_to_the_zone_and_local_traffic_home() -> None:
    assert dnat_targets((A1, A2, B1), "a") == {"10.0.0.1:8080", "10.0.0.2:8080"}
    assert dnat_targets((A1, A2, B1), "") == {"10.0.0.1:8080", "10.0.0.2:8080",
                                                "10.0.0.3:8080"}
    # internalTrafficPolicy Local: only this node's endpoint, whatever its zone
    assert dnat_targets((A1, A2, B1), "b", internal_local=True) == {"10.0.0.2:8080"}
    # externalTrafficPolicy Local: NodePorts go home, the ClusterIP follows the hints
    both = dnat_targets((A1, A2, B1), "b", node_port=30080, external_local=True)
    assert both == {"10.0.0.2:8080", "10.0.0.3:8080"}


def test_slices_hints_are_parsed() -> None:
    body = endpoint_slice("web-a", "web", ["10.244.1.5", "10.244.1.6"], SLICE_PORTS[:1])
    body["endpoints"][0]["hints"] = {"forZones": [{"name": "a"}], "forNodes": [{"name": "n1"}]}
    body["endpoints"][1]["hints"] = {"forZones": [{"bogus": 1}, "x"]}
    (endpoints,) = slice_endpoints(body).values()
    assert endpoints[0].zone_hints == {"a"} and endpoints[0].node_hints == {"n1"}
    assert endpoints[1].zone_hints == frozenset() and endpoints[1].node_hints == frozenset()


def node(zone: str | None, rv: str = "1") -> dict[str, Any]:
    labels = {"topology.kubernetes.io/zone": zone} if zone is not None else {}
    return {"metadata": {"name": NODE, "resourceVersion": rv, "labels": labels}}


def test_a_zone_label_change_rebuilds_every_service() -> None:
    proxier = Proxier(Backend("nft", "mp-unused"), ProxyConfig(node_name=NODE))
    t = proxier.tracker
    t.service_added(service("web", "10.96.0.20", PORTS[:1]))
    slice_ = endpoint_slice("web-a", "web", ["10.244.1.5", "10.244.2.5"], SLICE_PORTS[:1])
    slice_["endpoints"][0]["hints"] = {"forZones": [{"name": "a"}]}
    slice_["endpoints"][1]["hints"] = {"forZones": [{"name": "b"}]}
    t.slice_added(slice_)
    t.node_added(node(None))
    assert t.pending
    changes, _ = t.take()
    proxier.update(changes, zone=t.synced_zone)

    def targets() -> set[str]:
        return {r.rsplit(" ", 1)[1] for c in proxier.fragments["demo/web:http/TCP"].chains
                for r in c.rules if "DNAT" in r}

    assert targets() == {"10.244.1.5:8080", "10.244.2.5:8080"}
    t.node_updated(node(None), node("a", rv="2"))
    assert t.pending and t.zone == "a"
    changes, _ = t.take()
    assert changes == {} and not t.pending and t.synced_zone == "a"
    assert proxier.update(changes, zone=t.synced_zone) == {"demo/web:http/TCP"}
    assert targets() == {"10.244.1.5:8080"}
    t.node_updated(node("a", rv="2"), node("a", rv="3"))  # another label: nothing to do
    assert not t.pending
    t.node_deleted(node("a", rv="3"))
    proxier.update(t.take()[0], zone=t.synced_zone)
    assert targets() == {"10.244.1.5:8080", "10.244.2.5:8080"}
