"""Service rules (Kubernetes ``ValidateService``, ``validateServicePort``, ``…Update``).

Validation runs before the allocator, so a new Service may have no ``clusterIP``,
``clusterIPs`` or ``nodePort`` yet, and on update an omitted address or port means
"keep the allocated one" (the allocator copies it from the stored object). Only
values the client actually wrote are judged here; ranges and collisions with other
Services are the allocator's business.

On update, fields a type change leaves behind unchanged (the ClusterIP of a Service
turned ExternalName, the nodePorts of a NodePort turned ClusterIP, …) are ignored,
as Kubernetes' ``dropTypeDependentFields`` drops them before validating
(``apimachinery.services.without_type_leftovers``, shared with ``apiserver.defaults``).
What each type implies comes from ``apimachinery.services``; the rules here are
only about what a client may write.
"""

from __future__ import annotations

from typing import Any

from apimachinery import names, services
from apimachinery.services import (
    CLUSTER_IP,
    CLUSTER_IP_FIELDS,
    EXTERNAL_NAME,
    LOAD_BALANCER,
    TYPES,
    has_cluster_ip,
    has_load_balancer_ingress,
    has_node_ports,
    is_externally_accessible,
    is_headless,
    needs_health_check,
    without_type_leftovers,
)
from apiserver.errors import duplicate, forbidden, invalid, required
from apiserver.validation.fields import PROTOCOLS, FieldErrors
from apiserver.validation.meta import check_labels

AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
IP_MODES = ("VIP", "Proxy")
MAX_AFFINITY_SECONDS = 86400  # one day, Kubernetes' MaxClientIPServiceAffinitySeconds
KUBELET_PORT = 10250  # clouds over-open firewalls for LB ports; never expose the kubelet's
_ONLY_LB = "may only be used when `type` is 'LoadBalancer'"


# ---------------------------------------------------------------------------- helpers


def _primary(spec: dict) -> tuple[str, Any]:
    """Where the primary ClusterIP lives and its value ("" when none was written)."""
    ip = spec.get("clusterIP")
    if ip:
        return "spec.clusterIP", ip
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips:
        return "spec.clusterIPs[0]", ips[0]
    return "spec.clusterIP", ""


# ---------------------------------------------------------------------------- spec


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    old_spec = _spec_of(old)
    if old is not None:
        spec = without_type_leftovers(spec, old_spec)
    kind = errs.enum(spec.get("type"), "spec.type", TYPES, required=True)
    _check_ports(errs, spec, kind)
    check_labels(errs, spec.get("selector"), "spec.selector")
    if kind == EXTERNAL_NAME:
        _check_external_name(errs, spec)
    else:
        _check_cluster_ips(errs, spec, kind)
    _check_affinity(errs, spec)
    _check_traffic_policies(errs, spec, kind)
    _check_external_fields(errs, spec, kind)
    errs.boolean(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses")
    if old is not None:
        _check_update(errs, spec, old_spec)


def _spec_of(obj: dict | None) -> dict:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


def _check_ports(errs: FieldErrors, spec: dict, kind: str | None) -> None:
    raw = spec.get("ports")
    ports = errs.seq(raw, "spec.ports") or []
    if raw in (None, []) and kind != EXTERNAL_NAME and not is_headless(spec):
        errs.append(required("spec.ports", ""))
    port_names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for p, port in errs.items(ports, "spec.ports"):
        name = errs.text(port.get("name"), f"{p}.name")
        if not name:
            if len(ports) > 1 and port.get("name") in (None, ""):
                errs.append(required(f"{p}.name", ""))
        elif errs.check(name, f"{p}.name", names.is_dns1123_label):
            if name in port_names:
                errs.append(duplicate(f"{p}.name", name))
            port_names.add(name)
        number = errs.port(port.get("port"), f"{p}.port", required=True)
        protocol = errs.enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS, required=True)
        errs.port_or_name(port.get("targetPort"), f"{p}.targetPort")
        app_protocol = errs.text(port.get("appProtocol"), f"{p}.appProtocol")
        if app_protocol is not None:
            errs.check(app_protocol, f"{p}.appProtocol", names.is_qualified_name)
        if kind == LOAD_BALANCER and number == KUBELET_PORT:
            errs.append(invalid(p, number, f"may not expose port {KUBELET_PORT} externally since "
                                "it is used by kubelet"))
        if number is not None and protocol is not None:
            if (protocol, number) in seen_ports:
                errs.append(duplicate(p, f"{number}/{protocol}"))
            seen_ports.add((protocol, number))
        node_port = errs.integer(port.get("nodePort"), f"{p}.nodePort")
        if not node_port:  # 0 or absent: let the allocator choose
            continue
        if kind == CLUSTER_IP:
            errs.append(forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif errs.port(node_port, f"{p}.nodePort") is not None and protocol is not None:
            if (protocol, node_port) in seen_node_ports:
                errs.append(duplicate(f"{p}.nodePort", node_port))
            seen_node_ports.add((protocol, node_port))


def _check_external_name(errs: FieldErrors, spec: dict) -> None:
    for key in CLUSTER_IP_FIELDS:
        if spec.get(key) not in (None, "", []):
            errs.append(forbidden(f"spec.{key}", "may not be set for ExternalName services"))
    raw = spec.get("externalName")
    name = errs.text(raw, "spec.externalName")
    if raw is not None and name is None:
        return
    cname = (name or "").removesuffix(".")  # one trailing dot: a fully qualified name
    if cname:
        errs.check(cname, "spec.externalName", names.is_dns1123_subdomain)
    else:
        errs.append(required("spec.externalName", ""))


def _check_cluster_ips(errs: FieldErrors, spec: dict, kind: str | None) -> None:
    cluster_ip = errs.text(spec.get("clusterIP"), "spec.clusterIP")
    if cluster_ip and cluster_ip != "None":
        errs.check(cluster_ip, "spec.clusterIP", names.is_valid_ip)
    if is_headless(spec) and has_node_ports(spec):
        path, value = _primary(spec)
        errs.append(invalid(path, value, f"may not be set to 'None' for {kind} services"))
    raw = spec.get("clusterIPs")
    ips = list(errs.strings(raw, "spec.clusterIPs"))
    if cluster_ip and ips and ips[0][1] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", raw, "first value must match `clusterIP`"))
    if isinstance(raw, list) and len(raw) > 2:
        errs.append(invalid("spec.clusterIPs", raw, "may only hold up to 2 values"))
    for i, (p, ip) in enumerate(ips):
        if ip == "None":
            if len(ips) > 1:
                errs.append(invalid("spec.clusterIPs", raw,
                                    "'None' must be the first and only value"))
        elif not (i == 0 and ip == cluster_ip):  # else already judged as spec.clusterIP
            errs.check(ip, p, names.is_valid_ip)
    written = ips or ([("spec.clusterIP", cluster_ip)] if cluster_ip else [])
    valid = [(i, p, ip) for i, (p, ip) in enumerate(written) if not names.is_valid_ip(ip)]
    if len(valid) == 2 and names.ip_family(valid[0][2]) == names.ip_family(valid[1][2]):
        errs.append(invalid("spec.clusterIPs", raw,
                            "may specify no more than one IP for each IP family"))
    families = _check_ip_families(errs, spec)
    for i, p, ip in valid:
        family = families[i] if i < len(families) else None
        if family and names.ip_family(ip) != {"IPv4": 4, "IPv6": 6}[family]:
            errs.append(invalid(p, ip, f"expected an {family} value as indicated by "
                                       f"`ipFamilies[{i}]`"))
    errs.enum(spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy", IP_FAMILY_POLICIES)


def _check_ip_families(errs: FieldErrors, spec: dict) -> list[str | None]:
    """The families in order (None where an entry is unusable), duplicates reported."""
    families: list[str | None] = []
    for i, family in enumerate(errs.seq(spec.get("ipFamilies"), "spec.ipFamilies") or ()):
        p = f"spec.ipFamilies[{i}]"
        known = errs.enum(family, p, IP_FAMILIES, required=True)
        if known is not None and known in families:
            errs.append(duplicate(p, known))
        families.append(known)
    return families


def _check_affinity(errs: FieldErrors, spec: dict) -> None:
    affinity = errs.enum(spec.get("sessionAffinity"), "spec.sessionAffinity", AFFINITIES,
                         required=True)
    path = "spec.sessionAffinityConfig"
    raw = spec.get("sessionAffinityConfig")
    config = errs.obj(raw, path)
    if affinity == "None":
        if raw is not None:
            errs.append(forbidden(path, "must not be set when session affinity is None"))
        return
    if affinity != "ClientIP" or (raw is not None and config is None):
        return
    why = "when session affinity type is ClientIP"
    if config is None:
        errs.append(required(path, why))
        return
    client = errs.obj(config.get("clientIP"), f"{path}.clientIP")
    if client is None:
        if config.get("clientIP") is None:
            errs.append(required(f"{path}.clientIP", why))
        return
    timeout_path = f"{path}.clientIP.timeoutSeconds"
    timeout = errs.integer(client.get("timeoutSeconds"), timeout_path)
    if timeout is None:
        if client.get("timeoutSeconds") is None:
            errs.append(required(timeout_path, why))
    elif not 0 < timeout <= MAX_AFFINITY_SECONDS:
        errs.append(invalid(timeout_path, timeout,
                            f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"))


def _check_traffic_policies(errs: FieldErrors, spec: dict, kind: str | None) -> None:
    etp = spec.get("externalTrafficPolicy")
    if is_externally_accessible(spec):
        errs.enum(etp, "spec.externalTrafficPolicy", TRAFFIC_POLICIES, required=True)
    elif etp not in (None, ""):
        errs.append(invalid("spec.externalTrafficPolicy", etp,
                            "may only be set for externally-accessible services"))
    health = errs.integer(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort")
    if health and not needs_health_check(spec):
        errs.append(invalid("spec.healthCheckNodePort", health, "may only be set when `type` is "
                            "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif health:
        errs.port(health, "spec.healthCheckNodePort")
    itp = spec.get("internalTrafficPolicy")
    if itp in (None, ""):
        if kind not in (None, EXTERNAL_NAME):  # a valid type with a ClusterIP
            errs.append(required("spec.internalTrafficPolicy", "must be specified"))
    else:
        errs.enum(itp, "spec.internalTrafficPolicy", TRAFFIC_POLICIES)


def _check_external_fields(errs: FieldErrors, spec: dict, kind: str | None) -> None:
    for p, ip in errs.strings(spec.get("externalIPs"), "spec.externalIPs"):
        if errs.check(ip, p, names.is_valid_ip):
            errs.check(ip, p, names.is_non_special_ip)
    path = "spec.loadBalancerSourceRanges"
    ranges = list(errs.strings(spec.get("loadBalancerSourceRanges"), path))
    errs.only_when(bool(ranges), kind == LOAD_BALANCER, path, _ONLY_LB)
    for p, cidr in ranges:
        errs.check(cidr.strip(), p, names.is_valid_cidr)  # space padding is tolerated, as in k8s
    path = "spec.allocateLoadBalancerNodePorts"
    allocate = errs.boolean(spec.get("allocateLoadBalancerNodePorts"), path)
    errs.only_when(allocate is not None, kind == LOAD_BALANCER, path, _ONLY_LB)
    if kind == LOAD_BALANCER and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required(path, ""))
    path = "spec.loadBalancerClass"
    lb_class = errs.text(spec.get("loadBalancerClass"), path)
    errs.only_when(lb_class is not None, kind == LOAD_BALANCER, path, _ONLY_LB)
    if lb_class is not None and kind == LOAD_BALANCER:
        errs.check(lb_class, path, names.is_qualified_name)
    errs.text(spec.get("loadBalancerIP"), "spec.loadBalancerIP")
    errs.enum(spec.get("trafficDistribution"), "spec.trafficDistribution",
              services.TRAFFIC_DISTRIBUTIONS)


def _check_update(errs: FieldErrors, spec: dict, old_spec: dict) -> None:
    """The primary ClusterIP and a needed health-check port can't change once allocated."""
    both_have_ip = has_cluster_ip(spec) and has_cluster_ip(old_spec)
    if both_have_ip and not (is_headless(spec) and is_headless(old_spec)):
        path, new_ip = _primary(spec)
        _, old_ip = _primary(old_spec)
        if new_ip and old_ip and new_ip != old_ip:
            errs.append(invalid(path, new_ip, "may not change once set"))
    if needs_health_check(spec) and needs_health_check(old_spec):
        new_port = spec.get("healthCheckNodePort")
        if new_port and new_port != old_spec.get("healthCheckNodePort"):
            errs.append(invalid("spec.healthCheckNodePort", new_port, "field is immutable"))


# ---------------------------------------------------------------------------- status


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """``status.loadBalancer`` as a cloud controller writes it, and ``conditions``."""
    spec = _spec_of(obj)
    status = errs.obj(obj.get("status"), "status") or {}
    lb = errs.obj(status.get("loadBalancer"), "status.loadBalancer") or {}
    path = "status.loadBalancer.ingress"
    ingress = errs.seq(lb.get("ingress"), path)
    if ingress and not has_load_balancer_ingress(spec):
        errs.append(forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'"))
    for p, entry in errs.items(ingress, path):
        ip = errs.text(entry.get("ip"), f"{p}.ip")
        if ip:
            errs.check(ip, f"{p}.ip", names.is_valid_ip)
        if entry.get("ipMode") is not None:
            if not ip:
                errs.append(forbidden(f"{p}.ipMode", "may not be specified when `ip` is not"))
            else:
                errs.enum(entry.get("ipMode"), f"{p}.ipMode", IP_MODES)
        hostname = errs.text(entry.get("hostname"), f"{p}.hostname")
        if hostname:
            errs.check(hostname, f"{p}.hostname", names.is_dns1123_subdomain)
            if names.parse_ip(hostname) is not None:
                errs.append(invalid(f"{p}.hostname", hostname,
                                    "must be a DNS name, not an IP address"))
        for q, port in errs.items(entry.get("ports"), f"{p}.ports"):
            errs.port(port.get("port"), f"{q}.port", required=True)
            errs.enum(port.get("protocol"), f"{q}.protocol", PROTOCOLS, required=True)
            errs.text(port.get("error"), f"{q}.error")
    errs.conditions(status.get("conditions"), "status.conditions", names.is_qualified_name)

