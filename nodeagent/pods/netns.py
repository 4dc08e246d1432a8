"""The only place that changes or enters pod namespaces.

``create_pod_network`` makes ``mp-<cluster>-pod-<uid>``: loopback up, a veth pair
created inside the node namespace (``veth<uid8>``, hairpin on, enslaved to ``cni0``)
whose peer lands in the pod as ``eth0`` with the pod IP and a default route via the
bridge, plus ``/etc/netns/<ns>/resolv.conf``. Last, the pod announces its address
with a gratuitous ARP (as CNI's bridge plugin does): a neighbour entry the node or a
pod still holds for that IP from an earlier pod would otherwise send its traffic to
a MAC that is gone until the entry expires, up to a minute later. ``socket_in``
opens a socket inside a namespace on a short-lived thread (``setns``), so probes
need no process each.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import TypeVar

from componentbase.netns import run_in_netns
from nodeagent.node.network import BRIDGE, gateway
from nodeagent.pods.status import pod_netns

T = TypeVar("T")
log = logging.getLogger(__name__)
NETNS_ETC = Path("/etc/netns")
ETH_P_ARP = 0x0806


class NetworkError(RuntimeError):
    """An ``ip`` command failed; the message carries its stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def host_veth(uid: str) -> str:
    return "veth" + uid.replace("-", "")[:8]


def _node_args(node_ns: str | None) -> list[str]:
    return ["-n", node_ns] if node_ns else []


def create_pod_network(*, node_ns: str | None, pod_ns: str, uid: str, ip: str,
                       pod_cidr: str, resolv: str) -> None:
    """Build the pod's namespace and wiring; repairs a half-built one."""
    if not exists(pod_ns):
        _ip("netns", "add", pod_ns)
    etc = NETNS_ETC / pod_ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv)
    _ip("-n", pod_ns, "link", "set", "lo", "up")
    veth = host_veth(uid)
    prefix = ipaddress.ip_network(pod_cidr, strict=False).prefixlen
    has_eth0 = _ip("-n", pod_ns, "link", "show", "eth0", check=False).returncode == 0
    if not has_eth0:
        _ip(*_node_args(node_ns), "link", "del", veth, check=False)
        _ip(*_node_args(node_ns), "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", pod_ns)
    _ip(*_node_args(node_ns), "link", "set", veth, "master", BRIDGE)
    _ip(*_node_args(node_ns), "link", "set", veth, "up")
    _ip(*_node_args(node_ns), "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
    _ip("-n", pod_ns, "addr", "replace", f"{ip}/{prefix}", "dev", "eth0")
    _ip("-n", pod_ns, "link", "set", "eth0", "up")
    _ip("-n", pod_ns, "route", "replace", "default", "via", gateway(pod_cidr))
    if ipaddress.ip_address(ip).version != 4:
        return  # ARP is IPv4's; an IPv6 pod would need an unsolicited neighbour advert
    try:
        announce(pod_ns, ip)
    except OSError as exc:  # e.g. no CAP_NET_RAW: the pod works, only a reused IP may lag
        log.warning("pod network %s: could not announce %s: %s", pod_ns, ip, exc)


def gratuitous_arp(mac: bytes, ip: str) -> bytes:
    """An ARP announcement (RFC 5227): a broadcast request for our own ``ip``.

    Every host on the segment that already has an entry for ``ip`` replaces its MAC
    with ``mac``; hosts without one add nothing.
    """
    addr = ipaddress.IPv4Address(ip).packed
    ether = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + addr + b"\x00" * 6 + addr
    return ether + arp


def announce(pod_ns: str, ip: str, dev: str = "eth0") -> None:
    """Send the gratuitous ARP for ``ip`` out of ``dev`` inside the pod (needs
    CAP_NET_RAW; raises ``OSError`` without it)."""
    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((dev, 0))
            mac = sock.getsockname()[4]
            sock.send(gratuitous_arp(mac, ip))

    run_in_netns(pod_ns, send)


def delete_pod_network(*, node_ns: str | None, pod_ns: str, uid: str) -> None:
    """Remove the namespace (its eth0 takes the veth along), then its /etc/netns dir."""
    _ip("netns", "delete", pod_ns, check=False)
    _ip(*_node_args(node_ns), "link", "del", host_veth(uid), check=False)
    shutil.rmtree(NETNS_ETC / pod_ns, ignore_errors=True)


def socket_in(ns: str | None) -> socket.socket:
    return run_in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()



def pod_ns_name(cluster: str, uid: str) -> str:
    return pod_netns(cluster, uid)

