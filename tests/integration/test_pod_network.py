"""A node's and a pod's network as the node agent builds them, in real namespaces.

The cases that matter are stale neighbour entries, which black-hole traffic for
15–45 s of REACHABLE and then some while STALE/PROBE:

- a new pod gets an IP an earlier pod had, and the node still holds an entry for
  it with the old pod's MAC: the pod's gratuitous ARP replaces it;
- deleting a pod must not change the bridge's MAC, which every other pod holds for
  its gateway: the bridge has a fixed one.
"""

from __future__ import annotations

import json

import pytest

from nodeagent.node.network import bridge_mac, setup_node
from nodeagent.pods import netns
from tests.conftest import wait_until
from tests.netns import Lab, have_root_tools, sh, socket_in

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

POD_CIDR, GATEWAY, POD_IP = "10.244.7.0/24", "10.244.7.1", "10.244.7.9"
GONE_MAC = "02:00:00:00:00:99"  # the MAC of a pod that no longer exists


def _bridge(node: str, mac: str) -> None:
    """``cni0`` with the gateway address and ``mac``, made by hand (not by the agent)."""
    sh("ip", "-n", node, "link", "add", netns.BRIDGE, "address", mac, "type", "bridge")
    sh("ip", "-n", node, "addr", "add", f"{GATEWAY}/24", "dev", netns.BRIDGE)
    sh("ip", "-n", node, "link", "set", netns.BRIDGE, "up")


def _mac(ns: str, dev: str) -> str:
    return json.loads(sh("ip", "-n", ns, "-j", "link", "show", dev).stdout)[0]["address"]


def _neighbour(ns: str, ip: str) -> dict:
    entries = json.loads(sh("ip", "-n", ns, "-j", "neigh", "show", ip).stdout or "[]")
    return entries[0] if entries else {}


def _reaches(ns: str, ip: str) -> bool:
    """True when a TCP SYN from ``ns`` gets an answer (here a RST) from ``ip``."""
    sock = socket_in(ns)
    with sock:
        sock.settimeout(1)
        try:
            sock.connect((ip, 9))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return True


def test_a_pod_reusing_an_ip_takes_over_the_nodes_neighbour_entry(lab: Lab) -> None:
    node = lab.ns("node")
    # a bridge with a fixed MAC, as a long-lived node's is: no address change flushes
    # its neighbour table when pods come and go
    _bridge(node, "02:00:00:00:00:01")
    sh("ip", "-n", node, "neigh", "replace", POD_IP, "lladdr", GONE_MAC, "dev", netns.BRIDGE,
       "nud", "reachable")
    assert not _reaches(node, POD_IP)  # the stale entry black-holes the traffic

    uid = "0a1b2c3d-0000-4000-8000-000000000001"
    pod = f"{lab.run}-pod"
    lab.namespaces.append(pod)
    try:
        netns.create_pod_network(node_ns=node, pod_ns=pod, uid=uid, ip=POD_IP,
                                 pod_cidr=POD_CIDR, resolv="nameserver 10.96.0.10\n")
        mac = _mac(pod, "eth0")
        wait_until(lambda: _neighbour(node, POD_IP).get("lladdr") == mac, timeout=5,
                   what="the node's neighbour entry to carry the new pod's MAC")
        assert _reaches(node, POD_IP)
    finally:
        netns.delete_pod_network(node_ns=node, pod_ns=pod, uid=uid)



def test_deleting_a_pod_leaves_the_gateway_where_the_other_pods_know_it(lab: Lab) -> None:
    node = lab.ns("node")
    setup_node(node, POD_CIDR, None)
    pods = {name: (f"{lab.run}-{name}", f"{i}a1b2c3d-0000-4000-8000-000000000001",
                   f"10.244.7.{10 + i}") for i, name in enumerate(("first", "other"))}
    lab.namespaces.extend(ns for ns, _, _ in pods.values())
    try:
        for ns, uid, ip in pods.values():
            netns.create_pod_network(node_ns=node, pod_ns=ns, uid=uid, ip=ip,
                                     pod_cidr=POD_CIDR, resolv="nameserver 10.96.0.10\n")
        # the lowest MAC on the bridge: a bridge left to itself would take it, and lose
        # it again with this pod
        sh("ip", "-n", node, "link", "set", netns.host_veth(pods["first"][1]), "address",
           "02:00:00:00:00:01")
        other = pods["other"][0]
        assert _reaches(other, GATEWAY)
        assert _neighbour(other, GATEWAY)["lladdr"] == bridge_mac(POD_CIDR)
        netns.delete_pod_network(node_ns=node, pod_ns=pods["first"][0], uid=pods["first"][1])
        assert _mac(node, netns.BRIDGE) == bridge_mac(POD_CIDR)
        assert _reaches(other, GATEWAY)
    finally:
        for ns, uid, _ in pods.values():
            netns.delete_pod_network(node_ns=node, pod_ns=ns, uid=uid)


def test_a_bridge_from_an_older_agent_gets_its_mac_pinned_and_pods_hear_of_it(lab: Lab) -> None:
    node = lab.ns("node")
    # what an agent before the fixed MAC left: a bridge with whatever MAC Linux chose
    _bridge(node, "02:00:00:00:00:07")
    pod, uid = f"{lab.run}-pod", "2a1b2c3d-0000-4000-8000-000000000001"
    lab.namespaces.append(pod)
    try:
        netns.create_pod_network(node_ns=node, pod_ns=pod, uid=uid, ip=POD_IP,
                                 pod_cidr=POD_CIDR, resolv="nameserver 10.96.0.10\n")
        assert _reaches(pod, GATEWAY)
        assert _neighbour(pod, GATEWAY)["lladdr"] == "02:00:00:00:00:07"
        setup_node(node, POD_CIDR, None)  # the new agent starts
        assert _mac(node, netns.BRIDGE) == bridge_mac(POD_CIDR)
        # arp_notify announced the change: the pod follows without waiting for expiry
        wait_until(lambda: _neighbour(pod, GATEWAY).get("lladdr") == bridge_mac(POD_CIDR),
                   timeout=5, what="the pod's gateway entry to carry the pinned MAC")
        assert _reaches(pod, GATEWAY)
        setup_node(node, POD_CIDR, None)  # and again: nothing changes
        assert _mac(node, netns.BRIDGE) == bridge_mac(POD_CIDR)
    finally:
        netns.delete_pod_network(node_ns=node, pod_ns=pod, uid=uid)
