"""v1 Endpoints subsets packed one canonical way (pure), as Kubernetes' ``RepackSubsets``.

An Endpoints object lists ``subsets``, each a set of addresses (ready, and not
ready) that all serve the same set of ports. The same facts can be written many
ways, so whoever writes Endpoints (the endpoints controller, the API server for
the ``kubernetes`` Service) packs them canonically: each port is mapped to the
addresses offering it, ports offered by exactly the same addresses (with the same
readiness) share a subset, and everything is sorted. Equal inputs give equal
lists, so a writer can compare what it wants with what is stored and skip the write.

An address is one per (``ip``, ``targetRef.uid``); an address listed both ready
and not ready for a port counts as ready, as in Kubernetes. Entries without ports
(a headless Service without ports) form subsets with no ``ports``.

Order: addresses by IP (numerically) then Pod uid; ports by name, number, protocol;
subsets by their ports, then their first addresses. (Kubernetes orders ports and
subsets by a hash of their content: just as deterministic, but not readable.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Address = Mapping[str, Any]  # EndpointAddress: ip, hostname, nodeName, targetRef
Port = Mapping[str, Any]  # EndpointPort: name, port, protocol, appProtocol
# An EndpointPort as a sortable value: (name, port, protocol, appProtocol).
PortValue = tuple[str, int, str, str]
AddressKey = tuple[str, str]  # (ip, targetRef uid)

NO_PORTS: PortValue = ("", -1, "", "")  # the sentinel of an entry without ports


def port_value(port: Port) -> PortValue:
    return (str(port.get("name") or ""), int(port.get("port") or 0),
            str(port.get("protocol") or "TCP"), str(port.get("appProtocol") or ""))


def port_body(value: PortValue) -> dict[str, Any]:
    """An EndpointPort as the API serves it (empty name and appProtocol left out)."""
    name, number, protocol, app_protocol = value
    body: dict[str, Any] = {"port": number, "protocol": protocol}
    if name:
        body["name"] = name
    if app_protocol:
        body["appProtocol"] = app_protocol
    return body


def address_key(address: Address) -> AddressKey:
    ref = address.get("targetRef")
    uid = str(ref.get("uid") or "") if isinstance(ref, Mapping) else ""
    return str(address.get("ip") or ""), uid


def address_order(address: Address) -> tuple[int, int, str, str]:
    ip, uid = address_key(address)
    try:
        parsed = ipaddress.ip_address(ip)
        return parsed.version, int(parsed), ip, uid
    except ValueError:
        return 0, 0, ip, uid


def repack_subsets(entries: Iterable[tuple[Address, bool, Sequence[Port]]]) -> list[dict[str, Any]]:
    """``(address, ready, ports)`` entries → canonical subsets (see the module doc)."""
    addresses: dict[AddressKey, Address] = {}
    by_port: dict[PortValue, dict[AddressKey, bool]] = {}
    for address, is_ready, ports in entries:
        key = address_key(address)
        addresses.setdefault(key, address)
        for value in [port_value(p) for p in ports] or [NO_PORTS]:
            offered = by_port.setdefault(value, {})
            offered[key] = offered.get(key, False) or is_ready
    groups: dict[frozenset[tuple[AddressKey, bool]], list[PortValue]] = {}
    for value, offered in by_port.items():
        group = groups.setdefault(frozenset(offered.items()), [])
        if value != NO_PORTS:
            group.append(value)
    subsets = []
    for members, values in groups.items():
        ready = sorted((addresses[k] for k, r in members if r), key=address_order)
        not_ready = sorted((addresses[k] for k, r in members if not r), key=address_order)
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = [dict(a) for a in ready]
        if not_ready:
            subset["notReadyAddresses"] = [dict(a) for a in not_ready]
        if values:
            subset["ports"] = [port_body(v) for v in sorted(values)]
        subsets.append(subset)
    return sorted(subsets, key=_subset_order)


def _subset_order(subset: Mapping[str, Any]) -> tuple[Any, ...]:
    return (sorted(port_value(p) for p in subset.get("ports") or []),
            [address_order(a) for a in subset.get("addresses") or []],
            [address_order(a) for a in subset.get("notReadyAddresses") or []])


def count_addresses(subsets: Iterable[Mapping[str, Any]]) -> int:
    """Ready plus not-ready addresses over all subsets (an address in two subsets
    counts twice, as Kubernetes counts toward its capacity)."""
    return sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
               for s in subsets)
