"""Pure parts of the node's network: setup commands, routes to other nodes."""

from __future__ import annotations

import json

import pytest

from nodeagent.main import cluster_from_netns, parse_args
from nodeagent.node.agent import node_status
from nodeagent.node.network import (
    bridge_mac,
    desired_routes,
    gateway,
    node_setup_commands,
    parse_routes,
    route_changes,
)
from tests.flagcheck import flag_error


def node(name: str, cidr: str | None, ip: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def test_gateway_is_dot_one() -> None:
    assert gateway("10.244.3.0/24") == "10.244.3.1"


def test_setup_commands() -> None:
    cmds = node_setup_commands("10.244.1.0/24", "10.96.0.0/16")
    assert cmds[0] == ["ip", "link", "add", "cni0", "address", "0a:58:0a:f4:01:01",
                       "type", "bridge"]
    assert ["sysctl", "-q", "-w", "net.ipv4.conf.cni0.arp_notify=1"] in cmds
    assert bridge_mac("fd00:10:244:1::/64") == "0a:58:00:00:00:01"  # the last four bytes
    assert ["ip", "addr", "replace", "10.244.1.1/24", "dev", "cni0"] in cmds
    assert ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"] in cmds
    # no redirects to pods: they would rate-limit the REJECT's port-unreachable
    assert ["sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=0"] in cmds
    assert ["sysctl", "-q", "-w", "net.ipv4.conf.cni0.send_redirects=0"] in cmds
    # NodePorts on 127.0.0.1, as kube-proxy's iptables mode (KUBE-FIREWALL guards it)
    assert ["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"] in cmds
    assert ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"] in cmds
    assert cmds[-1] == ["ip", "route", "replace", "10.96.0.0/16", "dev", "cni0", "src",
                        "10.244.1.1"]
    assert not any("10.96.0.0/16" in c for c in node_setup_commands("10.244.1.0/24", None))


@pytest.mark.parametrize(("nodes", "want"), [
    ([], {}),
    ([node("a", "10.244.0.0/24", "10.250.0.2")], {}),
    ([node("a", "10.244.0.0/24", "10.250.0.2"), node("b", "10.244.1.0/24", "10.250.0.3")],
     {"10.244.1.0/24": "10.250.0.3"}),
    ([node("b", None, "10.250.0.3"), node("c", "10.244.2.0/24", None)], {}),
])
def test_desired_routes(nodes: list, want: dict) -> None:
    assert desired_routes(nodes, self_name="a") == want


def test_route_changes() -> None:
    put, drop = route_changes({"10.244.1.0/24": "10.250.0.3", "10.244.2.0/24": "10.250.0.4"},
                              {"10.244.1.0/24": "10.250.0.9", "10.244.3.0/24": "10.250.0.5"})
    assert put == [("10.244.1.0/24", "10.250.0.9"), ("10.244.3.0/24", "10.250.0.5")]
    assert drop == ["10.244.2.0/24"]


def test_parse_routes_keeps_gateway_routes_in_the_cluster_cidr() -> None:
    text = json.dumps([
        {"dst": "default", "gateway": "10.250.0.1"},
        {"dst": "10.244.1.0/24", "gateway": "10.250.0.3"},
        {"dst": "10.244.0.0/24", "dev": "cni0"},
        {"dst": "10.96.0.0/16", "dev": "cni0"},
        {"dst": "192.168.0.0/24", "gateway": "10.250.0.3"},
    ])
    assert parse_routes(text, cluster_cidr="10.244.0.0/16") == {"10.244.1.0/24": "10.250.0.3"}


def test_node_status_ready_with_heartbeat() -> None:
    s = node_status(ip="10.250.0.2", ready_since="2026-01-01T00:00:00Z",
                    now="2026-01-01T00:01:00Z")
    assert s["addresses"] == [{"type": "InternalIP", "address": "10.250.0.2"}]
    (ready,) = s["conditions"]
    assert ready["type"] == "Ready" and ready["status"] == "True"
    assert ready["lastHeartbeatTime"] == "2026-01-01T00:01:00Z"
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("netns", "cluster"), [
    ("mp-t1a2b3c-node-1", "t1a2b3c"), ("mp-dev-node-a", "dev"), ("other", "mp"), (None, "mp"),
])
def test_cluster_from_netns(netns: str | None, cluster: str) -> None:
    assert cluster_from_netns(netns) == cluster


def test_flags(capsys: pytest.CaptureFixture[str]) -> None:
    opts = parse_args(["--node", "n1", "--netns", "mp-x-node-1", "--heartbeat-interval", "2s",
                       "--state-dir", "/tmp/x"])
    assert opts.node_cfg is not None
    assert opts.node_cfg.heartbeat_interval == 2.0
    assert opts.node_cfg.status_report_interval == 300.0  # kubelet's 5 min
    assert opts.node_cfg.runtime.cluster == "x"
    assert parse_args(["--node", "n1", "--own-netns", "--node-status-report-frequency",
                       "1m"]).node_cfg.status_report_interval == 60.0
    assert "argument --node-status-report-frequency: must be at least --heartbeat-interval" \
        in flag_error(capsys, parse_args, ["--node", "n1", "--heartbeat-interval", "20s",
                                           "--node-status-report-frequency", "10s"],
                      prog="mp-nodeagent")
    assert opts.node_cfg.runtime.cluster_domain == "cluster.local"
    assert opts.node_cfg.runtime.node_name == "n1"  # a hostNetwork pod's hostname
    runtime = parse_args(["--node", "n1", "--own-netns", "--cluster-domain", "Corp.Example.",
                          "--resolv-conf", "/run/systemd/resolve/resolv.conf"]
                         ).node_cfg.runtime
    assert runtime.cluster_domain == "corp.example"
    assert str(runtime.host_resolv) == "/run/systemd/resolve/resolv.conf"
    assert "argument --cluster-domain: 'a_b': a lowercase RFC 1123 subdomain" in flag_error(
        capsys, parse_args, ["--node", "n1", "--cluster-domain", "a_b"], prog="mp-nodeagent")
    assert parse_args(["--node", "n1", "--no-pods"]).node_cfg is None
    assert parse_args(["--node", "n1"]).node_cfg is None  # never the host's own network
    assert parse_args(["--node", "n1", "--own-netns"]).node_cfg is not None
    assert "argument --max-restart-backoff: must be at least --restart-backoff" in flag_error(
        capsys, parse_args,
        ["--node", "n1", "--restart-backoff", "5s", "--max-restart-backoff", "1s"],
        prog="mp-nodeagent")
