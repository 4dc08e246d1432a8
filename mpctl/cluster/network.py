"""The side effects on namespaces: build a cluster's network, probe DNS in it, remove it.

Only namespaces named by ``plan`` are touched; removing a cluster kills the
processes still inside its namespaces (pods an agent left running) by pid, then
deletes the namespaces and their ``/etc/netns/<ns>`` directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from componentbase import netns

from . import plan

ETC_NETNS = Path("/etc/netns")


class NetworkError(RuntimeError):
    """A command that builds the network failed; the message is one line."""


def missing_tools() -> str | None:
    """Why a cluster can't be built here, or None."""
    if os.geteuid() != 0:
        return "mpctl cluster needs root (it creates network namespaces and iptables rules)"
    for tool in ("ip", "iptables-restore", "sysctl"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"`{tool}` is not installed (Debian: apt-get install iproute2 iptables procps)"
    return None


def run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"{' '.join(cmd)}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise NetworkError(f"{' '.join(cmd)}: {reason[-1] if reason else 'failed'}")


def build(spec: plan.ClusterSpec) -> None:
    for cmd in plan.network_commands(spec):
        run(cmd)


def namespaces() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             timeout=30).stdout
    return [line.split()[0] for line in listing.splitlines() if line.split()]


def cluster_namespaces(cluster: str) -> list[str]:
    return [ns for ns in namespaces() if plan.owns_namespace(cluster, ns)]


def remove(cluster: str) -> list[str]:
    """Kill what runs inside the cluster's namespaces and delete them; returns their names.

    Pods first (their processes may still be running when an agent was killed),
    then nodes, then the fabric, so nothing is ever left pointing at a deleted peer.
    """
    order = {"pod": 0, "node": 1, "fabric": 2}
    found = sorted(cluster_namespaces(cluster),
                   key=lambda ns: order[ns.removeprefix(f"mp-{cluster}-").split("-")[0]])
    for ns in found:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                              timeout=30).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
    if ETC_NETNS.is_dir():
        for d in ETC_NETNS.iterdir():
            if plan.owns_namespace(cluster, d.name):
                shutil.rmtree(d, ignore_errors=True)
    return found


def dns_answers(namespace: str, server: str, name: str, timeout: float = 1.0) -> bool:
    """Whether ``server`` answers an A query for ``name`` sent from inside ``namespace``."""
    sock = netns.run_in_netns(namespace, lambda: socket.socket(socket.AF_INET,
                                                                socket.SOCK_DGRAM))
    with sock:
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=timeout,
                                  sock=sock)
        except (dns.exception.DNSException, OSError):
            return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)
