"""The answer to a question, as a pure function of the zone's data.

``answer(zone, labels, qtype)`` returns an ``Answer``: an rcode and the records
of the three sections, as plain values that compare and print as zone-file
lines. It decides everything the Kubernetes DNS specification and CoreDNS's
``kubernetes`` plugin decide, and nothing about wire format, EDNS, truncation or
sockets (``wire.py`` and ``server.py`` do those).

Rules, in one place (CoreDNS's ``handler.go`` / ``backend_lookup.go``):

- Name existence is decided independently of the type: a name that would give
  records for *some* type answers other types with NODATA (NOERROR, no answer,
  the zone's SOA in authority); a name that would give none is NXDOMAIN with the
  SOA. Both are authoritative.
- ClusterIP Service → its ClusterIPs, even with no endpoints. Headless → one
  address per published endpoint (deduplicated); none published → NXDOMAIN.
  ExternalName → a CNAME (an IP-literal target is not served: NXDOMAIN).
- SRV: priority 0, weight ``max(1, 100 // N)`` for N candidate (address, port)
  rows, the target's addresses in the additional section.
- PTR: a ClusterIP names its (first, by namespace/name) Service; a headless
  endpoint names ``<label>.<svc>.<ns>.svc.<zone>`` once per Service publishing it.
- Out of the zone, and reverse names of addresses the cluster doesn't own: not
  ours (``forward``), so the server forwards them or answers REFUSED.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.rcode
import dns.rdatatype

from dnsd.model import Endpoint, Port, ServiceInfo, ServiceKind
from dnsd.names import (
    IN_ADDR_ARPA,
    IP6_ARPA,
    NS_HOST_LABELS,
    SVC,
    Labels,
    NameKind,
    ParsedName,
    join_name,
    parse_name,
    split_name,
)
from dnsd.zone import (
    ANY,
    APEX,
    DNS_SERVICE,
    NEVER,
    Tag,
    ZoneData,
    ip_tag,
    namespace_tag,
    service_tag,
)

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
CNAME = dns.rdatatype.CNAME
NS = dns.rdatatype.NS
PTR = dns.rdatatype.PTR
SOA = dns.rdatatype.SOA
SRV = dns.rdatatype.SRV
TXT = dns.rdatatype.TXT

NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
REFUSED = dns.rcode.REFUSED

SCHEMA_VERSION = "1.1.0"  # the Kubernetes DNS specification this implements
SCHEMA_TTL = 28800  # CoreDNS's TTL for dns-version: it never changes in a process's life
SOA_MAX_TTL = 300  # SOA record TTL = min(ttl, 300), as CoreDNS
SOA_TIMERS = (7200, 1800, 86400)  # refresh, retry, expire: CoreDNS's values
MAX_CNAME_CHAIN = 8  # in-zone ExternalName → ExternalName hops followed, as CoreDNS


@dataclass(frozen=True)
class Record:
    """One resource record; ``data`` is the presentation form of the RDATA."""

    name: str  # absolute, lower case: "web.default.svc.cluster.local."
    rtype: int
    ttl: int
    data: str

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} IN {dns.rdatatype.RdataType.to_text(self.rtype)} {self.data}"


@dataclass(frozen=True)
class Answer:
    """What to reply, before wire format.

    ``forward``: not this server's name; forward it upstream or answer REFUSED.
    ``chase``: an out-of-zone CNAME target whose records an upstream could add.
    """

    rcode: int
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    forward: bool = False
    chase: str = ""

    @property
    def authoritative(self) -> bool:
        return not self.forward

    def lines(self) -> list[str]:
        """Every record as a zone-file line, sections in order (for tests and logs)."""
        return [str(r) for r in (*self.answer, *self.authority, *self.additional)]


NOT_OURS = Answer(REFUSED, forward=True)


def answer(zone: ZoneData, labels: Labels, qtype: int, *, serial: int | None = None
           ) -> Answer:
    """The answer for lower-cased ``labels`` and ``qtype``.

    ``serial`` overrides ``zone.serial`` in the SOA (the wire layer renders with 0
    and patches the live serial in, so stored answers don't go stale with it).
    """
    parsed = parse_name(labels, zone.origin)
    if parsed.kind is NameKind.OUTSIDE:
        return NOT_OURS
    soa_serial = zone.serial if serial is None else serial
    if parsed.kind is NameKind.REVERSE:
        return _reverse(zone, labels, parsed.ip, qtype, soa_serial)
    qname = join_name(labels)
    records, additional = _records(zone, parsed, qname, qtype, soa_serial)
    if records is None:
        return Answer(NXDOMAIN, authority=(soa_record(zone, soa_serial),))
    chase = ""
    if records and records[-1].rtype == CNAME and qtype != CNAME:
        records, chase = _follow_cname(zone, records, qtype)
    if not records:
        return Answer(NOERROR, authority=(soa_record(zone, soa_serial),))
    return Answer(NOERROR, tuple(records), (), tuple(additional), chase=chase)


def answer_text(zone: ZoneData, name: str, qtype: int | str) -> Answer:
    """``answer`` for a text name and type (``"web.default.svc.cluster.local"``, ``"A"``)."""
    rtype = dns.rdatatype.from_text(qtype) if isinstance(qtype, str) else qtype
    return answer(zone, split_name(name), rtype)


def cache_tag(zone: ZoneData, labels: Labels, result: Answer) -> Tag:
    """What ``result`` (the answer for ``labels``) was read from: the tag of the only
    change that can alter it (``zone.Changes.tags``)."""
    if any(r.rtype == CNAME for r in result.answer):
        return ANY
    parsed = parse_name(labels, zone.origin)
    kind = parsed.kind
    if kind in (NameKind.SERVICE, NameKind.ENDPOINT, NameKind.PORT):
        return service_tag((parsed.namespace, parsed.service))
    if kind in (NameKind.NAMESPACE, NameKind.POD_NAMESPACE, NameKind.POD):
        return namespace_tag(parsed.namespace)
    if kind is NameKind.REVERSE:
        return ip_tag(parsed.ip)
    if kind in (NameKind.INVALID, NameKind.OUTSIDE):
        return NEVER
    return APEX


def soa_record(zone: ZoneData, serial: int, origin: Labels | None = None) -> Record:
    """The SOA of ``origin`` (the cluster zone by default): MINIMUM is the TTL, which is
    what resolvers negative-cache for (RFC 2308)."""
    apex = join_name(origin if origin is not None else zone.origin)
    data = (f"ns.dns.{apex} hostmaster.{apex} {serial} "
            f"{SOA_TIMERS[0]} {SOA_TIMERS[1]} {SOA_TIMERS[2]} {zone.ttl}")
    return Record(apex, SOA, min(zone.ttl, SOA_MAX_TTL), data)


# -- forward names ---------------------------------------------------------------------

# (records or None for "name does not exist", additional records)
Found = tuple[list[Record] | None, list[Record]]


def _records(zone: ZoneData, q: ParsedName, qname: str, qtype: int, serial: int) -> Found:
    kind = q.kind
    if kind is NameKind.APEX:
        return _apex(zone, qname, qtype, serial)
    if kind is NameKind.NS_HOST:
        return _addresses(qname, qtype, zone.ttl, [ip for _, ip in nameservers(zone)]), []
    if kind is NameKind.DNS_VERSION:
        if qtype == TXT:
            return [Record(qname, TXT, SCHEMA_TTL, f'"{SCHEMA_VERSION}"')], []
        return [], []
    if kind in (NameKind.SVC_ROOT, NameKind.POD_ROOT):
        return [], []
    if kind is NameKind.NAMESPACE:
        return ([] if zone.namespace_exists(q.namespace) else None), []
    if kind is NameKind.POD_NAMESPACE:
        exists = zone.pod_records and zone.namespace_exists(q.namespace)
        return ([] if exists else None), []
    if kind is NameKind.POD:
        if not (zone.pod_records and zone.namespace_exists(q.namespace)):
            return None, []
        return _addresses(qname, qtype, zone.ttl, [q.ip]), []
    if kind in (NameKind.SERVICE, NameKind.ENDPOINT, NameKind.PORT):
        service = zone.services.get((q.namespace, q.service))
        if service is None:
            return None, []
        if service.kind is ServiceKind.EXTERNAL_NAME:
            return _external(service, q, qname, zone.ttl), []
        return _service(zone, service, q, qname, qtype)
    return None, []  # INVALID


def _apex(zone: ZoneData, qname: str, qtype: int, serial: int) -> Found:
    if qtype == SOA:
        return [soa_record(zone, serial)], []
    if qtype == NS:
        records, glue = [], []
        for host, ip in nameservers(zone):
            ns = Record(qname, NS, zone.ttl, host)
            if ns not in records:
                records.append(ns)
            if ip:
                glue.append(Record(host, A if _version(ip) == 4 else AAAA, zone.ttl, ip))
        return records, glue
    return [], []


def nameservers(zone: ZoneData) -> list[tuple[str, str]]:
    """(NS target, glue address) pairs: the ``kube-dns`` Service and its ClusterIPs when it
    exists (how pods reach this server), else ``ns.dns.<zone>`` and dnsd's own listen
    addresses. A target without an address gets ``""``."""
    dns_service = zone.services.get(DNS_SERVICE)
    if dns_service is not None and dns_service.kind is ServiceKind.CLUSTER_IP \
            and dns_service.cluster_ips:
        host = join_name((DNS_SERVICE[1], DNS_SERVICE[0], SVC, *zone.origin))
        return [(host, ip) for ip in dns_service.cluster_ips]
    host = join_name((*NS_HOST_LABELS, *zone.origin))
    return [(host, ip) for ip in zone.local_ips] or [(host, "")]


def _external(service: ServiceInfo, q: ParsedName, qname: str, ttl: int) -> list[Record] | None:
    """ExternalName: a CNAME for the Service name itself; no sub-names, no IP literals."""
    if q.kind is not NameKind.SERVICE or not service.external_name \
            or _version(service.external_name):
        return None
    return [Record(qname, CNAME, ttl, service.external_name + ".")]


def _follow_cname(zone: ZoneData, records: list[Record], qtype: int
                  ) -> tuple[list[Record], str]:
    """Resolve an in-zone CNAME target here (up to ``MAX_CNAME_CHAIN`` hops); an
    out-of-zone one is left for the server to ``chase`` upstream."""
    chain = list(records)
    for _ in range(MAX_CNAME_CHAIN):
        target = split_name(chain[-1].data)
        parsed = parse_name(target, zone.origin)
        if parsed.kind in (NameKind.OUTSIDE, NameKind.REVERSE):
            return chain, join_name(target)
        found, _ = _records(zone, parsed, join_name(target), qtype, zone.serial)
        if not found:
            return chain, ""
        if any(r.data == rr.data and r.rtype == CNAME for r in chain for rr in found):
            return chain, ""  # a loop
        chain.extend(found)
        if found[-1].rtype != CNAME:
            return chain, ""
    return chain, ""


def _service(zone: ZoneData, service: ServiceInfo, q: ParsedName, qname: str, qtype: int
             ) -> Found:
    """ClusterIP and headless Services: build CoreDNS's candidate (target, address, port)
    rows, then the records the type asks for. No rows → the name doesn't exist."""
    rows = _candidates(zone, service, q)
    if not rows:
        return None, []
    if qtype in (A, AAAA):
        return _addresses(qname, qtype, zone.ttl, [addr for _, addr, _ in rows]), []
    if qtype == SRV:
        return _srv(qname, zone.ttl, rows)
    return [], []


Row = tuple[str, str, int | None]  # (target name, address, port or None for "no ports")


def _candidates(zone: ZoneData, service: ServiceInfo, q: ParsedName) -> list[Row]:
    suffix = f"{service.name}.{service.namespace}.{SVC}.{zone.zone}"
    if service.kind is ServiceKind.HEADLESS:
        endpoints = zone.endpoints(service.key)
        if q.kind is NameKind.ENDPOINT:
            chosen: tuple[Endpoint, ...] = endpoints.by_label.get(q.endpoint, ())
        else:
            chosen = endpoints.published
        return [(f"{ep.label}.{suffix}", ep.address, port)
                for ep in chosen for port in _matching(ep.ports, q)]
    if q.kind is NameKind.ENDPOINT:
        return []  # hostnames are a headless Service's; the spec defines none for ClusterIP
    return [(suffix, ip, port) for port in _matching(service.ports, q)
            for ip in service.cluster_ips]


def _matching(ports: tuple[Port, ...], q: ParsedName) -> list[int | None]:
    """Ports matching the query's ``_port._proto`` (all of them when it has none).

    A name that asks for a port never matches an unnamed one (no SRV for unnamed
    ports, per the spec); with no ports at all there is one port-less row, so the
    addresses still exist (CoreDNS's sentinel port -1).
    """
    if q.kind is not NameKind.PORT:
        return [p.port for p in ports] if ports else [None]
    return [p.port for p in ports if p.name and p.name == q.port and p.protocol == q.protocol]


def _addresses(qname: str, qtype: int, ttl: int, addresses: list[str]) -> list[Record]:
    """A or AAAA records for the addresses of the asked family, deduplicated in order."""
    want = 4 if qtype == A else 6 if qtype == AAAA else 0
    seen: dict[str, None] = {}
    for addr in addresses:
        if _version(addr) == want:
            seen.setdefault(addr, None)
    return [Record(qname, qtype, ttl, addr) for addr in seen]


def _srv(qname: str, ttl: int, rows: list[Row]) -> Found:
    weight = max(1, 100 // len(rows))
    records: dict[tuple[str, int], Record] = {}
    extra: dict[tuple[str, str], Record] = {}
    for target, addr, port in rows:
        if port is None:
            continue
        records.setdefault((target, port), Record(qname, SRV, ttl,
                                                  f"0 {weight} {port} {target}"))
        kind = A if _version(addr) == 4 else AAAA
        extra.setdefault((target, addr), Record(target, kind, ttl, addr))
    return list(records.values()), list(extra.values())


# -- reverse names ---------------------------------------------------------------------


def ptr_targets(zone: ZoneData, ip: str) -> list[str]:
    """The names ``ip`` points back to: its Service's for a ClusterIP (the first by
    namespace/name, as CoreDNS), else one per headless Service publishing it."""
    owners = [zone.services[k] for k in zone.ip_owners(ip) if k in zone.services]
    for svc in owners:
        if svc.kind is ServiceKind.CLUSTER_IP and ip in svc.cluster_ips:
            return [f"{svc.name}.{svc.namespace}.{SVC}.{zone.zone}"]
    targets: dict[str, None] = {}
    for svc in owners:
        if svc.kind is ServiceKind.HEADLESS:
            for ep in zone.endpoints(svc.key).by_address.get(ip, ()):
                targets.setdefault(f"{ep.label}.{svc.name}.{svc.namespace}.{SVC}.{zone.zone}")
    return list(targets)


def _reverse(zone: ZoneData, labels: Labels, ip: str, qtype: int, serial: int) -> Answer:
    targets = ptr_targets(zone, ip)
    if not targets:
        return NOT_OURS  # kubeadm's "fallthrough in-addr.arpa ip6.arpa": someone else's
    qname = join_name(labels)
    if qtype != PTR:
        origin = IN_ADDR_ARPA if ipaddress.ip_address(ip).version == 4 else IP6_ARPA
        return Answer(NOERROR, authority=(soa_record(zone, serial, origin),))
    return Answer(NOERROR, tuple(Record(qname, PTR, zone.ttl, t) for t in targets))


def _version(text: str) -> int:
    """4 or 6 for an IP address, 0 for anything else."""
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0
