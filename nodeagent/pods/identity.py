"""A pod's identity on this node: resolv.conf, /etc/hosts, /etc/hostname, UTS namespace.

Kept beside the pod's other files, as kubelet keeps ``pods/<uid>/etc-hosts``::

    <state>/pods/<uid>/resolv.conf   → the container's /etc/resolv.conf
    <state>/pods/<uid>/etc-hosts     → /etc/hosts
    <state>/pods/<uid>/hostname      → /etc/hostname
    <state>/pods/<uid>/uts           the pod's UTS namespace (an nsfs bind mount)

``pod_files`` (pure) decides the three files' text from the pod, the node's own
resolv.conf and hosts file and the agent's DNS settings (``resolvconf``,
``hosts``). ``place`` writes them and makes the UTS namespace, whose hostname is
the pod's; every container and exec joins it (``nsenter --uts``), so ``hostname``
prints the pod's name and ``hostname -f`` its FQDN (from /etc/hosts). The files
are bind-mounted read-only into each container's own mount namespace by the launch
helper (``BINDS``). ``remove`` undoes the namespace's mount so the directory can
go.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from componentbase import mounts
from nodeagent.pods import hosts, resolvconf

RESOLV, HOSTS, HOSTNAME, UTS = "resolv.conf", "etc-hosts", "hostname", "uts"
# (file in the pod's directory, where a container sees it)
BINDS = ((RESOLV, "/etc/resolv.conf"), (HOSTS, "/etc/hosts"), (HOSTNAME, "/etc/hostname"))


class IdentityError(RuntimeError):
    """The UTS namespace could not be made; the message carries the tool's stderr."""


@dataclass(frozen=True)
class PodFiles:
    resolv: str
    hosts: str
    hostname: str  # the UTS namespace's name; /etc/hostname is it plus a newline
    warnings: tuple[tuple[str, str], ...] = ()  # (event reason, message)


@dataclass(frozen=True)
class NodeDNS:
    """What the agent knows of DNS: its flags and the node's own files."""

    cluster_dns: tuple[str, ...]
    cluster_domain: str
    node_name: str
    resolv_conf: str  # the node's resolv.conf text ("" when it has none)
    hosts_file: str  # the node's /etc/hosts text


def pod_files(pod: Mapping[str, Any], *, pod_ips: Sequence[str], node: NodeDNS) -> PodFiles:
    """The pod's three files (kubelet's GetPodDNS, ensureHostsFile and hostname).
    Raises ``ValueError`` for a ``setHostnameAsFQDN`` name the kernel can't hold."""
    dns = resolvconf.pod_dns(pod, cluster_dns=node.cluster_dns,
                             cluster_domain=node.cluster_domain,
                             host=resolvconf.parse(node.resolv_conf))
    hostname, domain = hosts.hostname_and_domain(pod, cluster_domain=node.cluster_domain,
                                                 node_name=node.node_name)
    aliases = [a for a in (pod.get("spec") or {}).get("hostAliases") or []
               if isinstance(a, Mapping)]
    if (pod.get("spec") or {}).get("hostNetwork") is True:
        hosts_text = hosts.node_hosts(node.hosts_file, aliases)
    else:
        hosts_text = hosts.managed_hosts(ips=pod_ips, hostname=hostname, domain=domain,
                                         aliases=aliases)
    return PodFiles(resolvconf.render(dns.config), hosts_text,
                    hosts.kernel_hostname(pod, hostname, domain), dns.warnings)


def binds(pod_dir: Path) -> list[tuple[str, str]]:
    """The launch helper's read-only binds for these files."""
    return [(str(pod_dir / name), target) for name, target in BINDS]


def uts_path(pod_dir: Path) -> Path:
    return pod_dir / UTS


def place(pod_dir: Path, files: PodFiles) -> None:
    """Write the files (world-readable: a non-root container reads them) and make
    the UTS namespace if it is not there yet (an agent restart keeps it)."""
    pod_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((RESOLV, files.resolv), (HOSTS, files.hosts),
                       (HOSTNAME, files.hostname + "\n")):
        tmp = pod_dir / f".{name}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, pod_dir / name)
    uts = uts_path(pod_dir)
    if os.path.ismount(uts):
        return
    uts.touch(mode=0o600, exist_ok=True)
    # unshare makes the namespace, binds it onto the file, then sets its name inside
    proc = subprocess.run(["unshare", f"--uts={uts}", "--", "hostname", files.hostname],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise IdentityError(f"UTS namespace for {files.hostname}: {proc.stderr.strip()}")


def remove(pod_dir: Path) -> None:
    """Unmount the pod's UTS namespace (the directory can't be removed before)."""
    mounts.unmount_under(uts_path(pod_dir))
