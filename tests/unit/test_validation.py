"""Validation: metadata rules for every kind, and Services (reference §2.7, §6.2).

Tables mutate a valid, defaulted object and assert the exact (field, type) list
that ``validate`` returns. Builders and helpers here are shared by the other
``test_validation_*`` modules.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from apiserver import validation
from apiserver.errors import FieldError
from tests.unit.kindhooks import apply_defaults, validate, validate_status

INVALID, REQUIRED, UNSUPPORTED = "FieldValueInvalid", "FieldValueRequired", "FieldValueNotSupported"
DUPLICATE, FORBIDDEN = "FieldValueDuplicate", "FieldValueForbidden"
TOO_LONG, TOO_MANY = "FieldValueTooLong", "FieldValueTooMany"
DELETE = object()  # a table value meaning "remove this field"
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# ---------------------------------------------------------------------------- helpers


def put(obj: dict, path: str, value: Any) -> dict:
    """Set (or with DELETE remove) ``spec.ports[0].port``-style path in ``obj``; returns obj."""
    tokens = [int(i) if i else key for key, i in _TOKEN.findall(path)]
    target: Any = obj
    for token in tokens[:-1]:
        if isinstance(token, str) and token not in target:
            target[token] = {}
        target = target[token]
    last = tokens[-1]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list) and last == len(target):
        target.append(copy.deepcopy(value))  # one past the end: add an element
    else:
        target[last] = copy.deepcopy(value)
    return obj


def changed(obj: dict, changes: dict[str, Any]) -> dict:
    out = copy.deepcopy(obj)
    for path, value in changes.items():
        put(out, path, value)
    return out


def found(errors: list[FieldError]) -> list[tuple[str, str]]:
    assert all(isinstance(e, FieldError) for e in errors)
    return [(e.field, e.type) for e in errors]


def meta(name: str, namespace: str | None = "default", **extra: Any) -> dict:
    m = {"name": name, "uid": "7d4c3a10-0000-4000-8000-000000000001",
         "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1, **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


def defaulted(kind: str, obj: dict) -> dict:
    apply_defaults(kind, obj)
    return obj


def valid_service(**spec: Any) -> dict:
    body = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                  "targetPort": "http"}]}
    body.update(spec)
    return defaulted("Service", {"apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
                                 "spec": body})


def valid_pod(**spec: Any) -> dict:
    container = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"],
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "env": [{"name": "MODE", "value": "demo"}],
                 "readinessProbe": {"httpGet": {"port": "http"}}}
    body = {"containers": [container], **spec}
    return defaulted("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-1"),
                             "spec": body})


def valid_node() -> dict:
    return defaulted("Node", {
        "apiVersion": "v1", "kind": "Node", "metadata": meta("node-1", None),
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.250.0.2"},
                                 {"type": "Hostname", "address": "node-1"}],
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "capacity": {"cpu": "2", "pods": "110"}}})


def valid_namespace() -> dict:
    return defaulted("Namespace", {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": meta("team-a", None),
                                   "spec": {"finalizers": ["kubernetes"]}})


def valid_slice() -> dict:
    return defaulted("EndpointSlice", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": meta("web-abcde", labels={"kubernetes.io/service-name": "web"}),
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": "node-1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1",
                                     "uid": "u-1"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})


def valid_event() -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": meta("web-1.17a3c"),
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
            "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 1,
            "source": {"component": "scheduler"}}


VALID = {"Service": valid_service, "Pod": valid_pod, "Node": valid_node,
         "Namespace": valid_namespace, "EndpointSlice": valid_slice, "Event": valid_event}


# ---------------------------------------------------------------------------- the API


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_have_no_errors(kind: str) -> None:
    obj = VALID[kind]()
    assert validate(kind, obj) == []
    assert validate(kind, obj, copy.deepcopy(obj)) == []
    assert validate_status(kind, obj, copy.deepcopy(obj)) == []


def test_a_kind_without_rules_of_its_own_gets_the_metadata_rules() -> None:
    """What a new kind's strategy gets from ``Rules()``: ObjectMeta checked, nothing else."""
    rules = validation.Rules()
    assert found(validation.validate(rules, {"spec": 1}, namespaced=True)) == \
        [("metadata.name", REQUIRED), ("metadata.namespace", REQUIRED)]
    obj = {"metadata": meta("x_y"), "spec": 1}
    assert found(validation.validate(rules, obj, namespaced=True)) == [("metadata.name", INVALID)]
    renamed = changed(obj, {"metadata.name": "x-z"})
    assert found(validation.validate(rules, renamed, changed(obj, {"metadata.name": "x-y"}),
                                     namespaced=True)) == [("metadata.name", INVALID)]
    assert validation.validate_status(rules, renamed, renamed) == []


@pytest.mark.parametrize("obj", [None, [], "svc", 3])
def test_non_object_body_is_one_error(obj: Any) -> None:
    assert found(validate("Service", obj)) == [("", INVALID)]


def test_messages_match_kubernetes() -> None:
    svc = changed(valid_service(), {"spec.ports[0].port": 0, "metadata.name": "1web"})
    by_field = {e.field: e for e in validate("Service", svc)}
    assert by_field["spec.ports[0].port"].describe() == \
        "Invalid value: 0: must be between 1 and 65535, inclusive"
    assert by_field["metadata.name"].message == (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',"
        "  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def test_wrong_types_are_reported_not_raised() -> None:
    svc = changed(valid_service(), {"spec.ports": "80", "spec.selector": ["app"],
                                    "metadata.labels": {"a": 1}})
    errors = validate("Service", svc)
    assert ("spec.ports", INVALID) in found(errors)
    assert next(e for e in errors if e.field == "spec.ports").message == "must be a list"
    assert ("spec.selector", INVALID) in found(errors)
    assert ("metadata.labels", INVALID) in found(errors)


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("Service", "web", True),
        ("Service", "1web", False),  # DNS-1035: must start with a letter
        ("Service", "web.v2", False),
        ("Service", "a" * 63, True),
        ("Service", "a" * 64, False),
        ("Namespace", "1team", True),  # DNS-1123 label may start with a digit
        ("Namespace", "team.a", False),
        ("Namespace", "Team", False),
        ("Pod", "web.v2-1", True),  # DNS-1123 subdomain
        ("Pod", "Web", False),
        ("Pod", "a" * 253, True),
        ("Pod", "a" * 254, False),
        ("Node", "node-1.example.com", True),
        ("Node", "node_1", False),
        ("EndpointSlice", "web-abc.x", True),
        ("Event", "web-1.17a3c4d5e6f", True),
        ("Event", "web-1..17a", False),
    ],
)
def test_name_format_per_kind(kind: str, name: str, ok: bool) -> None:
    obj = changed(VALID[kind](), {"metadata.name": name})
    assert found(validate(kind, obj)) == ([] if ok else [("metadata.name", INVALID)])


def test_dns1123_label_with_dots_says_so() -> None:
    obj = changed(valid_namespace(), {"metadata.name": "team.a"})
    apply_defaults("Namespace", obj)
    [error] = [e for e in validate("Namespace", obj) if e.field == "metadata.name"]
    assert error.message == "must not contain dots"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metadata.name": DELETE}, [("metadata.name", REQUIRED)]),
        ({"metadata.name": ""}, [("metadata.name", REQUIRED)]),
        ({"metadata.name": 7}, [("metadata.name", INVALID)]),
        ({"metadata.generateName": "web-"}, []),
        ({"metadata.generateName": "Web-"}, [("metadata.generateName", INVALID)]),
        ({"metadata.generateName": ["web-"]}, [("metadata.generateName", INVALID)]),
        ({"metadata.namespace": DELETE}, [("metadata.namespace", REQUIRED)]),
        ({"metadata.namespace": "Bad_NS"}, [("metadata.namespace", INVALID)]),
        ({"metadata.namespace": "a.b"}, [("metadata.namespace", INVALID)]),
        ({"metadata.generation": -1}, [("metadata.generation", INVALID)]),
        ({"metadata.uid": 5}, [("metadata.uid", INVALID)]),
        ({"metadata": "web"}, [("metadata", INVALID), ("metadata.name", REQUIRED),
                               ("metadata.namespace", REQUIRED)]),
        ({"metadata.labels": {"app": "web", "example.com/tier": "front_1.a"}}, []),
        ({"metadata.labels": {"bad key": "x"}}, [("metadata.labels", INVALID)]),
        ({"metadata.labels": {"a/b/c": "x"}}, [("metadata.labels", INVALID)]),
        ({"metadata.labels": {"app": "-web"}}, [("metadata.labels", INVALID)]),
        ({"metadata.labels": {"app": "w" * 64}}, [("metadata.labels", INVALID)]),
        ({"metadata.labels": {"app": None}}, [("metadata.labels", INVALID)]),
        ({"metadata.labels": "app=web"}, [("metadata.labels", INVALID)]),
        ({"metadata.annotations": {"Example.com/Note": "any text at all: ✓"}}, []),
        ({"metadata.annotations": {"bad key": "x"}}, [("metadata.annotations", INVALID)]),
        ({"metadata.annotations": {"big": "x" * 262141}}, []),
        ({"metadata.annotations": {"big": "x" * 262142}}, [("metadata.annotations", TOO_LONG)]),
        ({"metadata.finalizers": ["example.com/cleanup", "kubernetes"]}, []),
        ({"metadata.finalizers": ["bad name!"]}, [("metadata.finalizers[0]", INVALID)]),
        ({"metadata.finalizers": ["a/b", "a/b"]}, [("metadata.finalizers[1]", DUPLICATE)]),
        ({"metadata.finalizers": ["orphan", "foregroundDeletion"]},
         [("metadata.finalizers", INVALID)]),
        ({"metadata.finalizers": "a/b"}, [("metadata.finalizers", INVALID)]),
        ({"metadata.finalizers": [1]}, [("metadata.finalizers[0]", INVALID)]),
    ],
)
def test_object_meta(changes: dict, expected: list) -> None:
    assert found(validate("Service", changed(valid_service(), changes))) == expected


def test_annotation_size_message() -> None:
    svc = changed(valid_service(), {"metadata.annotations": {"k": "x" * 262144}})
    [error] = validate("Service", svc)
    assert error.message == "must have at most 262144 bytes"


def test_cluster_scoped_kinds_forbid_a_namespace() -> None:
    for kind in ("Node", "Namespace"):
        obj = changed(VALID[kind](), {"metadata.namespace": "default"})
        assert ("metadata.namespace", FORBIDDEN) in found(validate(kind, obj))
        assert validate(kind, changed(VALID[kind](), {"metadata.namespace": ""})) == []


OWNER = {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-1", "controller": True}


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ([OWNER], []),
        ([{**OWNER, "apiVersion": "discovery.k8s.io/v1"}], []),
        ([{**OWNER, "uid": ""}], [("metadata.ownerReferences[0].uid", INVALID)]),
        ([{k: v for k, v in OWNER.items() if k != "name"}],
         [("metadata.ownerReferences[0].name", INVALID)]),
        ([{**OWNER, "kind": ""}], [("metadata.ownerReferences[0].kind", INVALID)]),
        ([{**OWNER, "apiVersion": "apps/"}], [("metadata.ownerReferences[0].apiVersion", INVALID)]),
        ([{**OWNER, "apiVersion": "a/b/c"}], [("metadata.ownerReferences[0].apiVersion", INVALID)]),
        ([OWNER, {**OWNER, "name": "db", "uid": "u-2"}], [("metadata.ownerReferences", INVALID)]),
        ([OWNER, {**OWNER, "name": "db", "uid": "u-2", "controller": False}], []),
        ([{**OWNER, "controller": "yes"}], [("metadata.ownerReferences[0].controller", INVALID)]),
        (["web"], [("metadata.ownerReferences[0]", INVALID)]),
    ],
)
def test_owner_references(refs: list, expected: list) -> None:
    obj = changed(valid_slice(), {"metadata.ownerReferences": refs})
    assert found(validate("EndpointSlice", obj)) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metadata.labels": {"new": "label"}}, []),
        ({"metadata.name": "other"}, [("metadata.name", INVALID)]),
        ({"metadata.namespace": "other"}, [("metadata.namespace", INVALID)]),
        ({"metadata.uid": "someone-else"}, [("metadata.uid", INVALID)]),
        ({"metadata.creationTimestamp": "2030-01-01T00:00:00Z"},
         [("metadata.creationTimestamp", INVALID)]),
    ],
)
def test_identity_is_immutable(changes: dict, expected: list) -> None:
    old = valid_service()
    errors = validate("Service", changed(old, changes), old)
    assert found(errors) == expected
    assert all(e.message == "field is immutable" for e in errors)


def test_deleting_object_may_only_lose_finalizers() -> None:
    old = changed(valid_service(), {"metadata.deletionTimestamp": "2026-01-02T00:00:00Z",
                                    "metadata.finalizers": ["example.com/a", "example.com/b"]})
    fewer = changed(old, {"metadata.finalizers": ["example.com/b"]})
    more = changed(old, {"metadata.finalizers": ["example.com/a", "example.com/c"]})
    assert validate("Service", fewer, old) == []
    [error] = validate("Service", more, old)
    assert (error.field, error.type) == ("metadata.finalizers", FORBIDDEN)
    assert 'found new finalizers []string{"example.com/c"}' in error.message


# ---------------------------------------------------------------------------- Service spec


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec.ports": DELETE}, [("spec.ports", REQUIRED)]),
        ({"spec.ports": []}, [("spec.ports", REQUIRED)]),
        ({"spec.ports": [], "spec.clusterIP": "None"}, []),
        ({"spec.ports": {"port": 80}}, [("spec.ports", INVALID)]),
        ({"spec.ports[0]": 80}, [("spec.ports[0]", INVALID)]),
        ({"spec.ports[0].port": 0}, [("spec.ports[0].port", INVALID)]),
        ({"spec.ports[0].port": 65536}, [("spec.ports[0].port", INVALID)]),
        ({"spec.ports[0].port": 65535}, []),
        ({"spec.ports[0].port": "80"}, [("spec.ports[0].port", INVALID)]),
        ({"spec.ports[0].port": 80.0}, [("spec.ports[0].port", INVALID)]),
        ({"spec.ports[0].port": True}, [("spec.ports[0].port", INVALID)]),
        ({"spec.ports[0].port": DELETE}, [("spec.ports[0].port", REQUIRED)]),
        ({"spec.ports[0].protocol": "HTTP"}, [("spec.ports[0].protocol", UNSUPPORTED)]),
        ({"spec.ports[0].protocol": "UDP"}, []),
        ({"spec.ports[0].protocol": "SCTP"}, []),
        ({"spec.ports[0].protocol": DELETE}, [("spec.ports[0].protocol", REQUIRED)]),
        ({"spec.ports[0].targetPort": 8080}, []),
        ({"spec.ports[0].targetPort": 0}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].targetPort": 70000}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].targetPort": "8080"}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].targetPort": "web-http"}, []),
        ({"spec.ports[0].targetPort": "a-very-long-name"}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].targetPort": "web--http"}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].targetPort": 1.5}, [("spec.ports[0].targetPort", INVALID)]),
        ({"spec.ports[0].name": "Http"}, [("spec.ports[0].name", INVALID)]),
        ({"spec.ports[0].name": DELETE}, []),  # a single port may be unnamed
        ({"spec.ports[0].appProtocol": "kubernetes.io/h2c"}, []),
        ({"spec.ports[0].appProtocol": "h2c"}, []),
        ({"spec.ports[0].appProtocol": "bad protocol"}, [("spec.ports[0].appProtocol", INVALID)]),
        ({"spec.ports[0].nodePort": 30080}, [("spec.ports[0].nodePort", FORBIDDEN)]),
        ({"spec.ports[0].nodePort": 0}, []),
        ({"spec.ports[1]": {"port": 443, "protocol": "TCP", "targetPort": 443}},
         [("spec.ports[1].name", REQUIRED)]),
        ({"spec.ports[1]": {"name": "http", "port": 443, "protocol": "TCP", "targetPort": 443}},
         [("spec.ports[1].name", DUPLICATE)]),
        ({"spec.ports[1]": {"name": "dns", "port": 80, "protocol": "TCP", "targetPort": 53}},
         [("spec.ports[1]", DUPLICATE)]),
        ({"spec.ports[1]": {"name": "dns", "port": 80, "protocol": "UDP", "targetPort": 53}}, []),
        ({"spec.type": "Foo"}, [("spec.type", UNSUPPORTED)]),
        ({"spec.type": DELETE}, [("spec.type", REQUIRED)]),
        ({"spec.selector": {}}, []),
        ({"spec.selector": DELETE}, []),
        ({"spec.selector": {"app": "web", "bad key": "x"}}, [("spec.selector", INVALID)]),
        ({"spec.selector": {"app": "no spaces"}}, [("spec.selector", INVALID)]),
        ({"spec.clusterIP": "10.96.0.20"}, []),
        ({"spec.clusterIP": "2001:db8::20"}, []),
        ({"spec.clusterIP": ""}, []),
        ({"spec.clusterIP": "None"}, []),
        ({"spec.clusterIP": "10.96.0.300"}, [("spec.clusterIP", INVALID)]),
        ({"spec.clusterIP": "010.96.0.2"}, [("spec.clusterIP", INVALID)]),
        ({"spec.clusterIP": 5}, [("spec.clusterIP", INVALID)]),
        ({"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20"]}, []),
        ({"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.21"]},
         [("spec.clusterIPs", INVALID)]),
        ({"spec.clusterIPs": ["10.96.0.20", "bad"]}, [("spec.clusterIPs[1]", INVALID)]),
        ({"spec.clusterIPs": ["10.96.0.20", "10.96.0.21"]}, [("spec.clusterIPs", INVALID)]),
        ({"spec.clusterIPs": ["10.96.0.20", "2001:db8::20"]}, []),
        ({"spec.clusterIPs": ["10.96.0.20", "2001:db8::20", "10.96.0.21"]},
         [("spec.clusterIPs", INVALID)]),
        ({"spec.clusterIPs": ["None", "10.96.0.20"]}, [("spec.clusterIPs", INVALID)]),
        ({"spec.clusterIP": "10.96.0.20", "spec.ipFamilies": ["IPv6"]},
         [("spec.clusterIP", INVALID)]),
        ({"spec.ipFamilies": ["IPv4", "IPv6"], "spec.ipFamilyPolicy": "PreferDualStack"}, []),
        ({"spec.ipFamilies": ["IPv5"]}, [("spec.ipFamilies[0]", UNSUPPORTED)]),
        ({"spec.ipFamilies": ["IPv4", "IPv4"]}, [("spec.ipFamilies[1]", DUPLICATE)]),
        ({"spec.ipFamilyPolicy": "DualStack"}, [("spec.ipFamilyPolicy", UNSUPPORTED)]),
        ({"spec.sessionAffinity": "Sticky"}, [("spec.sessionAffinity", UNSUPPORTED)]),
        ({"spec.sessionAffinity": DELETE}, [("spec.sessionAffinity", REQUIRED)]),
        ({"spec.sessionAffinity": "ClientIP",
          "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}, []),
        ({"spec.sessionAffinity": "ClientIP",
          "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INVALID)]),
        ({"spec.sessionAffinity": "ClientIP",
          "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INVALID)]),
        ({"spec.sessionAffinity": "ClientIP"}, [("spec.sessionAffinityConfig", REQUIRED)]),
        ({"spec.sessionAffinity": "ClientIP", "spec.sessionAffinityConfig": {}},
         [("spec.sessionAffinityConfig.clientIP", REQUIRED)]),
        ({"spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
         [("spec.sessionAffinityConfig", FORBIDDEN)]),
        ({"spec.externalTrafficPolicy": "Cluster"}, [("spec.externalTrafficPolicy", INVALID)]),
        ({"spec.externalIPs": ["192.0.2.10"], "spec.externalTrafficPolicy": "Local"}, []),
        ({"spec.externalIPs": ["192.0.2.10"]}, [("spec.externalTrafficPolicy", REQUIRED)]),
        ({"spec.externalIPs": ["127.0.0.1"], "spec.externalTrafficPolicy": "Cluster"},
         [("spec.externalIPs[0]", INVALID)]),
        ({"spec.externalIPs": ["nope"], "spec.externalTrafficPolicy": "Cluster"},
         [("spec.externalIPs[0]", INVALID)]),
        ({"spec.internalTrafficPolicy": DELETE}, [("spec.internalTrafficPolicy", REQUIRED)]),
        ({"spec.internalTrafficPolicy": "Local"}, []),
        ({"spec.internalTrafficPolicy": "Node"}, [("spec.internalTrafficPolicy", UNSUPPORTED)]),
        ({"spec.publishNotReadyAddresses": True}, []),
        ({"spec.publishNotReadyAddresses": "yes"}, [("spec.publishNotReadyAddresses", INVALID)]),
        ({"spec.loadBalancerSourceRanges": ["10.0.0.0/8"]},
         [("spec.loadBalancerSourceRanges", FORBIDDEN)]),
        ({"spec.allocateLoadBalancerNodePorts": True},
         [("spec.allocateLoadBalancerNodePorts", FORBIDDEN)]),
        ({"spec.healthCheckNodePort": 30999}, [("spec.healthCheckNodePort", INVALID)]),
        ({"spec": "web"}, [("spec", INVALID), ("spec.type", REQUIRED), ("spec.ports", REQUIRED),
                           ("spec.sessionAffinity", REQUIRED)]),
    ],
)
def test_service_spec(changes: dict, expected: list) -> None:
    assert found(validate("Service", changed(valid_service(), changes))) == expected


def node_port_service(**spec: Any) -> dict:
    return valid_service(type="NodePort", **spec)


def load_balancer_service(**spec: Any) -> dict:
    return valid_service(type="LoadBalancer", **spec)


@pytest.mark.parametrize(
    ("build", "changes", "expected"),
    [
        (node_port_service, {}, []),
        (node_port_service, {"spec.ports[0].nodePort": 30080}, []),
        (node_port_service, {"spec.ports[0].nodePort": 70000}, [("spec.ports[0].nodePort", INVALID)]),
        (node_port_service, {"spec.ports[0].nodePort": -1}, [("spec.ports[0].nodePort", INVALID)]),
        (node_port_service, {"spec.ports[1]": {"name": "b", "port": 81, "protocol": "TCP",
                                               "targetPort": 81, "nodePort": 30080},
                             "spec.ports[0].nodePort": 30080},
         [("spec.ports[1].nodePort", DUPLICATE)]),
        (node_port_service, {"spec.ports[1]": {"name": "b", "port": 81, "protocol": "UDP",
                                               "targetPort": 81, "nodePort": 30080},
                             "spec.ports[0].nodePort": 30080}, []),
        (node_port_service, {"spec.clusterIP": "None"}, [("spec.clusterIP", INVALID)]),
        (node_port_service, {"spec.externalTrafficPolicy": "Local"}, []),
        (node_port_service, {"spec.externalTrafficPolicy": "Global"},
         [("spec.externalTrafficPolicy", UNSUPPORTED)]),
        (node_port_service, {"spec.externalTrafficPolicy": DELETE},
         [("spec.externalTrafficPolicy", REQUIRED)]),
        (node_port_service, {"spec.healthCheckNodePort": 30999},
         [("spec.healthCheckNodePort", INVALID)]),
        (load_balancer_service, {}, []),
        (load_balancer_service, {"spec.clusterIPs": ["None"]}, [("spec.clusterIPs[0]", INVALID)]),
        (load_balancer_service, {"spec.ports[0].port": 10250}, [("spec.ports[0]", INVALID)]),
        (load_balancer_service, {"spec.allocateLoadBalancerNodePorts": DELETE},
         [("spec.allocateLoadBalancerNodePorts", REQUIRED)]),
        (load_balancer_service, {"spec.allocateLoadBalancerNodePorts": "no"},
         [("spec.allocateLoadBalancerNodePorts", INVALID)]),
        (load_balancer_service, {"spec.loadBalancerSourceRanges": ["10.0.0.0/8", " 192.0.2.0/24 "]},
         []),
        (load_balancer_service, {"spec.loadBalancerSourceRanges": ["10.0.0.1/8"]},
         [("spec.loadBalancerSourceRanges[0]", INVALID)]),
        (load_balancer_service, {"spec.externalTrafficPolicy": "Local",
                                 "spec.healthCheckNodePort": 30999}, []),
        (load_balancer_service, {"spec.externalTrafficPolicy": "Local",
                                 "spec.healthCheckNodePort": 70000},
         [("spec.healthCheckNodePort", INVALID)]),
        (load_balancer_service, {"spec.loadBalancerClass": "example.com/lb"}, []),
        (load_balancer_service, {"spec.loadBalancerClass": "bad class"},
         [("spec.loadBalancerClass", INVALID)]),
    ],
)
def test_node_port_and_load_balancer(build, changes: dict, expected: list) -> None:
    assert found(validate("Service", changed(build(), changes))) == expected


def external_name_service(**spec: Any) -> dict:
    return valid_service(type="ExternalName", externalName="db.example.com", ports=[], **spec)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"spec.externalName": "db.example.com."}, []),
        ({"spec.externalName": "db"}, []),
        ({"spec.externalName": "db.example.com.."}, [("spec.externalName", INVALID)]),
        ({"spec.externalName": "DB.example.com"}, [("spec.externalName", INVALID)]),
        ({"spec.externalName": DELETE}, [("spec.externalName", REQUIRED)]),
        ({"spec.externalName": "."}, [("spec.externalName", REQUIRED)]),
        ({"spec.externalName": 5}, [("spec.externalName", INVALID)]),
        ({"spec.clusterIP": "10.96.0.20"}, [("spec.clusterIP", FORBIDDEN)]),
        ({"spec.clusterIP": "None"}, [("spec.clusterIP", FORBIDDEN)]),
        ({"spec.clusterIPs": ["10.96.0.20"]}, [("spec.clusterIPs", FORBIDDEN)]),
        ({"spec.ipFamilies": ["IPv4"]}, [("spec.ipFamilies", FORBIDDEN)]),
        ({"spec.ipFamilyPolicy": "SingleStack"}, [("spec.ipFamilyPolicy", FORBIDDEN)]),
        ({"spec.ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5432}]},
         []),
    ],
)
def test_external_name(changes: dict, expected: list) -> None:
    assert found(validate("Service", changed(external_name_service(), changes))) == expected


# ---------------------------------------------------------------------------- Service update


def allocated(svc: dict, ip: str = "10.96.0.20", node_ports: tuple[int, ...] = ()) -> dict:
    """What the store holds after the allocator ran."""
    out = changed(svc, {"spec.clusterIP": ip, "spec.clusterIPs": [ip],
                        "spec.ipFamilies": ["IPv4"], "spec.ipFamilyPolicy": "SingleStack"})
    for i, node_port in enumerate(node_ports):
        put(out, f"spec.ports[{i}].nodePort", node_port)
    return out


def retyped(old: dict, kind: str, **changes: Any) -> dict:
    """A client-side edit of the stored object: new type, everything else carried over."""
    new = changed(old, {"spec.type": kind, **changes})
    apply_defaults("Service", new)
    return new


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (allocated(valid_service()), changed(allocated(valid_service()), {}), []),
        (allocated(valid_service()),
         changed(allocated(valid_service()), {"spec.clusterIP": DELETE, "spec.clusterIPs": DELETE}),
         []),  # omitted: the allocator keeps the old address
        (allocated(valid_service()), changed(allocated(valid_service(), "10.96.0.21"), {}),
         [("spec.clusterIP", INVALID)]),
        (allocated(valid_service()),
         changed(allocated(valid_service()), {"spec.clusterIP": DELETE,
                                              "spec.clusterIPs": ["10.96.0.21"]}),
         [("spec.clusterIPs[0]", INVALID)]),
        (allocated(valid_service()),
         retyped(allocated(valid_service()), "ExternalName", **{"spec.externalName": "db.example"}),
         []),  # the old address is dropped with the type
        (allocated(valid_service()),
         retyped(allocated(valid_service()), "ExternalName",
                 **{"spec.externalName": "db.example", "spec.clusterIP": "10.96.0.21"}),
         [("spec.clusterIP", FORBIDDEN)]),
        (external_name_service(),
         retyped(external_name_service(), "ClusterIP",
                 **{"spec.ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]}), []),
        (external_name_service(), retyped(external_name_service(), "ClusterIP"),
         [("spec.ports", REQUIRED)]),
        (allocated(node_port_service(), node_ports=(30080,)),
         retyped(allocated(node_port_service(), node_ports=(30080,)), "ClusterIP"), []),
        (allocated(node_port_service(), node_ports=(30080,)),
         retyped(allocated(node_port_service(), node_ports=(30080,)), "ClusterIP",
                 **{"spec.ports[0].nodePort": 30081}),
         [("spec.ports[0].nodePort", FORBIDDEN)]),
        (allocated(load_balancer_service(), node_ports=(30080,)),
         retyped(allocated(load_balancer_service(), node_ports=(30080,)), "ClusterIP"), []),
        (allocated(valid_service(clusterIP="None"), "None"),
         changed(allocated(valid_service(clusterIP="None"), "None"), {}), []),
        (allocated(load_balancer_service(externalTrafficPolicy="Local", healthCheckNodePort=30999)),
         changed(allocated(load_balancer_service(externalTrafficPolicy="Local",
                                                 healthCheckNodePort=30999)),
                 {"spec.healthCheckNodePort": 30998}),
         [("spec.healthCheckNodePort", INVALID)]),
    ],
)
def test_service_update(old: dict, new: dict, expected: list) -> None:
    assert found(validate("Service", new, old)) == expected


def test_type_change_without_ports_does_not_crash() -> None:
    old = changed(node_port_service(), {"spec.ports": DELETE})
    new = retyped(old, "ClusterIP")
    assert found(validate("Service", new, old)) == [("spec.ports", REQUIRED)]


def test_changed_cluster_ip_message() -> None:
    old = allocated(valid_service())
    [error] = validate("Service", allocated(valid_service(), "10.96.0.21"), old)
    assert error.message == "may not change once set"


# ---------------------------------------------------------------------------- Service status


def with_ingress(svc: dict, *ingress: dict) -> dict:
    return changed(svc, {"status": {"loadBalancer": {"ingress": list(ingress)}}})


@pytest.mark.parametrize(
    ("build", "ingress", "expected"),
    [
        (load_balancer_service, [{"ip": "192.0.2.10", "ipMode": "VIP"}], []),
        (load_balancer_service, [{"ip": "192.0.2.10"}], []),
        (load_balancer_service, [{"hostname": "lb.example.com"}], []),
        (load_balancer_service, [{"ip": "192.0.2.300"}],
         [("status.loadBalancer.ingress[0].ip", INVALID)]),
        (load_balancer_service, [{"ip": "192.0.2.10", "ipMode": "Direct"}],
         [("status.loadBalancer.ingress[0].ipMode", UNSUPPORTED)]),
        (load_balancer_service, [{"hostname": "lb.example.com", "ipMode": "VIP"}],
         [("status.loadBalancer.ingress[0].ipMode", FORBIDDEN)]),
        (load_balancer_service, [{"hostname": "192.0.2.10"}],
         [("status.loadBalancer.ingress[0].hostname", INVALID)]),
        (load_balancer_service, [{"ip": "192.0.2.10", "ports": [{"port": 80}]}],
         [("status.loadBalancer.ingress[0].ports[0].protocol", REQUIRED)]),
        (valid_service, [{"ip": "192.0.2.10"}], [("status.loadBalancer.ingress", FORBIDDEN)]),
        (load_balancer_service, ["192.0.2.10"], [("status.loadBalancer.ingress[0]", INVALID)]),
    ],
)
def test_service_status(build, ingress: list, expected: list) -> None:
    old = build()
    assert found(validate_status("Service", with_ingress(old, *ingress), old)) == expected


def test_status_write_still_guards_identity() -> None:
    old = load_balancer_service()
    new = changed(old, {"metadata.uid": "other"})
    assert found(validate_status("Service", new, old)) == [("metadata.uid", INVALID)]
