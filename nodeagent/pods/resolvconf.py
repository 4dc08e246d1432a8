"""A pod's resolv.conf, as kubelet forms it from ``dnsPolicy`` and ``dnsConfig``. Pure.

``pod_dns`` picks the base by the pod's DNS type (kubelet's ``getPodDNSType``):

- ``ClusterFirst`` (the default): the cluster DNS address only, search
  ``<ns>.svc.<domain> svc.<domain> <domain>`` then the node's search domains
  (duplicates dropped), ``options ndots:5`` (the node's options are not kept).
  On a ``hostNetwork`` pod ``ClusterFirst`` means ``Default``, as in Kubernetes;
  ``ClusterFirstWithHostNet`` keeps the cluster DNS. Without a cluster DNS
  address the pod falls back to ``Default`` with a ``MissingClusterDNS`` warning.
- ``Default``: the node's resolv.conf (its nameservers, searches and options).
- ``None``: nothing; ``dnsConfig`` says it all.

then merges ``dnsConfig`` on top (``appendDNSConfig``): nameservers and searches
appended without duplicates, options merged by name with the pod's value winning
(``ndots:2`` replaces ``ndots:5``), and last applies kubelet's limits
(``formDNSConfigFitsLimits``): at most 3 nameservers, 32 search domains, no
search domain over 253 characters, a search line of at most 2048 characters.
What the limits cut is reported as kubelet's ``DNSConfigForming`` warning text.

``render`` writes the file the way containerd does: ``search``, each
``nameserver``, ``options``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_NAMESERVERS = 3  # glibc's MAXNS: more are ignored by the resolver anyway
MAX_SEARCHES = 32  # kubelet's limits since ExpandedDNSConfig (GA in 1.28)
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN_CHARS = 253  # a longer search domain aborts some glibc versions
CLUSTER_OPTIONS = ("ndots:5",)  # so _port._proto.svc.ns.svc names still use the search list

FORMING = "DNSConfigForming"
MISSING_CLUSTER_DNS = "MissingClusterDNS"


@dataclass(frozen=True)
class DNSConfig:
    """What a resolv.conf says (kubelet's ``runtimeapi.DNSConfig``)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodDNS:
    """The pod's DNS config and the warnings (reason, message) forming it raised."""

    config: DNSConfig
    warnings: tuple[tuple[str, str], ...] = field(default=())


def parse(text: str) -> DNSConfig:
    """The node's resolv.conf: nameservers, searches (the last ``search`` line wins,
    a trailing dot and a bare ``.`` dropped), options (merged by name, later wins)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":  # kubelet reads no "domain" line
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = _merge_options(options, fields[1:])
    return DNSConfig(tuple(servers), tuple(searches), tuple(options))


def dns_type(pod: Mapping[str, Any]) -> str:
    """``cluster``, ``host`` or ``none`` (kubelet's ``getPodDNSType``)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet":
        return "cluster"
    if policy == "ClusterFirst" and spec.get("hostNetwork") is not True:
        return "cluster"
    return "host"  # Default, and ClusterFirst on the host's network


def pod_dns(pod: Mapping[str, Any], *, cluster_dns: Sequence[str], cluster_domain: str,
            host: DNSConfig) -> PodDNS:
    """The pod's resolv.conf content, with kubelet's warnings."""
    warnings: list[tuple[str, str]] = []
    kind = dns_type(pod)
    base = host
    if kind == "none":
        base = DNSConfig()
    elif kind == "cluster":
        if cluster_dns:
            namespace = (pod.get("metadata") or {}).get("namespace") or "default"
            cluster_search = ((f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                               cluster_domain) if cluster_domain else ())
            base = DNSConfig(tuple(cluster_dns),
                             _unique([*cluster_search, *host.searches]), CLUSTER_OPTIONS)
        else:
            warnings.append((MISSING_CLUSTER_DNS,
                             "kubelet does not have ClusterDNS IP configured and cannot "
                             "create Pod using \"ClusterFirst\" policy. Falling back to "
                             "\"Default\" policy."))
    extra = (pod.get("spec") or {}).get("dnsConfig") or {}
    config = DNSConfig(
        _unique([*base.nameservers, *(extra.get("nameservers") or [])]),
        _unique([*base.searches, *(extra.get("searches") or [])]),
        tuple(_merge_options(base.options, [_option_text(o) for o in
                                            extra.get("options") or []])))
    return _fit_limits(config, warnings)


def render(config: DNSConfig) -> str:
    """The file, as containerd writes a sandbox's resolv.conf."""
    lines = []
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    lines += [f"nameserver {s}" for s in config.nameservers]
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(line + "\n" for line in lines)


def _fit_limits(config: DNSConfig, warnings: list[tuple[str, str]]) -> PodDNS:
    servers = config.nameservers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append((FORMING, "Nameserver limits were exceeded, some nameservers have "
                         "been omitted, the applied nameserver line is: " + " ".join(servers)))
    searches = list(config.searches)
    cut = len(searches) > MAX_SEARCHES
    searches = searches[:MAX_SEARCHES]
    kept = [s for s in searches if len(s) <= MAX_DOMAIN_CHARS]
    cut = cut or len(kept) != len(searches)
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()  # from the end, as kubelet cuts
        cut = True
    if cut:
        warnings.append((FORMING, "Search Line limits were exceeded, some search paths have "
                         "been omitted, the applied search line is: " + " ".join(kept)))
    return PodDNS(DNSConfig(servers, tuple(kept), config.options), tuple(warnings))


def _option_text(option: Mapping[str, Any]) -> str:
    name, value = str(option.get("name") or ""), option.get("value")
    return f"{name}:{value}" if value not in (None, "") else name


def _merge_options(existing: Iterable[str], new: Iterable[str]) -> list[str]:
    """Options by name, a later one replacing an earlier one in place."""
    merged: dict[str, str] = {}
    for op in (*existing, *new):
        name, _, _value = op.partition(":")
        if name:
            merged[name] = op
    return list(merged.values())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
