"""Name, label and address predicates, as apimachinery's ``pkg/util/validation``.

Each predicate returns the list of problems (empty means valid) rather than raising,
so a caller can attach every message to a field path of its own; the wording is
Kubernetes', because users and tools compare it with what a real cluster says.

IPs and CIDRs are checked the way Kubernetes checks new values since
``StrictIPCIDRValidation``: what Go's sloppy parser accepts, minus leading zeros,
IPv4-mapped IPv6 addresses, zones, and (for CIDRs) bits set past the prefix.
Pure code: no I/O, no state.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
IANA_SVC_NAME_MAX = 15
PORT_MIN, PORT_MAX = 1, 65535

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                      "'-', start with an alphabetic character, and end with an alphanumeric "
                      "character")
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_ENV_VAR_MSG = ("a valid environment variable name must consist only of printable ASCII "
                "characters other than '='")

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_HTTP_HEADER_RE = re.compile(_HTTP_HEADER_FMT)
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_IANA_CHARSET_RE = re.compile("[-a-z0-9]+")
_IANA_LETTER_RE = re.compile("[a-z]")
# Go's parser takes up to three decimal digits per octet, leading zeros included.
_IPV4_SLOPPY_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")

INVALID_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
INVALID_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
NOT_A_STRING = "must be a string"


# ---------------------------------------------------------------------------- messages


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """Kubernetes' RegexError, double space before ``or`` included."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


# ---------------------------------------------------------------------------- names


def is_dns1123_label(v: str) -> list[str]:
    """Namespace names, container and port names, hostnames: ≤63, may start with a digit."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(DNS1123_LABEL_MAX)] if len(v) > DNS1123_LABEL_MAX else []
    if not _DNS1123_LABEL_RE.fullmatch(v):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(v):
            errs.append("must not contain dots")  # a valid subdomain: only the dots are wrong
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(v: str) -> list[str]:
    """Pod, Node, EndpointSlice, Event names: dot-separated labels, ≤253."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(DNS1123_SUBDOMAIN_MAX)] if len(v) > DNS1123_SUBDOMAIN_MAX else []
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(v):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(v: str) -> list[str]:
    """Service names: a label that starts with a letter, so it can't look like an IP part."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(DNS1035_LABEL_MAX)] if len(v) > DNS1035_LABEL_MAX else []
    if not _DNS1035_LABEL_RE.fullmatch(v):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(v: str) -> list[str]:
    """Label and annotation keys, finalizers: ``[prefix/]name``, prefix a DNS subdomain."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    parts = v.split("/")
    errs: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name "
                + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                              "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(v: str) -> list[str]:
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(LABEL_VALUE_MAX)] if len(v) > LABEL_VALUE_MAX else []
    if not _LABEL_VALUE_RE.fullmatch(v):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_iana_svc_name(v: str) -> list[str]:
    """Named ports (RFC 6335): what a Service's string ``targetPort`` refers to."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(IANA_SVC_NAME_MAX)] if len(v) > IANA_SVC_NAME_MAX else []
    if not _IANA_CHARSET_RE.fullmatch(v):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _IANA_LETTER_RE.search(v):
        errs.append("must contain at least one letter (a-z)")
    if "--" in v:
        errs.append("must not contain consecutive hyphens")
    if v.startswith("-") or v.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_fully_qualified_domain_name(v: str) -> list[str]:
    """FQDN EndpointSlice addresses: a subdomain of at least two labels, one trailing dot ok."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    name = v[:-1] if v.endswith(".") else v
    if errs := is_dns1123_subdomain(name):
        return [",".join(errs)]
    if len(name.split(".")) < 2:
        return ["should be a domain with at least two segments separated by dots"]
    return []


def is_env_var_name(v: str) -> list[str]:
    """Relaxed rule (GA in Kubernetes 1.34): printable ASCII except '='."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    if not v:
        return ["environment variable name " + empty_error()]
    if any(not (" " <= ch <= "~") or ch == "=" for ch in v):
        return [_ENV_VAR_MSG]
    return []


def is_config_map_key(v: str) -> list[str]:
    """A key of a ConfigMap's or Secret's data (and so a file name in a volume): ≤253,
    alphanumerics, '-', '_' and '.', and never '.', '..' or '..'-prefixed."""
    if not isinstance(v, str):
        return [NOT_A_STRING]
    errs = [max_len_error(DNS1123_SUBDOMAIN_MAX)] if len(v) > DNS1123_SUBDOMAIN_MAX else []
    if not _CONFIG_KEY_RE.fullmatch(v):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME",
                                "key-name"))
    if v == ".":
        errs.append("must not be '.'")
    elif v == "..":
        errs.append("must not be '..'")
    elif v.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_http_header_name(v: str) -> list[str]:
    if not isinstance(v, str):
        return [NOT_A_STRING]
    if not _HTTP_HEADER_RE.fullmatch(v):
        return [regex_error(_HTTP_HEADER_MSG, _HTTP_HEADER_FMT, "X-Header-Name")]
    return []


def is_valid_port_num(v: int) -> list[str]:
    if isinstance(v, bool) or not isinstance(v, int) or not PORT_MIN <= v <= PORT_MAX:
        return [inclusive_range_error(PORT_MIN, PORT_MAX)]
    return []


# ---------------------------------------------------------------------------- addresses


def parse_ip(v: str) -> IPAddress | None:
    """The address Go's sloppy parser would read (leading zeros allowed), else None."""
    if not isinstance(v, str):
        return None
    if m := _IPV4_SLOPPY_RE.fullmatch(v):
        octets = [int(g) for g in m.groups()]
        if any(o > 255 for o in octets):
            return None
        return ipaddress.IPv4Address(".".join(map(str, octets)))
    if ":" not in v or "%" in v:  # no zones: Kubernetes never accepts them
        return None
    try:
        return ipaddress.IPv6Address(v)
    except ValueError:
        return None


def _has_leading_zeros(v: str) -> bool:
    m = _IPV4_SLOPPY_RE.fullmatch(v)
    return m is not None and any(len(g) > 1 and g.startswith("0") for g in m.groups())


def is_valid_ip(v: str) -> list[str]:
    ip = parse_ip(v)
    if ip is None:
        return [INVALID_IP]
    if _has_leading_zeros(v):
        return ["must not have leading 0s"]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ["must not be an IPv4-mapped IPv6 address"]
    return []


def is_valid_ipv4(v: str) -> list[str]:
    if is_valid_ip(v) or ip_family(v) != 4:
        return ["must be a valid IPv4 address"]
    return []


def is_valid_ipv6(v: str) -> list[str]:
    if is_valid_ip(v) or ip_family(v) != 6:
        return ["must be a valid IPv6 address"]
    return []


def ip_family(v: str) -> int | None:
    """4 or 6 for an address (or a CIDR's address part), None when it isn't one."""
    ip = parse_ip(v.rpartition("/")[0] if isinstance(v, str) and "/" in v else v)
    return ip.version if ip is not None else None


def is_valid_cidr(v: str) -> list[str]:
    if not isinstance(v, str):
        return [INVALID_CIDR]
    address, slash, length = v.rpartition("/")
    ip = parse_ip(address)
    if not slash or ip is None or not length.isascii() or not length.isdigit():
        return [INVALID_CIDR]
    bits = int(length)
    if bits > ip.max_prefixlen:
        return [INVALID_CIDR]
    if _has_leading_zeros(address) or (len(length) > 1 and length.startswith("0")):
        return ["must not have leading 0s in IP or prefix length"]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ["must not have an IPv4-mapped IPv6 address"]
    if ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address != ip:
        return ["must not have bits set beyond the prefix length"]
    return []


def is_non_special_ip(v: str) -> list[str]:
    """Endpoint and external IPs: no unspecified, loopback or link-local addresses."""
    ip = parse_ip(v)
    if ip is None:
        return ["must be a valid IP address"]
    errs = []
    if ip.is_unspecified:
        errs.append(f"may not be unspecified ({v})")
    if ip.is_loopback:
        errs.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:
        errs.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if _is_link_local_multicast(ip):
        errs.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return errs


def _is_link_local_multicast(ip: IPAddress) -> bool:
    if ip.version == 4:
        return ip in ipaddress.IPv4Network("224.0.0.0/24")
    packed = ip.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02
