"""Robustness: validation and defaulting never raise, whatever JSON arrives.

Two generators: arbitrary JSON whose keys are mostly real field names (so the
validators walk deep), and valid objects with one subtree replaced by junk.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiserver.defaults import drop_type_dependent_fields
from apiserver.errors import FieldError
from tests.unit.kindhooks import apply_defaults, validate, validate_status
from tests.unit.test_validation import VALID, valid_service

KINDS = sorted(VALID)
FIELD_NAMES = [
    "metadata", "name", "namespace", "generateName", "labels", "annotations", "finalizers",
    "ownerReferences", "uid", "controller", "apiVersion", "kind", "deletionTimestamp", "spec",
    "status", "type", "ports", "port", "targetPort", "nodePort", "protocol", "appProtocol",
    "selector", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "externalName",
    "externalIPs", "sessionAffinity", "sessionAffinityConfig", "clientIP", "timeoutSeconds",
    "externalTrafficPolicy", "internalTrafficPolicy", "healthCheckNodePort",
    "loadBalancerSourceRanges", "allocateLoadBalancerNodePorts", "loadBalancer", "ingress", "ip",
    "ipMode", "hostname", "containers", "initContainers", "image", "command", "args", "env",
    "value", "valueFrom", "fieldRef", "fieldPath", "containerPort", "hostPort", "hostIP",
    "readinessProbe", "livenessProbe", "startupProbe", "httpGet", "tcpSocket", "exec", "grpc",
    "path", "scheme", "httpHeaders", "periodSeconds", "successThreshold", "lifecycle", "preStop",
    "sleep", "seconds", "restartPolicy", "dnsPolicy", "dnsConfig", "nameservers", "nodeName",
    "nodeSelector", "tolerations", "key", "operator", "effect", "tolerationSeconds", "volumes",
    "activeDeadlineSeconds", "terminationGracePeriodSeconds", "hostNetwork", "podIP", "podIPs",
    "phase", "conditions", "containerStatuses", "restartCount", "podCIDR", "podCIDRs", "taints",
    "addresses", "address", "capacity", "allocatable", "daemonEndpoints", "kubeletEndpoint",
    "Port", "addressType", "endpoints", "ready", "serving", "terminating", "targetRef", "hints",
    "forZones", "involvedObject", "count", "resources", "limits", "requests",
]
WORDS = ["None", "TCP", "UDP", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
         "ClientIP", "Local", "Cluster", "IPv4", "IPv6", "FQDN", "Always", "Exists", "NoExecute",
         "True", "10.0.0.1", "fd00::1", "10.0.0.0/8", "web", "http", "default", "", "-", "a/b"]

leaves = (st.none() | st.booleans() | st.integers(-(2**40), 2**40)
          | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(WORDS)
          | st.text(max_size=12))
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)
json_objects = st.dictionaries(keys, json_values, max_size=6)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


def _replace(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return obj


def _variants(kind: str) -> list[dict]:
    """Valid objects of one kind, different enough that updates between them change type."""
    if kind != "Service":
        return [VALID[kind]()]
    return [valid_service(), valid_service(type="NodePort", clusterIP="10.96.0.9"),
            valid_service(type="LoadBalancer", externalTrafficPolicy="Local",
                          healthCheckNodePort=30999),
            valid_service(type="ExternalName", externalName="db.example.com", ports=[]),
            valid_service(clusterIP="None")]


@st.composite
def damaged_objects(draw: st.DrawFn) -> tuple[str, dict, dict]:
    kind = draw(st.sampled_from(KINDS))
    good = draw(st.sampled_from(_variants(kind)))
    bad = copy.deepcopy(draw(st.sampled_from(_variants(kind))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(bad)))
        bad = _replace(bad, path, draw(json_values))
    return kind, bad, good


def _run_everything(kind: str, obj: Any, old: Any) -> None:
    for errors in (validate(kind, obj), validate(kind, obj, old), validate_status(kind, obj, old),
                   validate(kind, old, obj), validate_status(kind, old, obj)):
        assert isinstance(errors, list)
        for error in errors:
            assert isinstance(error, FieldError)
            assert isinstance(error.field, str) and isinstance(error.type, str)
            error.describe()
    defaulted = copy.deepcopy(obj)
    apply_defaults(kind, defaulted)
    drop_type_dependent_fields(defaulted, old)
    validate(kind, defaulted, old)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), obj=json_values, old=json_values)
def test_arbitrary_json_never_raises(kind: str, obj: Any, old: Any) -> None:
    _run_everything(kind, obj, old)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), meta=json_objects, spec=json_objects)
def test_object_shaped_json_never_raises(kind: str, meta: dict, spec: dict) -> None:
    obj = {"metadata": meta, "spec": spec, "status": spec, **spec}
    _run_everything(kind, obj, VALID[kind]())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_objects())
def test_damaged_valid_objects_never_raise(case: tuple[str, dict, dict]) -> None:
    kind, bad, good = case
    _run_everything(kind, bad, good)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), obj=json_values)
def test_defaults_are_idempotent_on_anything(kind: str, obj: Any) -> None:
    apply_defaults(kind, obj)
    once = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    # repr, not ==: the values include NaN on purpose, and a bare nan != nan
    assert repr(obj) == repr(once)
