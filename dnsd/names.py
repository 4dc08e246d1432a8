"""Query names → what they ask for: pure parsing, no cache, no I/O.

The grammar is CoreDNS's ``kubernetes`` plugin's (``parse.go``), which is the
de-facto reading of the Kubernetes DNS specification. Below the cluster zone:

====================================  ==============================================
``<zone>``                            ``APEX`` (SOA, NS)
``dns-version.<zone>``                ``DNS_VERSION`` (TXT "1.1.0")
``ns.dns.<zone>``                     ``NS_HOST`` (the name the NS record points at)
``svc.<zone>``, ``pod.<zone>``        ``SVC_ROOT``, ``POD_ROOT`` (exist, no data)
``<ns>.svc.<zone>``                   ``NAMESPACE``
``<svc>.<ns>.svc.<zone>``             ``SERVICE``
``<host>.<svc>.<ns>.svc.<zone>``      ``ENDPOINT`` (a headless endpoint's hostname)
``_<port>._<proto>.<svc>.<ns>.svc…``  ``PORT`` (SRV; underscores stripped)
``<ns>.pod.<zone>``                   ``POD_NAMESPACE``
``<a-b-c-d>.<ns>.pod.<zone>``         ``POD`` (the dashed IP, v4 or v6)
anything else in the zone             ``INVALID`` (NXDOMAIN)
``d.c.b.a.in-addr.arpa`` / ip6.arpa   ``REVERSE`` (PTR), when it spells a whole IP
everything else                       ``OUTSIDE`` (forward upstream, or REFUSED)
====================================  ==============================================

Names come in as label tuples, already lower-cased: matching is
case-insensitive (the spec says so), and echoing the client's case is the
wire layer's job. Labels are ``str`` decoded as latin-1, so any byte string
round-trips and nothing here can raise on hostile input.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

Labels = tuple[str, ...]

SVC = "svc"
POD = "pod"
DNS_VERSION_LABEL = "dns-version"
NS_HOST_LABELS: Labels = ("ns", "dns")
IN_ADDR_ARPA: Labels = ("in-addr", "arpa")
IP6_ARPA: Labels = ("ip6", "arpa")


class NameKind(enum.Enum):
    """What part of the cluster's namespace a query name falls in."""

    APEX = "apex"
    DNS_VERSION = "dns-version"
    NS_HOST = "ns-host"
    SVC_ROOT = "svc-root"
    POD_ROOT = "pod-root"
    NAMESPACE = "namespace"
    SERVICE = "service"
    ENDPOINT = "endpoint"
    PORT = "port"
    POD_NAMESPACE = "pod-namespace"
    POD = "pod"
    REVERSE = "reverse"
    INVALID = "invalid"
    OUTSIDE = "outside"


@dataclass(frozen=True)
class ParsedName:
    """A query name taken apart. Fields not meaningful for ``kind`` are empty."""

    kind: NameKind
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""
    ip: str = ""  # REVERSE and POD: the address, in Python's canonical text form


def split_name(text: str) -> Labels:
    """``"Web.Default.svc.cluster.local."`` → ``("web", "default", "svc", "cluster", "local")``.

    For tests and flags; the server gets labels straight from the wire. No
    escape handling: cluster names never contain dots or backslashes.
    """
    text = text.strip().rstrip(".").lower()
    return tuple(text.split(".")) if text else ()


def join_name(labels: Labels) -> str:
    """The absolute text form, lower case with the trailing dot."""
    return ".".join(labels) + "." if labels else "."


def parse_name(labels: Labels, zone: Labels) -> ParsedName:
    """Classify lower-cased ``labels`` against the cluster ``zone`` (also labels)."""
    if _is_under(labels, zone):
        return _parse_in_zone(labels[: len(labels) - len(zone)])
    if _is_under(labels, IN_ADDR_ARPA) or _is_under(labels, IP6_ARPA):
        ip = address_from_reverse(labels)
        return ParsedName(NameKind.REVERSE, ip=ip) if ip else ParsedName(NameKind.OUTSIDE)
    return ParsedName(NameKind.OUTSIDE)


def _is_under(labels: Labels, suffix: Labels) -> bool:
    return len(labels) >= len(suffix) and labels[len(labels) - len(suffix):] == suffix


def _parse_in_zone(base: Labels) -> ParsedName:
    """CoreDNS's ``parseRequest``: read right to left, svc|pod, namespace, service, extras."""
    if not base:
        return ParsedName(NameKind.APEX)
    if base == (SVC,):
        return ParsedName(NameKind.SVC_ROOT)
    if base == (POD,):
        return ParsedName(NameKind.POD_ROOT)
    if base == (DNS_VERSION_LABEL,):
        return ParsedName(NameKind.DNS_VERSION)
    if base == NS_HOST_LABELS:
        return ParsedName(NameKind.NS_HOST)
    *rest, section = base
    if section not in (SVC, POD):
        return ParsedName(NameKind.INVALID)
    namespace = rest.pop()
    if section == POD:
        if not rest:
            return ParsedName(NameKind.POD_NAMESPACE, namespace=namespace)
        if len(rest) > 1:
            return ParsedName(NameKind.INVALID)
        ip = address_from_dashed(rest[0])
        if not ip:
            return ParsedName(NameKind.INVALID)
        return ParsedName(NameKind.POD, namespace=namespace, ip=ip)
    if not rest:
        return ParsedName(NameKind.NAMESPACE, namespace=namespace)
    service = rest.pop()
    if not rest:
        return ParsedName(NameKind.SERVICE, namespace=namespace, service=service)
    if len(rest) == 1:
        return ParsedName(NameKind.ENDPOINT, namespace=namespace, service=service,
                          endpoint=rest[0])
    if len(rest) == 2:
        return ParsedName(NameKind.PORT, namespace=namespace, service=service,
                          port=_strip_underscore(rest[0]), protocol=_strip_underscore(rest[1]))
    return ParsedName(NameKind.INVALID)


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


# -- addresses in names ----------------------------------------------------------------


def address_from_dashed(label: str) -> str:
    """A pod label (``10-244-1-7``, ``fd00--1``) → canonical IP text, or "" if not an IP.

    CoreDNS's rule: exactly three dashes and no ``--`` means IPv4, otherwise every
    dash is a colon.
    """
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def dashed_address(ip: str) -> str:
    """The label CoreDNS makes of an endpoint IP without a hostname.

    ``10.0.0.5`` → ``10-0-0-5``; ``2001:db8::1`` → ``2001-db8--1``. A label may not
    start or end with a dash, so a compressed IPv6 address that does gets a ``0``
    there (``::1`` → ``0--1``, ``fd00::`` → ``fd00--0``).
    """
    label = ip.replace(".", "-").replace(":", "-")
    if label.startswith("-"):
        label = "0" + label
    if label.endswith("-"):
        label += "0"
    return label


def address_from_reverse(labels: Labels) -> str:
    """``("1","0","96","10","in-addr","arpa")`` → ``"10.96.0.1"``; "" unless a whole IP.

    Octets must be canonical decimals and nibbles single hex digits, so one
    address has exactly one reverse name (``01.0.96.10.in-addr.arpa`` is not it).
    """
    if _is_under(labels, IN_ADDR_ARPA) and len(labels) == 6:
        octets = labels[:4]
        if all(o.isdigit() and o.isascii() and str(int(o)) == o and int(o) < 256
               for o in octets):
            return ".".join(reversed(octets))
        return ""
    if _is_under(labels, IP6_ARPA) and len(labels) == 34:
        nibbles = labels[:32]
        if all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            packed = "".join(reversed(nibbles))
            groups = ":".join(packed[i:i + 4] for i in range(0, 32, 4))
            return str(ipaddress.IPv6Address(groups))
        return ""
    return ""


def reverse_labels(ip: str) -> Labels:
    """The PTR owner name of ``ip`` as labels (the inverse of ``address_from_reverse``)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        return (*reversed(str(addr).split(".")), *IN_ADDR_ARPA)
    return (*reversed(addr.exploded.replace(":", "")), *IP6_ARPA)
