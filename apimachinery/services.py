"""What a Service's type implies, in one place: the API server, the proxy, dnsd,
the tables and mpctl all ask here (Kubernetes spreads these over
``pkg/apis/core/v1/helper``, the Service registry and kube-proxy's
``ShouldSkipService``; the answers are the same).

Every function takes a Service ``spec`` as the API carries it and never raises:
a field of the wrong type simply matches no type's rule (validation is what
reports it). An unset type (absent, null or ``""``) is ``ClusterIP``, as the API
defaults it.

=============  ==========  ==========  ============  ===========  =======  =========
type           ClusterIP   node ports  health port   LB ingress   proxied  DNS
=============  ==========  ==========  ============  ===========  =======  =========
ClusterIP      yes [1]_    no          no            no           yes      A/AAAA
headless       ``None``    no          no            no           no       endpoints
NodePort       yes         yes         no            no           yes      A/AAAA
LoadBalancer   yes         yes [2]_    ETP Local     yes          yes      A/AAAA
ExternalName   no          no          no            no           no       CNAME
=============  ==========  ==========  ============  ===========  =======  =========

.. [1] ``clusterIP: None`` makes any non-ExternalName Service headless (validation
   allows it only for ClusterIP).
.. [2] allocated unless ``allocateLoadBalancerNodePorts`` is false.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
EXTERNAL_NAME = "ExternalName"
TYPES = (CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME)
DEFAULT_TYPE = CLUSTER_IP
HEADLESS = "None"  # the clusterIP (and only clusterIPs entry) of a headless Service
# What only a Service with a ClusterIP carries (all of it the allocator's to fill).
CLUSTER_IP_FIELDS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")

Spec = Mapping[str, Any]


class DNSKind(enum.Enum):
    """Which records a Service's name answers with (CoreDNS's kubernetes plugin)."""

    CLUSTER_IP = "cluster_ip"  # ClusterIP, NodePort, LoadBalancer: A/AAAA → the ClusterIPs
    HEADLESS = "headless"  # clusterIP None: A/AAAA → the ready endpoints, one name each
    EXTERNAL_NAME = "external_name"  # CNAME → spec.externalName


def service_type(spec: Spec) -> object:
    """``spec.type`` with the API's default: ``ClusterIP`` when unset, else as written."""
    kind = spec.get("type")
    return DEFAULT_TYPE if kind is None or kind == "" else kind


def is_external_name(spec: Spec) -> bool:
    return service_type(spec) == EXTERNAL_NAME


def has_cluster_ip(spec: Spec) -> bool:
    """The type carries a ClusterIP (``None`` when headless): every type but ExternalName.

    Kubernetes' ``needsClusterIP``; for an unknown type too, as in Go, so the fields
    are kept until validation has judged the type."""
    return not is_external_name(spec)


def is_headless(spec: Spec) -> bool:
    """``clusterIP: None``, or only ``clusterIPs: [None]`` written (the primary address
    is ``clusterIP`` when set, else the first of ``clusterIPs``)."""
    ip = spec.get("clusterIP")
    return ip == HEADLESS or (not ip and spec.get("clusterIPs") == [HEADLESS])


def cluster_ips(spec: Spec) -> list[str]:
    """The addresses written: ``clusterIPs``, else ``clusterIP``; no ``None``, no non-strings.

    Whether each is a valid address is the caller's (or validation's) question."""
    ips = spec.get("clusterIPs")
    if not isinstance(ips, list) or not ips:
        ips = [spec.get("clusterIP")]
    return [ip for ip in ips if isinstance(ip, str) and ip and ip != HEADLESS]


def has_node_ports(spec: Spec) -> bool:
    """The type reaches Pods through node ports: NodePort and LoadBalancer (a nodePort
    written on them means something, on other types it is a leftover)."""
    return service_type(spec) in (NODE_PORT, LOAD_BALANCER)


def allocates_node_ports(spec: Spec) -> bool:
    """Node ports are allocated: NodePort; LoadBalancer unless
    ``allocateLoadBalancerNodePorts`` is false (Kubernetes' ``shouldAllocateNodePorts``)."""
    kind = service_type(spec)
    return kind == NODE_PORT or (
        kind == LOAD_BALANCER and spec.get("allocateLoadBalancerNodePorts") is not False)


def needs_health_check(spec: Spec) -> bool:
    """A health-check node port is allocated: LoadBalancer with externalTrafficPolicy
    Local, so the cloud's balancer can tell which nodes have local endpoints."""
    return service_type(spec) == LOAD_BALANCER and spec.get("externalTrafficPolicy") == "Local"


def has_load_balancer_ingress(spec: Spec) -> bool:
    """``status.loadBalancer.ingress`` may be set (and is waited for): LoadBalancer."""
    return service_type(spec) == LOAD_BALANCER


def is_externally_accessible(spec: Spec) -> bool:
    """Reachable from outside the cluster, so it carries ``externalTrafficPolicy``:
    NodePort, LoadBalancer, and ClusterIP with ``externalIPs`` (``ExternallyAccessible``)."""
    kind = service_type(spec)
    external_ips = spec.get("externalIPs")
    return kind in (NODE_PORT, LOAD_BALANCER) or (
        kind == CLUSTER_IP and isinstance(external_ips, list) and len(external_ips) > 0)


def is_proxied(spec: Spec) -> bool:
    """kube-proxy programs it (the negation of ``ShouldSkipService``): a ClusterIP is set
    (not empty, not ``None``) and the type is not ExternalName."""
    ip = spec.get("clusterIP")
    return bool(ip) and ip != HEADLESS and not is_external_name(spec)


def dns_kind(spec: Spec) -> DNSKind:
    """Which records the Service's name gets: CNAME, endpoint records, or its ClusterIPs."""
    if is_external_name(spec):
        return DNSKind.EXTERNAL_NAME
    if is_headless(spec):
        return DNSKind.HEADLESS
    return DNSKind.CLUSTER_IP


def without_type_leftovers(spec: Spec, old_spec: Spec) -> dict[str, Any]:
    """``spec`` minus the fields an update kept unchanged that its new type no longer uses.

    Kubernetes' ``dropTypeDependentFields``: the ClusterIP fields of a Service turned
    ExternalName, the nodePorts of one that no longer allocates them, the health-check
    port, ``allocateLoadBalancerNodePorts`` of a former LoadBalancer, the
    ``externalTrafficPolicy`` of one no longer externally accessible. A field the
    client changed is kept, for validation to judge. ``spec`` is not modified.
    """
    out = dict(spec)
    if has_cluster_ip(old_spec) and not has_cluster_ip(spec):
        for key in CLUSTER_IP_FIELDS:
            if key in out and out[key] == old_spec.get(key):
                del out[key]
    ports = spec.get("ports")
    if allocates_node_ports(old_spec) and not allocates_node_ports(spec) and \
            isinstance(ports, list) and _node_ports(spec) == _node_ports(old_spec):
        out["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} if isinstance(p, dict)
                        else p for p in ports]
    if needs_health_check(old_spec) and not needs_health_check(spec) and \
            spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
        out.pop("healthCheckNodePort", None)
    if service_type(old_spec) == LOAD_BALANCER and service_type(spec) != LOAD_BALANCER and \
            spec.get("allocateLoadBalancerNodePorts") == old_spec.get("allocateLoadBalancerNodePorts"):
        out.pop("allocateLoadBalancerNodePorts", None)
    if is_externally_accessible(old_spec) and not is_externally_accessible(spec) and \
            spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
        out.pop("externalTrafficPolicy", None)
    return out


def _node_ports(spec: Spec) -> list[Any] | None:
    """Each port's nodePort as written (None where absent), to compare two specs."""
    ports = spec.get("ports")
    if not isinstance(ports, list):
        return None
    return [p.get("nodePort") if isinstance(p, dict) else None for p in ports]


# spec.trafficDistribution values: PreferClose (1.31), and its clearer name
# PreferSameZone plus PreferSameNode (1.33, PreferSameTrafficDistribution, on by
# default from 1.34). Anything else is refused, as a 1.34 API server does.
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameNode", "PreferSameZone")
