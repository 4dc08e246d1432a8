"""Defaults and validation of apps/v1 ReplicaSets and Deployments and v1 Endpoints,
as Kubernetes' apps/v1 defaulting and ``pkg/apis/{apps,core}/validation`` have them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.kindhooks import apply_defaults, validate, validate_status
from tests.unit.test_validation import (
    DELETE,
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    UNSUPPORTED,
    changed,
    found,
    meta,
)


def defaulted(kind: str, obj: dict) -> dict:
    apply_defaults(kind, obj)
    return obj


def workload(kind: str, **spec: Any) -> dict:
    """A ReplicaSet or Deployment as a user writes it (before defaults)."""
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta("web"),
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.27"}]}},
                     **spec}}


def valid_deployment() -> dict:
    return defaulted("Deployment", workload("Deployment"))


def valid_replicaset() -> dict:
    return defaulted("ReplicaSet", workload("ReplicaSet"))


def valid_endpoints() -> dict:
    return defaulted("Endpoints", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": meta("web"),
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "node-1",
                                    "targetRef": {"kind": "Pod", "name": "web-1"}}],
                     "notReadyAddresses": [{"ip": "10.244.2.7"}],
                     "ports": [{"name": "http", "port": 8080}]}]})


# ---------------------------------------------------------------------------- defaults


def test_deployment_defaults_are_apps_v1s() -> None:
    spec = valid_deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]  # the template gets what a Pod gets
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_deployment_defaults_keep_what_is_given() -> None:
    spec = defaulted("Deployment", workload(
        "Deployment", replicas=0, revisionHistoryLimit=0,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}))["spec"]
    assert spec["replicas"] == 0 and spec["revisionHistoryLimit"] == 0  # 0 is a choice
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
    recreate = defaulted("Deployment", workload("Deployment", strategy={"type": "Recreate"}))
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_and_endpoints_defaults() -> None:
    assert valid_replicaset()["spec"]["replicas"] == 1
    assert valid_replicaset()["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert valid_endpoints()["subsets"][0]["ports"][0]["protocol"] == "TCP"
    for odd in (None, [], "x", {"spec": "x"}, {"spec": {"template": 3, "strategy": 4}}):
        apply_defaults("Deployment", odd)  # never raises: validation reports odd input


# ---------------------------------------------------------------------------- workloads

SHARED = [
    ({}, []),
    ({"spec.replicas": 0}, []),
    ({"spec.replicas": -1}, [("spec.replicas", INVALID)]),
    ({"spec.replicas": "3"}, [("spec.replicas", INVALID)]),
    ({"spec.minReadySeconds": -1}, [("spec.minReadySeconds", INVALID)]),
    ({"spec.selector": DELETE}, [("spec.selector", REQUIRED)]),
    ({"spec.selector": {}}, [("spec.selector", INVALID)]),
    ({"spec.selector": {"matchLabels": {"app": "other"}}},
     [("spec.template.metadata.labels", INVALID)]),
    ({"spec.selector": {"matchLabels": {"bad key": "web"}}},
     [("spec.selector.matchLabels", INVALID)]),
    ({"spec.selector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                              "values": ["front", "back"]}]}}, []),
    ({"spec.selector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                              "values": ["back"]}]}},
     [("spec.template.metadata.labels", INVALID)]),
    ({"spec.selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}},
     [("spec.selector.matchExpressions[0].values", REQUIRED)]),
    ({"spec.selector": {"matchExpressions": [{"key": "tier", "operator": "Exists",
                                              "values": ["x"]}]}},
     [("spec.selector.matchExpressions[0].values", FORBIDDEN)]),
    ({"spec.selector": {"matchExpressions": [{"key": "tier", "operator": "Like"}]}},
     [("spec.selector.matchExpressions[0].operator", UNSUPPORTED)]),
    ({"spec.template.metadata.labels": DELETE}, [("spec.template.metadata.labels", INVALID)]),
    ({"spec.template.metadata.labels.bad key": "x"}, [("spec.template.metadata.labels", INVALID)]),
    # the template's spec is a Pod's, judged by the Pod's rules under its own path
    ({"spec.template.spec.containers": []}, [("spec.template.spec.containers", REQUIRED)]),
    ({"spec.template.spec.containers[0].name": "Web"},
     [("spec.template.spec.containers[0].name", INVALID)]),
    ({"spec.template.spec.containers[0].ports": [{"containerPort": 0, "protocol": "TCP"}]},
     [("spec.template.spec.containers[0].ports[0].containerPort", INVALID)]),
    ({"spec.template.spec.restartPolicy": "OnFailure"},
     [("spec.template.spec.restartPolicy", UNSUPPORTED)]),
    ({"spec.template.spec.activeDeadlineSeconds": 30},
     [("spec.template.spec.activeDeadlineSeconds", FORBIDDEN)]),
    ({"spec.template": DELETE}, [("spec.template.metadata.labels", INVALID),
                                 ("spec.template.spec.containers", REQUIRED),
                                 ("spec.template.spec.restartPolicy", REQUIRED),
                                 ("spec.template.spec.dnsPolicy", REQUIRED)]),
]


@pytest.mark.parametrize(("changes", "expected"), SHARED)
def test_replicaset(changes: dict, expected: list) -> None:
    assert found(validate("ReplicaSet", changed(valid_replicaset(), changes))) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    SHARED + [
        ({"spec.strategy": {"type": "Recreate"}}, []),
        ({"spec.strategy.type": "Recreate"}, [("spec.strategy.rollingUpdate", FORBIDDEN)]),
        ({"spec.strategy.type": "BlueGreen"}, [("spec.strategy.type", UNSUPPORTED)]),
        ({"spec.strategy.rollingUpdate": DELETE}, [("spec.strategy.rollingUpdate", REQUIRED)]),
        ({"spec.strategy.rollingUpdate": {"maxSurge": 2, "maxUnavailable": "10%"}}, []),
        ({"spec.strategy.rollingUpdate.maxSurge": "a lot"},
         [("spec.strategy.rollingUpdate.maxSurge", INVALID)]),
        ({"spec.strategy.rollingUpdate.maxSurge": -1},
         [("spec.strategy.rollingUpdate.maxSurge", INVALID)]),
        ({"spec.strategy.rollingUpdate.maxUnavailable": "150%"},
         [("spec.strategy.rollingUpdate.maxUnavailable", INVALID)]),
        ({"spec.strategy.rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
         [("spec.strategy.rollingUpdate.maxUnavailable", INVALID)]),
        ({"spec.revisionHistoryLimit": -1}, [("spec.revisionHistoryLimit", INVALID)]),
        ({"spec.progressDeadlineSeconds": -1}, [("spec.progressDeadlineSeconds", INVALID)]),
        ({"spec.minReadySeconds": 600}, [("spec.progressDeadlineSeconds", INVALID)]),
        ({"spec.minReadySeconds": 10, "spec.progressDeadlineSeconds": 11}, []),
        ({"spec.paused": True}, []),
        ({"spec.paused": "yes"}, [("spec.paused", INVALID)]),
    ],
)
def test_deployment(changes: dict, expected: list) -> None:
    assert found(validate("Deployment", changed(valid_deployment(), changes))) == expected


def test_selector_message_names_the_mismatch() -> None:
    bad = changed(valid_deployment(), {"spec.selector.matchLabels.app": "api"})
    [error] = validate("Deployment", bad)
    assert error.describe().endswith("`selector` does not match template `labels`")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_immutable_but_the_rest_may_change(kind: str) -> None:
    old = valid_deployment() if kind == "Deployment" else valid_replicaset()
    new = changed(old, {"spec.selector.matchLabels.tier": "front", "spec.replicas": 7,
                        "spec.template.spec.containers[0].image": "nginx:1.28"})
    assert found(validate(kind, new, old)) == [("spec.selector", INVALID)]
    assert validate(kind, changed(old, {"spec.replicas": 7}), old) == []


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("Deployment", {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                        "availableReplicas": 2, "observedGeneration": 4,
                        "conditions": [{"type": "Available", "status": "True"}]}, []),
        ("Deployment", {"replicas": -1}, [("status.replicas", INVALID)]),
        ("Deployment", {"replicas": 1, "updatedReplicas": 2},
         [("status.updatedReplicas", INVALID)]),
        ("Deployment", {"replicas": 2, "readyReplicas": 1, "availableReplicas": 2},
         [("status.availableReplicas", INVALID)]),
        ("Deployment", {"conditions": [{"type": "Progressing", "status": "Maybe"}]},
         [("status.conditions[0].status", UNSUPPORTED)]),
        ("ReplicaSet", {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                        "availableReplicas": 1}, []),
        ("ReplicaSet", {"replicas": 1, "readyReplicas": 2}, [("status.readyReplicas", INVALID)]),
        ("ReplicaSet", {"observedGeneration": -2}, [("status.observedGeneration", INVALID)]),
    ],
)
def test_status(kind: str, status: dict, expected: list) -> None:
    old = valid_deployment() if kind == "Deployment" else valid_replicaset()
    assert found(validate_status(kind, {**old, "status": status}, old)) == expected


# ---------------------------------------------------------------------------- Endpoints


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"subsets": []}, []),
        ({"subsets[0].addresses[0].ip": "fd00::5"}, []),
        ({"subsets[0].addresses[0].ip": "nope"}, [("subsets[0].addresses[0].ip", INVALID)]),
        ({"subsets[0].addresses[0].ip": DELETE}, [("subsets[0].addresses[0].ip", REQUIRED)]),
        ({"subsets[0].addresses[0].ip": "127.0.0.1"}, [("subsets[0].addresses[0].ip", INVALID)]),
        ({"subsets[0].notReadyAddresses[0].ip": "169.254.1.1"},
         [("subsets[0].notReadyAddresses[0].ip", INVALID)]),
        ({"subsets[0].addresses[0].ip": "224.0.0.5"}, [("subsets[0].addresses[0].ip", INVALID)]),
        ({"subsets[0].addresses[0].ip": "0.0.0.0"}, [("subsets[0].addresses[0].ip", INVALID)]),
        ({"subsets[0].addresses[0].hostname": "Web_1"},
         [("subsets[0].addresses[0].hostname", INVALID)]),
        ({"subsets[0].addresses[0].nodeName": "Node 1"},
         [("subsets[0].addresses[0].nodeName", INVALID)]),
        ({"subsets[0].addresses": [], "subsets[0].notReadyAddresses": []},
         [("subsets[0]", REQUIRED)]),
        ({"subsets[0].ports": []}, []),  # a headless Service's endpoints have no ports
        ({"subsets[0].ports[0].port": 0}, [("subsets[0].ports[0].port", INVALID)]),
        ({"subsets[0].ports[0].port": 65536}, [("subsets[0].ports[0].port", INVALID)]),
        ({"subsets[0].ports[0].port": DELETE}, [("subsets[0].ports[0].port", REQUIRED)]),
        ({"subsets[0].ports[0].protocol": "ICMP"}, [("subsets[0].ports[0].protocol", UNSUPPORTED)]),
        ({"subsets[0].ports[0].name": DELETE}, []),  # one port needs no name
        ({"subsets[0].ports[0].name": "HTTP"}, [("subsets[0].ports[0].name", INVALID)]),
        ({"subsets[0].ports[1]": {"port": 9090, "protocol": "TCP"}},
         [("subsets[0].ports[1].name", REQUIRED)]),
        ({"subsets[0].ports[1]": {"name": "metrics", "port": 9090, "protocol": "UDP"}}, []),
        ({"subsets[0].ports[1]": {"name": "http", "port": 9090, "protocol": "TCP"}},
         [("subsets[0].ports[1].name", DUPLICATE)]),
        ({"subsets[0].ports[0].appProtocol": "h 2"}, [("subsets[0].ports[0].appProtocol", INVALID)]),
        ({"subsets": "all"}, [("subsets", INVALID)]),
    ],
)
def test_endpoints(changes: dict, expected: list) -> None:
    assert found(validate("Endpoints", changed(valid_endpoints(), changes))) == expected
