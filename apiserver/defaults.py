"""Kubernetes v1 defaulting (``pkg/apis/core/v1/defaults.go``, discovery/v1), in place.

Applied (by each kind's strategy, ``apiserver/registry/<kind>.py``) to every body
before validation, because validation *requires* several of
these fields (type, sessionAffinity, protocol, internalTrafficPolicy, …), exactly as
in Kubernetes where defaulting happens at decode time. Only missing fields are
filled (a Go zero value such as ``0`` or ``""`` counts as missing, as it does in
Kubernetes); a field of the wrong type is left alone for validation to report, so
nothing here raises on odd input.

Two Kubernetes rules go beyond filling gaps and are kept because clients rely on
them: ``sessionAffinity: None`` drops ``sessionAffinityConfig``, and a Namespace
always carries the label ``kubernetes.io/metadata.name=<name>``.

Not defaulted here, on purpose: ``clusterIP``/``clusterIPs``/``ipFamilies``/
``ipFamilyPolicy`` and nodePorts (the allocator's), Namespace ``spec.finalizers``
and Pod/Namespace status on create (the server's create strategy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from apimachinery.services import (
    LOAD_BALANCER,
    has_cluster_ip,
    is_externally_accessible,
    without_type_leftovers,
)
from apiserver.validation.fields import is_int

__all__ = ["default_deployment", "default_endpoint_slice", "default_endpoints",
           "default_namespace", "default_node", "default_pod", "default_replicaset",
           "default_service", "drop_type_dependent_fields"]

DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800  # three hours, Kubernetes' DefaultClientIPServiceAffinitySeconds
DEFAULT_TERMINATION_GRACE_SECONDS = 30
DEFAULT_SCHEDULER = "default-scheduler"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# timeoutSeconds, periodSeconds, successThreshold, failureThreshold (SetDefaults_Probe)
PROBE_DEFAULTS = (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                  ("failureThreshold", 3))
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
# apps/v1 SetDefaults_Deployment: a quarter of the replicas may be missing or extra
# during a rollout; ten old ReplicaSets kept for rollback; ten minutes to progress.
DEFAULT_MAX_SURGE = DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


def drop_type_dependent_fields(obj: dict, old: dict) -> None:
    """On a Service update, drop what a type change left behind unchanged.

    Kubernetes' ``dropTypeDependentFields``: e.g. the nodePorts of a NodePort
    Service turned ClusterIP, or the ClusterIP of one turned ExternalName, when the
    client did not touch them. Call after the defaults, before validation
    (which already tolerates these leftovers; this makes the stored object clean).
    """
    if not isinstance(obj, dict) or not isinstance(old, dict):
        return
    spec, old_spec = obj.get("spec"), old.get("spec")
    if isinstance(spec, dict) and isinstance(old_spec, dict):
        cleaned = without_type_leftovers(spec, old_spec)
        spec.clear()
        spec.update(cleaned)


# ---------------------------------------------------------------------------- helpers


def _missing(value: Any) -> bool:
    """Absent, or Go's zero value of a string or an int (what Kubernetes tests for)."""
    return value is None or value == "" or (is_int(value) and value == 0)


def _fill(d: dict, key: str, value: str | int) -> None:
    """Set ``d[key]`` when absent or the zero value of the default's own type."""
    current = d.get(key)
    if current is None or (type(current) is type(value) and not current):
        d[key] = value


def _child(parent: dict, key: str) -> dict | None:
    """``parent[key]`` as a dict, created when absent; None when it has another type."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> Iterator[dict]:
    """The objects of a list; anything else yields nothing."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# ---------------------------------------------------------------------------- Service


def _service(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _fill(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        _default_affinity_timeout(spec)
    _fill(spec, "type", "ClusterIP")
    for port in _dicts(spec.get("ports")):
        _fill(port, "protocol", "TCP")
        if _missing(port.get("targetPort")) and is_int(port.get("port")):
            port["targetPort"] = port["port"]
    if is_externally_accessible(spec):
        _fill(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and has_cluster_ip(spec):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == LOAD_BALANCER:
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        _default_ingress_ip_mode(obj)


def _default_affinity_timeout(spec: dict) -> None:
    config = _child(spec, "sessionAffinityConfig")
    client = _child(config, "clientIP") if config is not None else None
    if client is not None and client.get("timeoutSeconds") is None:
        client["timeoutSeconds"] = DEFAULT_AFFINITY_TIMEOUT_SECONDS


def _default_ingress_ip_mode(obj: dict) -> None:
    status = obj.get("status")
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    for ingress in _dicts(lb.get("ingress") if isinstance(lb, dict) else None):
        if ingress.get("ip") and ingress.get("ipMode") is None:
            ingress["ipMode"] = "VIP"


# ---------------------------------------------------------------------------- Pod


def _pod(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _fill(spec, "dnsPolicy", "ClusterFirst")
    _fill(spec, "restartPolicy", "Always")
    _fill(spec, "schedulerName", DEFAULT_SCHEDULER)
    for key, value in (("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS),
                       ("securityContext", {}), ("enableServiceLinks", True)):
        if spec.get(key) is None:
            spec[key] = value
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            _container(container, host_network=host_network)
    for volume in _dicts(spec.get("volumes")):
        if set(volume) <= {"name"}:  # no source given: Kubernetes means a scratch directory
            volume["emptyDir"] = {}


def _container(c: dict, *, host_network: bool) -> None:
    _fill(c, "imagePullPolicy", _pull_policy(c.get("image")))
    _fill(c, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _fill(c, "terminationMessagePolicy", "File")
    for port in _dicts(c.get("ports")):
        _fill(port, "protocol", "TCP")
        if host_network and _missing(port.get("hostPort")) and is_int(port.get("containerPort")):
            port["hostPort"] = port["containerPort"]
    for key in PROBES:
        probe = c.get(key)
        if isinstance(probe, dict):
            for field, value in PROBE_DEFAULTS:
                _fill(probe, field, value)
            _http_get(probe.get("httpGet"))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            handler = lifecycle.get(hook)
            if isinstance(handler, dict):
                _http_get(handler.get("httpGet"))
    for env in _dicts(c.get("env")):
        source = env.get("valueFrom")
        field_ref = source.get("fieldRef") if isinstance(source, dict) else None
        if isinstance(field_ref, dict):
            _fill(field_ref, "apiVersion", "v1")
    _requests_from_limits(c.get("resources"))


def _http_get(action: Any) -> None:
    if isinstance(action, dict):
        _fill(action, "path", "/")
        _fill(action, "scheme", "HTTP")


def _requests_from_limits(resources: Any) -> None:
    """A limit without a request means the request equals the limit (SetDefaults_Pod)."""
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = _child(resources, "requests")
    if requests is not None:
        for name, quantity in resources["limits"].items():
            requests.setdefault(name, quantity)


def _pull_policy(image: Any) -> str:
    """Always for ``:latest`` (or no tag and no digest), else IfNotPresent, as Kubernetes."""
    if not isinstance(image, str) or not image:
        return "IfNotPresent"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


# ---------------------------------------------------------------------------- apps/v1


def _replicaset(obj: dict) -> None:
    """SetDefaults_ReplicaSet: one replica; the template gets a Pod's defaults."""
    spec = _child(obj, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:  # a pointer in Go: 0 is a choice, not a gap
        spec["replicas"] = 1
    template = spec.get("template")
    if isinstance(template, dict):
        _pod(template)  # a template is shaped as a Pod: metadata and spec


def _deployment(obj: dict) -> None:
    """SetDefaults_Deployment: a ReplicaSet's, plus RollingUpdate 25%/25%, ten old
    ReplicaSets and a 600 s progress deadline."""
    _replicaset(obj)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    strategy = _child(spec, "strategy")
    if strategy is not None:
        _fill(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                for key, value in (("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
                                   ("maxSurge", DEFAULT_MAX_SURGE)):
                    if rolling.get(key) is None:
                        rolling[key] = value
    for key, limit in (("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT),
                       ("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)):
        if spec.get(key) is None:
            spec[key] = limit


# ---------------------------------------------------------------------------- others


def _endpoints(obj: dict) -> None:
    """SetDefaults_EndpointPort: a port without a protocol is TCP."""
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _fill(port, "protocol", "TCP")


def _endpoint_slice(obj: dict) -> None:
    for port in _dicts(obj.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


def _namespace(obj: dict) -> None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and isinstance(name, str) and name:
        labels = _child(meta, "labels")
        if labels is not None:
            labels[NAMESPACE_NAME_LABEL] = name  # always the name: selectors trust it
    status = _child(obj, "status")
    if status is not None:
        _fill(status, "phase", "Active")


def _node(obj: dict) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and \
            isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


# One defaulter per kind, each called by that kind's strategy (apiserver/registry/).
# They take any JSON: a top level that is not an object is left alone.


def _on_objects(defaulter: Callable[[dict], None]) -> Callable[[Any], None]:
    def apply(obj: Any) -> None:
        if isinstance(obj, dict):
            defaulter(obj)

    apply.__doc__ = defaulter.__doc__
    return apply


default_service = _on_objects(_service)
default_pod = _on_objects(_pod)
default_endpoint_slice = _on_objects(_endpoint_slice)
default_namespace = _on_objects(_namespace)
default_node = _on_objects(_node)
default_replicaset = _on_objects(_replicaset)
default_deployment = _on_objects(_deployment)
default_endpoints = _on_objects(_endpoints)
