"""Which UDP conntrack entries go stale when endpoints change (pure)."""

from __future__ import annotations

from nodeagent.proxy.conntrack import UdpPort, stale_flows, udp_port
from nodeagent.proxy.model import Endpoint, ServicePort


def port(*ips: str, node_port: int | None = None) -> UdpPort:
    return UdpPort("10.96.0.10", 53, node_port, frozenset(ips))


def test_removed_endpoint_flows_are_cleared() -> None:
    assert stale_flows({"dns": port("10.244.1.5", "10.244.1.6")},
                       {"dns": port("10.244.1.6")}) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
         "--reply-src", "10.244.1.5")]


def test_node_port_flows_too() -> None:
    assert stale_flows({"dns": port("10.244.1.5", node_port=30053)},
                       {"dns": port("10.244.1.6", node_port=30053)}) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
         "--reply-src", "10.244.1.5"),
        ("-p", "udp", "--orig-port-dst", "30053", "--reply-src", "10.244.1.5")]


def test_first_endpoints_clear_the_whole_service_ip() -> None:
    # flows made while the Service had no endpoints were never DNATed
    assert stale_flows({"dns": port()}, {"dns": port("10.244.1.5")}) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53")]
    assert stale_flows({}, {"dns": port("10.244.1.5")}) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53")]


def test_deleted_service_and_unchanged_service() -> None:
    assert stale_flows({"dns": port("10.244.1.5")}, {}) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
         "--reply-src", "10.244.1.5")]
    assert stale_flows({"dns": port("10.244.1.5")}, {"dns": port("10.244.1.5")}) == []


def test_udp_port_uses_the_programmed_endpoints() -> None:
    sp = ServicePort("kube-system", "dns", "dns", "UDP", "10.96.0.10", 53)
    eps = (Endpoint("10.244.1.5", 53), Endpoint("10.244.1.6", 53, ready=False))
    assert udp_port(sp, eps, "n").endpoints == {"10.244.1.5"}  # type: ignore[union-attr]
    tcp = ServicePort("kube-system", "dns", "dns-tcp", "TCP", "10.96.0.10", 53)
    assert udp_port(tcp, eps, "n") is None


def test_external_and_load_balancer_ips_are_cleared_too() -> None:
    """As kube-proxy's conntrack reconciler: every destination of the port."""
    sp = ServicePort("kube-system", "dns", "dns", "UDP", "10.96.0.10", 53,
                     external_ips=("192.0.2.10",), load_balancer_ips=("10.250.0.200",))
    before = udp_port(sp, (Endpoint("10.244.1.5", 53),), "n")
    after = udp_port(sp, (Endpoint("10.244.1.6", 53),), "n")
    assert before is not None and after is not None
    assert stale_flows({"dns": before}, {"dns": after}) == [
        ("-p", "udp", "--orig-dst", ip, "--orig-port-dst", "53", "--reply-src", "10.244.1.5")
        for ip in ("10.96.0.10", "192.0.2.10", "10.250.0.200")]
    empty = udp_port(sp, (), "n")
    assert empty is not None
    assert stale_flows({"dns": empty}, {"dns": after}) == [
        ("-p", "udp", "--orig-dst", ip, "--orig-port-dst", "53")
        for ip in ("10.96.0.10", "192.0.2.10", "10.250.0.200")]
