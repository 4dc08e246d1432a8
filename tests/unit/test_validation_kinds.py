"""Validation of Nodes, Namespaces, EndpointSlices (reference §6.5) and Events."""

from __future__ import annotations

import pytest

from tests.unit.kindhooks import validate, validate_status
from tests.unit.test_validation import (
    DELETE,
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    TOO_MANY,
    UNSUPPORTED,
    changed,
    found,
    valid_event,
    valid_namespace,
    valid_node,
    valid_slice,
)

# ---------------------------------------------------------------------------- Node


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec.podCIDR": "10.244.1.1/24"}, [("spec.podCIDR", INVALID)]),
        ({"spec.podCIDR": "10.244.2.0/24"}, [("spec.podCIDRs", INVALID)]),
        ({"spec.podCIDR": "nope", "spec.podCIDRs": DELETE}, [("spec.podCIDR", INVALID)]),
        ({"spec.podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}, []),
        ({"spec.podCIDRs": ["10.244.2.0/24"]}, [("spec.podCIDRs", INVALID)]),
        ({"spec.podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]}, [("spec.podCIDRs", INVALID)]),
        ({"spec.podCIDRs": ["10.244.1.0/24", "10.244.1.0/24"]},
         [("spec.podCIDRs", INVALID), ("spec.podCIDRs[1]", DUPLICATE)]),
        ({"spec.podCIDRs": ["10.244.1.0/24", "bad"]}, [("spec.podCIDRs[1]", INVALID)]),
        ({"spec.podCIDR": DELETE, "spec.podCIDRs": DELETE}, []),
        ({"spec.unschedulable": True}, []),
        ({"spec.unschedulable": "yes"}, [("spec.unschedulable", INVALID)]),
        ({"spec.taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}, []),
        ({"spec.taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                          {"key": "dedicated", "value": "cpu", "effect": "PreferNoSchedule"}]}, []),
        ({"spec.taints": [{"key": "k", "effect": "Never"}]}, [("spec.taints[0].effect", UNSUPPORTED)]),
        ({"spec.taints": [{"key": "k"}]}, [("spec.taints[0].effect", REQUIRED)]),
        ({"spec.taints": [{"effect": "NoSchedule"}]}, [("spec.taints[0].key", REQUIRED)]),
        ({"spec.taints": [{"key": "bad key", "effect": "NoSchedule"}]},
         [("spec.taints[0].key", INVALID)]),
        ({"spec.taints": [{"key": "k", "value": "bad value", "effect": "NoSchedule"}]},
         [("spec.taints[0].value", INVALID)]),
        ({"spec.taints": [{"key": "k", "effect": "NoSchedule"},
                          {"key": "k", "value": "x", "effect": "NoSchedule"}]},
         [("spec.taints[1]", DUPLICATE)]),
        ({"status.addresses[0].type": "Public"}, [("status.addresses[0].type", UNSUPPORTED)]),
        ({"status.addresses[0].address": ""}, [("status.addresses[0].address", REQUIRED)]),
        ({"status.addresses[2]": {"type": "InternalIP", "address": "10.250.0.2"}},
         [("status.addresses[2]", DUPLICATE)]),
        ({"status.addresses[2]": {"type": "ExternalIP", "address": "10.250.0.2"}}, []),
        ({"status.conditions[0].status": "Yes"}, [("status.conditions[0].status", UNSUPPORTED)]),
        ({"status.conditions[0].status": DELETE}, [("status.conditions[0].status", REQUIRED)]),
        ({"status.capacity": "2 cpus"}, [("status.capacity", INVALID)]),
        ({"status.daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}, []),
        ({"status.daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}},
         [("status.daemonEndpoints.kubeletEndpoint.Port", INVALID)]),
    ],
)
def test_node(changes: dict, expected: list) -> None:
    assert found(validate("Node", changed(valid_node(), changes))) == expected


def test_node_status_write_checks_the_same_shape() -> None:
    old = valid_node()
    new = changed(old, {"status.addresses[0].type": "Public"})
    assert found(validate_status("Node", new, old)) == [("status.addresses[0].type", UNSUPPORTED)]


@pytest.mark.parametrize(
    ("old_changes", "changes", "expected"),
    [
        ({}, {"spec.unschedulable": True}, []),
        ({"spec.podCIDR": DELETE, "spec.podCIDRs": DELETE},
         {"spec.podCIDR": "10.244.3.0/24", "spec.podCIDRs": ["10.244.3.0/24"]}, []),
        ({}, {"spec.podCIDR": "10.244.3.0/24", "spec.podCIDRs": ["10.244.3.0/24"]},
         [("spec.podCIDRs", FORBIDDEN)]),
        ({}, {"spec.podCIDR": DELETE, "spec.podCIDRs": DELETE}, [("spec.podCIDRs", FORBIDDEN)]),
        ({}, {"spec.providerID": "kind://node-1"}, []),
        ({"spec.providerID": "kind://node-1"}, {"spec.providerID": "kind://node-2"},
         [("spec.providerID", FORBIDDEN)]),
    ],
)
def test_node_update(old_changes: dict, changes: dict, expected: list) -> None:
    old = changed(valid_node(), old_changes)
    assert found(validate("Node", changed(old, changes), old)) == expected


# ---------------------------------------------------------------------------- Namespace


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec.finalizers": ["kubernetes", "example.com/cleanup"]}, []),
        ({"spec.finalizers": ["cleanup"]}, [("spec.finalizers[0]", INVALID)]),
        ({"spec.finalizers": ["bad name!"]}, [("spec.finalizers[0]", INVALID)]),
        ({"spec.finalizers": "kubernetes"}, [("spec.finalizers", INVALID)]),
        ({"spec": DELETE}, []),
    ],
)
def test_namespace(changes: dict, expected: list) -> None:
    assert found(validate("Namespace", changed(valid_namespace(), changes))) == expected


@pytest.mark.parametrize(
    ("deleting", "phase", "expected"),
    [
        (False, "Active", []),
        (True, "Terminating", []),
        (False, "Terminating", [("status.phase", INVALID)]),
        (True, "Active", [("status.phase", INVALID)]),
        (False, "Gone", [("status.phase", UNSUPPORTED)]),
    ],
)
def test_namespace_status(deleting: bool, phase: str, expected: list) -> None:
    old = valid_namespace()
    if deleting:
        old = changed(old, {"metadata.deletionTimestamp": "2026-01-02T00:00:00Z"})
    assert found(validate_status("Namespace", changed(old, {"status.phase": phase}), old)) == \
        expected


# ---------------------------------------------------------------------------- EndpointSlice

EP0 = "endpoints[0]"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"addressType": DELETE}, [("addressType", REQUIRED)]),
        ({"addressType": "IP"}, [("addressType", UNSUPPORTED)]),
        ({f"{EP0}.addresses": ["10.244.1.5", "10.244.1.6"]}, []),
        ({f"{EP0}.addresses": ["fd00::5"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.addresses": ["10.244.1.256"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.addresses": ["127.0.0.1"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.addresses": ["169.254.0.9"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.addresses": [5]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.addresses": []}, [(f"{EP0}.addresses", REQUIRED)]),
        ({f"{EP0}.addresses": DELETE}, [(f"{EP0}.addresses", REQUIRED)]),
        ({f"{EP0}.addresses": [f"10.244.1.{i}" for i in range(1, 102)]},
         [(f"{EP0}.addresses", TOO_MANY)]),
        ({"addressType": "IPv6", f"{EP0}.addresses": ["fd00::5"]}, []),
        ({"addressType": "IPv6", f"{EP0}.addresses": ["::1"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({"addressType": "FQDN", f"{EP0}.addresses": ["db.example.com"]}, []),
        ({"addressType": "FQDN", f"{EP0}.addresses": ["db"]}, [(f"{EP0}.addresses[0]", INVALID)]),
        ({f"{EP0}.conditions": {"ready": None, "serving": None}}, []),
        ({f"{EP0}.conditions": {}}, []),
        ({f"{EP0}.conditions.ready": "true"}, [(f"{EP0}.conditions.ready", INVALID)]),
        ({f"{EP0}.conditions.terminating": 1}, [(f"{EP0}.conditions.terminating", INVALID)]),
        ({f"{EP0}.hostname": "web-1"}, []),
        ({f"{EP0}.hostname": "web.1"}, [(f"{EP0}.hostname", INVALID)]),
        ({f"{EP0}.nodeName": "Node_1"}, [(f"{EP0}.nodeName", INVALID)]),
        ({f"{EP0}.zone": 3}, [(f"{EP0}.zone", INVALID)]),
        ({f"{EP0}.targetRef": "web-1"}, [(f"{EP0}.targetRef", INVALID)]),
        ({f"{EP0}.targetRef.uid": 7}, [(f"{EP0}.targetRef.uid", INVALID)]),
        ({f"{EP0}.hints": {"forZones": [{"name": "zone-a"}]}}, []),
        ({f"{EP0}.hints": {"forZones": [{}]}}, [(f"{EP0}.hints.forZones[0].name", REQUIRED)]),
        ({f"{EP0}.hints": {"forNodes": [{"name": "Node_1"}]}},
         [(f"{EP0}.hints.forNodes[0].name", INVALID)]),
        ({f"{EP0}.hints": {"forZones": [{"name": f"z{i}"} for i in range(9)]}},
         [(f"{EP0}.hints.forZones", TOO_MANY)]),
        ({"endpoints": [{"addresses": [f"10.244.{i // 250}.{i % 250 + 1}"]} for i in range(1001)]},
         [("endpoints", TOO_MANY)]),
        ({"endpoints": []}, []),
        ({"endpoints": "10.244.1.5"}, [("endpoints", INVALID)]),
        ({"ports": []}, []),
        ({"ports[0].port": None}, []),
        ({"ports[0].port": 0}, [("ports[0].port", INVALID)]),
        ({"ports[0].port": 65536}, [("ports[0].port", INVALID)]),
        ({"ports[0].name": ""}, []),
        ({"ports[0].name": "HTTP"}, [("ports[0].name", INVALID)]),
        ({"ports[1]": {"name": "http", "port": 9090, "protocol": "TCP"}},
         [("ports[1].name", DUPLICATE)]),
        ({"ports[0].name": "", "ports[1]": {"port": 9090, "protocol": "TCP"}},
         [("ports[1].name", DUPLICATE)]),
        ({"ports[0].protocol": DELETE}, [("ports[0].protocol", REQUIRED)]),
        ({"ports[0].protocol": "ICMP"}, [("ports[0].protocol", UNSUPPORTED)]),
        ({"ports[0].appProtocol": "kubernetes.io/h2c"}, []),
        ({"ports[0].appProtocol": "h 2"}, [("ports[0].appProtocol", INVALID)]),
        ({"ports": [{"name": f"p{i}", "port": 1000 + i, "protocol": "TCP"} for i in range(101)]},
         [("ports", TOO_MANY)]),
    ],
)
def test_endpoint_slice(changes: dict, expected: list) -> None:
    assert found(validate("EndpointSlice", changed(valid_slice(), changes))) == expected


def test_endpoint_slice_address_type_is_immutable() -> None:
    old = valid_slice()
    new = changed(old, {"addressType": "FQDN", "endpoints[0].addresses": ["db.example.com"]})
    assert found(validate("EndpointSlice", new, old)) == [("addressType", INVALID)]
    assert validate("EndpointSlice", changed(old, {"endpoints": []}), old) == []


def test_too_many_message() -> None:
    slice_ = changed(valid_slice(), {"ports": [{"port": 1, "protocol": "TCP"}] * 101})
    [error] = validate("EndpointSlice", slice_)
    assert error.message == "must have at most 100 items"
    assert error.value == 101


# ---------------------------------------------------------------------------- Event


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"involvedObject": DELETE}, [("involvedObject", REQUIRED)]),
        ({"involvedObject": "pod/web-1"}, [("involvedObject", INVALID)]),
        ({"involvedObject.namespace": "other"}, [("involvedObject.namespace", INVALID)]),
        ({"involvedObject": {"kind": "Node", "name": "node-1"}}, []),
        ({"involvedObject": {"kind": "Node", "name": "node-1"}, "metadata.namespace": "kube-system"},
         [("involvedObject.namespace", INVALID)]),
        ({"count": -1}, [("count", INVALID)]),
        ({"reason": 5}, [("reason", INVALID)]),
        ({"metadata.name": "Web 1"}, [("metadata.name", INVALID)]),
    ],
)
def test_event(changes: dict, expected: list) -> None:
    assert found(validate("Event", changed(valid_event(), changes))) == expected
