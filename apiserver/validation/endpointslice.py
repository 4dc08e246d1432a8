"""EndpointSlice rules (Kubernetes ``pkg/apis/discovery/validation``).

The limits keep one slice small enough to fan out to every proxy cheaply.
Unlike Kubernetes, a port number, when given, is held to 1–65535 like every other
port here (Kubernetes checks no range; nothing useful lives outside it).
"""

from __future__ import annotations

from apimachinery import names
from apiserver.errors import duplicate, required
from apiserver.validation.fields import PROTOCOLS, FieldErrors, too_many
from apiserver.validation.meta import check_labels

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 100
MAX_TOPOLOGY_LABELS = 16
MAX_HINTS = 8
_ADDRESS_RULES = {
    "IPv4": (names.is_valid_ipv4, names.is_non_special_ip),
    "IPv6": (names.is_valid_ipv6, names.is_non_special_ip),
    "FQDN": (names.is_fully_qualified_domain_name,),
}


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    address_type = errs.enum(obj.get("addressType"), "addressType", ADDRESS_TYPES, required=True)
    endpoints = errs.seq(obj.get("endpoints"), "endpoints")
    if errs.limit(endpoints, "endpoints", MAX_ENDPOINTS):
        for p, endpoint in errs.items(endpoints, "endpoints"):
            _check_endpoint(errs, endpoint, p, address_type)
    ports = errs.seq(obj.get("ports"), "ports")
    if errs.limit(ports, "ports", MAX_PORTS):
        _check_ports(errs, ports)
    if isinstance(old, dict):
        errs.immutable(obj.get("addressType"), old.get("addressType"), "addressType")


def _check_endpoint(errs: FieldErrors, endpoint: dict, path: str, address_type: str | None) -> None:
    raw = endpoint.get("addresses")
    addresses = errs.seq(raw, f"{path}.addresses")
    if raw in (None, []):
        errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
    errs.limit(addresses, f"{path}.addresses", MAX_ADDRESSES)
    for p, address in errs.strings(addresses, f"{path}.addresses"):
        for rule in _ADDRESS_RULES.get(address_type or "", ()):
            if not errs.check(address, p, rule):
                break  # the address is unusable: no point judging it further
    conditions = errs.obj(endpoint.get("conditions"), f"{path}.conditions") or {}
    for key in ("ready", "serving", "terminating"):
        errs.boolean(conditions.get(key), f"{path}.conditions.{key}")
    hostname = errs.text(endpoint.get("hostname"), f"{path}.hostname")
    if hostname is not None:
        errs.check(hostname, f"{path}.hostname", names.is_dns1123_label)
    node_name = errs.text(endpoint.get("nodeName"), f"{path}.nodeName")
    if node_name is not None:
        errs.check(node_name, f"{path}.nodeName", names.is_dns1123_subdomain)
    errs.text(endpoint.get("zone"), f"{path}.zone")
    ref = errs.obj(endpoint.get("targetRef"), f"{path}.targetRef") or {}
    for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        errs.text(ref.get(key), f"{path}.targetRef.{key}")
    topology = errs.obj(endpoint.get("deprecatedTopology"), f"{path}.deprecatedTopology")
    if topology is not None and len(topology) > MAX_TOPOLOGY_LABELS:
        errs.append(too_many(f"{path}.deprecatedTopology", len(topology), MAX_TOPOLOGY_LABELS))
    check_labels(errs, topology, f"{path}.deprecatedTopology")
    _check_hints(errs, endpoint.get("hints"), f"{path}.hints")


def _check_hints(errs: FieldErrors, value: object, path: str) -> None:
    hints = errs.obj(value, path) or {}
    for key, rule in (("forZones", names.is_valid_label_value),
                      ("forNodes", names.is_dns1123_subdomain)):
        entries = errs.seq(hints.get(key), f"{path}.{key}")
        errs.limit(entries, f"{path}.{key}", MAX_HINTS)
        for p, hint in errs.items(entries, f"{path}.{key}"):
            name = errs.required_text(hint.get("name"), f"{p}.name")
            if name:
                errs.check(name, f"{p}.name", rule)


def _check_ports(errs: FieldErrors, ports: list | None) -> None:
    seen: set[str] = set()
    for p, port in errs.items(ports, "ports"):
        name = errs.text(port.get("name"), f"{p}.name")
        if name:
            errs.check(name, f"{p}.name", names.is_dns1123_label)
        if name is not None or port.get("name") is None:
            key = name or ""  # an absent name is the empty name: at most one per slice
            if key in seen:
                errs.append(duplicate(f"{p}.name", key))
            seen.add(key)
        errs.enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS, required=True)
        errs.port(port.get("port"), f"{p}.port")
        app_protocol = errs.text(port.get("appProtocol"), f"{p}.appProtocol")
        if app_protocol is not None:
            errs.check(app_protocol, f"{p}.appProtocol", names.is_qualified_name)
