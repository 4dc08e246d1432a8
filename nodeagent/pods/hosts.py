"""A pod's hostname, domain and /etc/hosts, as kubelet makes them. Pure.

``hostname_and_domain`` is kubelet's ``GeneratePodHostNameAndDomain``: the hostname
is ``spec.hostname`` or the pod's name, cut to 63 characters (and then of any
trailing ``-`` or ``.``), and a pod with ``spec.subdomain`` lives in the domain
``<subdomain>.<namespace>.svc.<cluster domain>``; with ``setHostnameAsFQDN`` the
kernel's hostname is the FQDN (``kernel_hostname``). A ``hostNetwork`` pod shares the
node's UTS namespace in Kubernetes, so its hostname is the node's name.

``managed_hosts`` is kubelet's managed hosts file (``managedHostsFileContent``):
the localhost lines, the pod's IPs with its FQDN and hostname, then the
``hostAliases`` under their own heading. ``node_hosts`` is what a ``hostNetwork``
pod gets instead: the node's own hosts file plus the aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

HOSTNAME_MAX = 63  # the kernel's limit is 64 bytes with the terminating NUL
KERNEL_HOSTNAME_MAX = 64  # kubelet lets a setHostnameAsFQDN name have all 64
HEADER = "# Kubernetes-managed hosts file.\n"
HOST_NETWORK_HEADER = "# Kubernetes-managed hosts file (host network).\n"
LOCALHOST = ("127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\n"
             "fe00::0\tip6-mcastprefix\n"
             "fe00::1\tip6-allnodes\n"
             "fe00::2\tip6-allrouters\n")


def truncate_hostname(hostname: str) -> str:
    """At most 63 characters, not ending in ``-`` or ``.`` (kubelet's
    ``truncatePodHostnameIfNeeded``)."""
    if len(hostname) <= HOSTNAME_MAX:
        return hostname
    return hostname[:HOSTNAME_MAX].rstrip("-.")


def hostname_and_domain(pod: Mapping[str, Any], *, cluster_domain: str,
                        node_name: str) -> tuple[str, str]:
    """(hostname, domain); the domain is "" without ``spec.subdomain``."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if spec.get("hostNetwork") is True:
        return node_name, ""
    hostname = truncate_hostname(spec.get("hostname") or meta.get("name") or "")
    subdomain = spec.get("subdomain")
    if not subdomain:
        return hostname, ""
    namespace = meta.get("namespace") or "default"
    return hostname, f"{subdomain}.{namespace}.svc.{cluster_domain}"


def fqdn(hostname: str, domain: str) -> str:
    return f"{hostname}.{domain}" if domain else hostname


def kernel_hostname(pod: Mapping[str, Any], hostname: str, domain: str) -> str:
    """The UTS namespace's name: the FQDN with ``setHostnameAsFQDN`` and a domain
    (kubelet's ``GetNodenameForKernel``), else the hostname. Raises ``ValueError``
    when that FQDN is over the kernel's 64 characters."""
    if (pod.get("spec") or {}).get("setHostnameAsFQDN") is not True or not domain:
        return hostname
    name = fqdn(hostname, domain)
    if len(name) > KERNEL_HOSTNAME_MAX:
        raise ValueError(f"failed to construct FQDN from pod hostname and cluster domain, "
                         f"FQDN {name} is too long ({KERNEL_HOSTNAME_MAX} characters is the "
                         f"max, {len(name)} characters requested)")
    return name


def managed_hosts(*, ips: Sequence[str], hostname: str, domain: str,
                  aliases: Sequence[Mapping[str, Any]]) -> str:
    """A pod's own /etc/hosts: localhost, its IPs and names, its hostAliases."""
    names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
    return (HEADER + LOCALHOST + "".join(f"{ip}\t{names}\n" for ip in ips)
            + alias_entries(aliases))


def node_hosts(node_file: str, aliases: Sequence[Mapping[str, Any]]) -> str:
    """A hostNetwork pod's /etc/hosts: the node's file, then the hostAliases."""
    if node_file and not node_file.endswith("\n"):
        node_file += "\n"
    return HOST_NETWORK_HEADER + node_file + alias_entries(aliases)


def alias_entries(aliases: Sequence[Mapping[str, Any]]) -> str:
    """One line per alias (its IP, then its names, tab-separated), under a heading."""
    if not aliases:
        return ""
    lines = [f"{a.get('ip', '')}\t" + "\t".join(a.get("hostnames") or []) + "\n"
             for a in aliases]
    return "\n# Entries added by HostAliases.\n" + "".join(lines)
