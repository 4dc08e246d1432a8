"""v1 Endpoints rules (Kubernetes ``ValidateEndpoints``).

Each subset lists addresses (ready and not ready) and the ports they all serve. An
address is an IP a proxy may send traffic to, so, as Kubernetes, not one that means
"this host" or never leaves a link: unspecified, loopback, link-local (unicast or
multicast). Port names are DNS labels, required and unique when a subset has several.
"""

from __future__ import annotations

from apimachinery import names
from apiserver.errors import duplicate, required
from apiserver.validation.fields import PROTOCOLS, FieldErrors

ADDRESS_LISTS = ("addresses", "notReadyAddresses")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    for p, subset in errs.items(obj.get("subsets"), "subsets"):
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errs.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        for key in ADDRESS_LISTS:
            for q, address in errs.items(subset.get(key), f"{p}.{key}"):
                _check_address(errs, address, q)
        ports = errs.seq(subset.get("ports"), f"{p}.ports")
        several = ports is not None and len(ports) > 1
        seen: set[str] = set()
        for q, port in errs.items(ports, f"{p}.ports"):
            name = errs.text(port.get("name"), f"{q}.name")
            if name:
                if errs.check(name, f"{q}.name", names.is_dns1123_label) and name in seen:
                    errs.append(duplicate(f"{q}.name", name))
                seen.add(name)
            elif several and port.get("name") in (None, ""):
                errs.append(required(f"{q}.name", ""))
            errs.port(port.get("port"), f"{q}.port", required=True)
            errs.enum(port.get("protocol"), f"{q}.protocol", PROTOCOLS, required=True)
            app_protocol = errs.text(port.get("appProtocol"), f"{q}.appProtocol")
            if app_protocol is not None:
                errs.check(app_protocol, f"{q}.appProtocol", names.is_qualified_name)


def _check_address(errs: FieldErrors, address: dict, path: str) -> None:
    ip = errs.required_text(address.get("ip"), f"{path}.ip")
    if ip and errs.check(ip, f"{path}.ip", names.is_valid_ip):
        errs.check(ip, f"{path}.ip", names.is_non_special_ip)
    hostname = errs.text(address.get("hostname"), f"{path}.hostname")
    if hostname:
        errs.check(hostname, f"{path}.hostname", names.is_dns1123_label)
    node_name = errs.text(address.get("nodeName"), f"{path}.nodeName")
    if node_name is not None:
        errs.check(node_name, f"{path}.nodeName", names.is_dns1123_subdomain)
    ref = errs.obj(address.get("targetRef"), f"{path}.targetRef") or {}
    for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        errs.text(ref.get(key), f"{path}.targetRef.{key}")
