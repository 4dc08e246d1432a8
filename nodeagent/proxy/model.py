"""API objects → the few validated facts the proxy needs (as CoreDNS trims on ingest).

Everything that later reaches ``iptables-restore`` text passes through here first:
names become DNS labels, addresses canonical IPv4 strings, ports integers in
1–65535, protocols one of TCP/UDP/SCTP. An object that fails is rejected whole
with an ``InvalidObject`` naming the field, and the proxy programs nothing for it,
so a hostile or broken object can never inject a line, a quote or an option into
the ruleset. (``ruleset`` checks every token again when rendering, as a second
wall.)

Errors::

    ValueError
     └── InvalidObject   one object can't be used; message names the field

IPv6 Services and IPv6/FQDN slices are skipped, not rejected: this proxy
programs the IPv4 table only (``iptables``, not ``ip6tables``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from apimachinery import services as facts
from apimachinery.timestamps import parse_time

Object = Mapping[str, Any]

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_AFFINITY_SECONDS = 86400  # Kubernetes' MaxClientIPServiceAffinitySeconds
DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default ClientIP timeout (3 h)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# Used with fullmatch: "$" would accept a trailing newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class InvalidObject(ValueError):
    """An API object the proxy will not program; the message names the bad field."""


class ServicePort(NamedTuple):
    """One port of one Service, as the proxy programs it. Values are validated.

    (NamedTuples rather than dataclasses: 10,000 Services make 60,000 of these
    values per full rebuild, and a frozen dataclass costs three times as much.)"""

    namespace: str
    name: str
    port_name: str  # "" for an unnamed port
    protocol: str  # TCP | UDP | SCTP
    cluster_ip: str
    port: int
    node_port: int | None = None
    affinity_seconds: int | None = None  # set for sessionAffinity: ClientIP
    external_local: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local
    # The Service's external destinations (one tuple shared by all its ports):
    # spec.externalIPs, status.loadBalancer.ingress[].ip, spec.loadBalancerSourceRanges.
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()

    @property
    def service_port_name(self) -> str:
        """``ns/name:port`` (``ns/name`` for an unnamed port): the hash input and comment."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def key(self) -> str:
        """Stable identity and sort key of this port within the ruleset."""
        return f"{self.service_port_name}/{self.protocol}"

    @property
    def is_external(self) -> bool:
        """Reachable from outside the cluster: a NodePort, an external IP or a load
        balancer IP (kube-proxy's ``ExternallyAccessible`` on the port's facts)."""
        return self.node_port is not None or bool(self.external_ips) or \
            bool(self.load_balancer_ips)

    @property
    def uses_firewall(self) -> bool:
        """Load balancer IPs behind ``loadBalancerSourceRanges``: the KUBE-FW chain."""
        return bool(self.load_balancer_ips) and bool(self.source_ranges)


class Endpoint(NamedTuple):
    """One backend of one Service port: address, target port and conditions."""

    ip: str
    port: int
    node_name: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: frozenset[str] = frozenset()  # hints.forZones names
    node_hints: frozenset[str] = frozenset()  # hints.forNodes names

    @property
    def address(self) -> str:
        """``ip:port``, the string kube-proxy sorts endpoints by and hashes."""
        return f"{self.ip}:{self.port}"


# -- validators ------------------------------------------------------------------------


def check_label(value: Any, field: str, *, max_length: int = 63) -> str:
    """A DNS-1123 label (namespaces, Service names, port names)."""
    if not isinstance(value, str) or not value or len(value) > max_length or \
            not _DNS_LABEL.fullmatch(value):
        raise InvalidObject(f"{field}: {value!r} is not a DNS-1123 label")
    return value


def check_ipv4(value: Any, field: str) -> str:
    """A canonical (dotted quad, no leading zeros), unicast, non-loopback IPv4 address.

    A regular expression rather than ``ipaddress``: this runs for every endpoint of
    every Service (50,000 at 10,000 Services), where ``ipaddress`` costs seconds."""
    if not isinstance(value, str) or not _IPV4.fullmatch(value):
        raise InvalidObject(f"{field}: {value!r} is not an IPv4 address in canonical form")
    first, second, *_ = (int(octet) for octet in value.split("."))
    if first in (0, 127) or first >= 224 or (first, second) == (169, 254):
        raise InvalidObject(f"{field}: {value!r} is not a usable unicast address")
    return value


def check_port(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidObject(f"{field}: {value!r} is not a port number (1-65535)")
    return value


def check_protocol(value: Any, field: str) -> str:
    if value is None:
        return "TCP"
    if value not in PROTOCOLS:
        raise InvalidObject(f"{field}: {value!r} is not one of {', '.join(PROTOCOLS)}")
    return str(value)


def check_cidr(value: str, field: str) -> str:
    """An IPv4 CIDR in canonical form (network address, prefix length)."""
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise InvalidObject(f"{field}: {value!r} is not an IPv4 CIDR") from None
    if str(net) != value:
        raise InvalidObject(f"{field}: {value!r} is not in canonical form ({net})")
    return value


def _usable_ipv4(value: Any, field: str) -> str | None:
    """``check_ipv4``'s address; None for IPv6 or a well-formed special address;
    ``InvalidObject`` for anything malformed."""
    if isinstance(value, str) and ":" in value:
        return None
    if isinstance(value, str) and _IPV4.fullmatch(value):
        try:
            return check_ipv4(value, field)
        except InvalidObject:
            return None
    return check_ipv4(value, field)


def check_source_range(value: Any, field: str) -> str:
    """An IPv4 CIDR as ``loadBalancerSourceRanges`` allows it (host bits may be set, as
    Go's ``ParseCIDR`` keeps them), canonicalised to its network (``10.0.0.1/8`` →
    ``10.0.0.0/8``), which is what iptables-save prints."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidObject(f"{field}: {value!r} is not an IPv4 CIDR")
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise InvalidObject(f"{field}: {value!r} is not an IPv4 CIDR") from None


def check_node_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise InvalidObject(f"{field}: {value!r} is not a DNS-1123 subdomain")
    return value


# -- Services --------------------------------------------------------------------------


def service_ports(service: Object) -> list[ServicePort]:
    """The ports of a Service the proxy programs; ``[]`` for ones it leaves alone.

    ExternalName and headless Services, Services without a ClusterIP yet and
    IPv6-only Services get no rules. Raises ``InvalidObject`` if any field that
    would reach the ruleset is malformed.
    """
    meta = _mapping(service.get("metadata"))
    spec = _mapping(service.get("spec"))
    namespace = check_label(meta.get("namespace") or "default", "metadata.namespace")
    name = check_label(meta.get("name"), "metadata.name")
    if not facts.is_proxied(spec):
        return []
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and ":" in cluster_ip:
        return []  # IPv6: not this proxy's table
    cluster_ip = check_ipv4(cluster_ip, "spec.clusterIP")
    affinity = _affinity_seconds(spec)
    external_local = spec.get("externalTrafficPolicy") == "Local" and \
        facts.is_externally_accessible(spec)
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    wants_node_ports = facts.has_node_ports(spec)
    external_ips, lb_ips, source_ranges = external_addresses(service)
    raw_ports = spec.get("ports")
    if not isinstance(raw_ports, list):
        raise InvalidObject("spec.ports: not a list")
    out: list[ServicePort] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(raw_ports):
        where = f"spec.ports[{i}]"
        port = _mapping(raw)
        port_name = port.get("name") or ""
        if port_name:
            check_label(port_name, f"{where}.name")
        protocol = check_protocol(port.get("protocol"), f"{where}.protocol")
        if (port_name, protocol) in seen:
            raise InvalidObject(f"{where}: duplicate port {port_name or '(unnamed)'}/{protocol}")
        seen.add((port_name, protocol))
        node_port = port.get("nodePort")
        out.append(ServicePort(
            namespace=namespace, name=name, port_name=port_name, protocol=protocol,
            cluster_ip=cluster_ip, port=check_port(port.get("port"), f"{where}.port"),
            node_port=check_port(node_port, f"{where}.nodePort")
            if wants_node_ports and node_port is not None else None,
            affinity_seconds=affinity, external_local=external_local,
            internal_local=internal_local, external_ips=external_ips,
            load_balancer_ips=lb_ips, source_ranges=source_ranges))
    return out


def external_addresses(service: Object
                       ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(external IPs, load balancer IPs, source ranges) the proxy programs for a Service.

    As kube-proxy's service change tracker: ``spec.externalIPs`` of any proxied type;
    ``status.loadBalancer.ingress[].ip`` of a LoadBalancer (an entry with only a
    ``hostname``, or with ``ipMode: Proxy``, gets no rule: the balancer itself
    delivers to the node); ``spec.loadBalancerSourceRanges`` (space padding trimmed,
    as the API tolerates it), else none. IPv6 entries are skipped (this proxy
    programs IPv4), and so are well-formed addresses no packet can be DNATed from
    (loopback, multicast…: the API lets a status carry them), so one odd entry does
    not cost the Service its ClusterIP; a malformed one still rejects the Service.
    Sorted and de-duplicated so the rules are stable. Both proxy modes build from
    this.
    """
    spec = _mapping(service.get("spec"))
    external = {ip for i, raw in enumerate(_list(spec.get("externalIPs")))
                if (ip := _usable_ipv4(raw, f"spec.externalIPs[{i}]"))}
    lb: set[str] = set()
    ranges: set[str] = set()
    if facts.has_load_balancer_ingress(spec):
        ingress = _list(_mapping(_mapping(service.get("status")).get("loadBalancer"))
                        .get("ingress"))
        for i, raw in enumerate(ingress):
            entry = _mapping(raw)
            if not entry.get("ip") or entry.get("ipMode") == "Proxy":
                continue
            if ip := _usable_ipv4(entry["ip"], f"status.loadBalancer.ingress[{i}].ip"):
                lb.add(ip)
        for i, cidr in enumerate(_list(spec.get("loadBalancerSourceRanges"))):
            text = cidr.strip() if isinstance(cidr, str) else cidr
            if isinstance(text, str) and ":" in text:
                continue
            ranges.add(check_source_range(text, f"spec.loadBalancerSourceRanges[{i}]"))
    return tuple(sorted(external)), tuple(sorted(lb)), tuple(sorted(ranges))


def _affinity_seconds(spec: Object) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = _mapping(_mapping(spec.get("sessionAffinityConfig")).get("clientIP"))
    seconds = config.get("timeoutSeconds", DEFAULT_AFFINITY_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or \
            not 1 <= seconds <= MAX_AFFINITY_SECONDS:
        raise InvalidObject("spec.sessionAffinityConfig.clientIP.timeoutSeconds: "
                            f"{seconds!r} is not 1-{MAX_AFFINITY_SECONDS}")
    return seconds


# -- EndpointSlices --------------------------------------------------------------------


def slice_service(endpoint_slice: Object) -> tuple[str, str] | None:
    """``(namespace, service name)`` a slice belongs to, from its label; None if unlabelled."""
    meta = _mapping(endpoint_slice.get("metadata"))
    service = _mapping(meta.get("labels")).get(SERVICE_NAME_LABEL)
    if not service or not isinstance(service, str):
        return None
    return str(meta.get("namespace") or "default"), service


def slice_endpoints(endpoint_slice: Object) -> dict[tuple[str, str], list[Endpoint]]:
    """Endpoints of one slice by ``(port name, protocol)``; ``{}`` for non-IPv4 slices.

    Conditions follow the API's defaults: a missing ``ready`` means ready, a missing
    ``serving`` means the value of ``ready``, a missing ``terminating`` means not
    terminating. Only the first address counts, as in kube-proxy. Topology hints
    are kept for ``ruleset.usable_endpoints``. Raises
    ``InvalidObject`` for malformed addresses, ports or node names.
    """
    if endpoint_slice.get("addressType") != "IPv4":
        return {}
    ports: list[tuple[str, str, int]] = []
    for i, raw in enumerate(_list(endpoint_slice.get("ports"))):
        port = _mapping(raw)
        name = port.get("name") or ""
        if name:
            check_label(name, f"ports[{i}].name")
        protocol = check_protocol(port.get("protocol"), f"ports[{i}].protocol")
        if port.get("port") is None:
            continue  # "all ports": meaningless for a Service port mapping
        ports.append((name, protocol, check_port(port.get("port"), f"ports[{i}].port")))
    endpoints: list[tuple[str, str, bool, bool, bool, frozenset[str], frozenset[str]]] = []
    for i, raw in enumerate(_list(endpoint_slice.get("endpoints"))):
        endpoint = _mapping(raw)
        addresses = _list(endpoint.get("addresses"))
        if not addresses:
            continue
        ip = check_ipv4(addresses[0], f"endpoints[{i}].addresses[0]")
        node = endpoint.get("nodeName") or ""
        if node:
            check_node_name(node, f"endpoints[{i}].nodeName")
        cond = _mapping(endpoint.get("conditions"))
        ready = cond.get("ready") is not False
        serving = ready if cond.get("serving") is None else cond.get("serving") is True
        terminating = cond.get("terminating") is True
        hints = _mapping(endpoint.get("hints"))
        endpoints.append((ip, node, ready, serving, terminating,
                          _hint_names(hints.get("forZones")), _hint_names(hints.get("forNodes"))))
    out: dict[tuple[str, str], list[Endpoint]] = {}
    for name, protocol, number in ports:
        out[(name, protocol)] = [Endpoint(ip, number, node, ready, serving, terminating,
                                          zones, nodes)
                                 for ip, node, ready, serving, terminating, zones, nodes
                                 in endpoints]
    return out


def _hint_names(value: Any) -> frozenset[str]:
    """The names of a ``forZones``/``forNodes`` list. They are only compared with the
    node's own zone and name, never written into a rule, so they need no checking."""
    return frozenset(h["name"] for h in _list(value)
                     if isinstance(h, Mapping) and isinstance(h.get("name"), str))


def merge_endpoints(per_slice: Iterable[Mapping[tuple[str, str], list[Endpoint]]]
                    ) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
    """Join several slices' endpoints of one Service: per port, one entry per
    ``ip:port`` (the first slice seen wins, slices being given in name order),
    sorted by the ``"ip:port"`` string as kube-proxy sorts them."""
    merged: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for endpoints in per_slice:
        for port, items in endpoints.items():
            bucket = merged.setdefault(port, {})
            for endpoint in items:
                bucket.setdefault(endpoint.address, endpoint)
    return {port: tuple(bucket[a] for a in sorted(bucket)) for port, bucket in merged.items()}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def trigger_time(endpoint_slice: Object) -> float | None:
    """The slice's ``last-change-trigger-time`` as Unix time; None if absent or malformed."""
    meta = _mapping(endpoint_slice.get("metadata"))
    return parse_time(_mapping(meta.get("annotations")).get(TRIGGER_TIME_ANNOTATION))
