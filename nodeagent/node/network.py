"""The node's network, as ``ip``/``sysctl`` argument lists (pure) and their application.

``node_setup_commands`` returns what makes a node namespace ready for pods: the
``cni0`` bridge holding the ``.1`` of the pod CIDR, forwarding, bridged traffic through
iptables, and a route for the Service CIDR via ``cni0`` so the node's own connections
to ClusterIPs pass nat OUTPUT. The bridge gets a fixed MAC (``bridge_mac``): one that
is left to Linux follows the lowest MAC of its ports, so deleting one pod could change
it, and every other pod would keep sending to the gateway's old MAC until its
neighbour entry expired. ``arp_notify`` makes any change that still happens announce
itself. The node sends no ICMP redirects (``send_redirects=0``, on ``all`` and
``cni0``: the kernel sends them if either says so): a pod's packet to a ClusterIP
that nothing DNATs (a Service without endpoints) would leave by ``cni0``, where it
came in, and each redirect restarts the per-host ICMP rate limiter, so the
port-unreachable of the Service's REJECT rule was dropped and clients waited for a
timeout instead of a refusal. ``route_localnet=1`` lets NodePorts answer on the
node's ``127.0.0.1`` (kube-proxy sets it for ``--iptables-localhost-nodeports``):
the DNATed packet keeps its loopback source until MASQUERADE, which the kernel
would otherwise refuse to route off ``lo``; the proxy's ``KUBE-FIREWALL`` drops the
martian traffic to 127/8 that this setting would let in. ``route_changes`` compares the routes to other nodes'
pod CIDRs with what should be there. ``run`` (below) is the only side effect here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

BRIDGE = "cni0"


def gateway(pod_cidr: str) -> str:
    """The bridge's address: the ``.1`` of the node's pod CIDR."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    return str(net.network_address + 1)


def bridge_mac(pod_cidr: str) -> str:
    """A locally administered MAC made of the gateway's address (``0a:58:`` and its
    last four bytes, the convention OVN-Kubernetes uses): stable, and different on
    every node."""
    octets = ipaddress.ip_address(gateway(pod_cidr)).packed[-4:]
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *octets))


def node_setup_commands(pod_cidr: str, service_cidr: str | None) -> list[list[str]]:
    """Idempotent-enough commands (``ip`` lines tolerate "exists") that set up ``cni0``."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    cmds = [
        ["ip", "link", "add", BRIDGE, "address", bridge_mac(pod_cidr), "type", "bridge"],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{BRIDGE}.arp_notify=1"],
        ["ip", "addr", "replace", f"{gateway(pod_cidr)}/{net.prefixlen}", "dev", BRIDGE],
        ["ip", "link", "set", BRIDGE, "up"],
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ["sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=0"],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{BRIDGE}.send_redirects=0"],
        ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
        ["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"],
    ]
    if service_cidr:
        cmds.append(["ip", "route", "replace", service_cidr, "dev", BRIDGE, "src",
                     gateway(pod_cidr)])
    return cmds


def desired_routes(nodes: Sequence[Mapping], *, self_name: str) -> dict[str, str]:
    """Pod CIDR → InternalIP of every other node that has both."""
    routes: dict[str, str] = {}
    for node in nodes:
        if node.get("metadata", {}).get("name") == self_name:
            continue
        cidr = node.get("spec", {}).get("podCIDR")
        ip = internal_ip(node)
        if cidr and ip:
            routes[cidr] = ip
    return dict(sorted(routes.items()))


def internal_ip(node: Mapping) -> str | None:
    for addr in node.get("status", {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


def route_changes(current: Mapping[str, str], desired: Mapping[str, str]
                  ) -> tuple[list[tuple[str, str]], list[str]]:
    """(routes to replace, CIDRs to delete), each sorted."""
    put = sorted((c, ip) for c, ip in desired.items() if current.get(c) != ip)
    drop = sorted(c for c in current if c not in desired)
    return put, drop


def parse_routes(routes_json: str, *, cluster_cidr: str) -> dict[str, str]:
    """Gateway routes inside ``cluster_cidr`` from ``ip -j route`` output: CIDR → via."""
    cluster = ipaddress.IPv4Network(cluster_cidr, strict=False)
    out: dict[str, str] = {}
    for r in json.loads(routes_json or "[]"):
        dst, via = r.get("dst"), r.get("gateway")
        if not dst or not via or dst == "default":
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(cluster):
            out[str(net)] = via
    return out


# -- effects ---------------------------------------------------------------------------------


def in_ns(netns: str | None, cmd: Sequence[str]) -> list[str]:
    """``cmd`` run inside ``netns`` (or here when None)."""
    return ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)


def run(netns: str | None, cmd: Sequence[str], *, check: bool = True) -> str:
    """Run one command in the node namespace; raise ``RuntimeError`` with its stderr."""
    proc = subprocess.run(in_ns(netns, cmd), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def setup_node(netns: str | None, pod_cidr: str, service_cidr: str | None) -> None:
    """Apply ``node_setup_commands``; br_netfilter is loaded when the sysctl is missing."""
    probe = ["test", "-e", "/proc/sys/net/bridge/bridge-nf-call-iptables"]
    if subprocess.run(in_ns(netns, probe), capture_output=True).returncode != 0:
        try:  # the module is kernel-wide; the setting it brings is per namespace
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False,
                           timeout=30)
        except FileNotFoundError:
            log.warning("br_netfilter is not loaded and modprobe is missing")
    for cmd in node_setup_commands(pod_cidr, service_cidr):
        tolerate = cmd[:3] == ["ip", "link", "add"]
        try:
            run(netns, cmd)
        except RuntimeError as exc:
            if not (tolerate and "exists" in str(exc)):
                raise
    # A cni0 made by an older agent has the MAC Linux picked: pin it (arp_notify, set
    # above, tells the pods). Only when it differs, as setting it flushes neighbours.
    mac = bridge_mac(pod_cidr)
    if json.loads(run(netns, ["ip", "-j", "link", "show", BRIDGE]))[0].get("address") != mac:
        run(netns, ["ip", "link", "set", BRIDGE, "address", mac])
    log.info("node network ready: %s on %s", gateway(pod_cidr), BRIDGE)


def node_ip(netns: str | None) -> str | None:
    """The first global IPv4 address not on ``cni0`` (the node's fabric address)."""
    data = json.loads(run(netns, ["ip", "-j", "-4", "addr", "show"]) or "[]")
    for link in data:
        if link.get("ifname") in (BRIDGE, "lo"):
            continue
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                return a["local"]
    return None


def sync_routes(netns: str | None, desired: Mapping[str, str], *, cluster_cidr: str) -> None:
    current = parse_routes(run(netns, ["ip", "-j", "-4", "route", "show"]),
                           cluster_cidr=cluster_cidr)
    put, drop = route_changes(current, desired)
    for cidr, via in put:
        run(netns, ["ip", "route", "replace", cidr, "via", via])
        log.info("route to %s via %s", cidr, via)
    for cidr in drop:
        run(netns, ["ip", "route", "del", cidr], check=False)
        log.info("route to %s removed", cidr)
