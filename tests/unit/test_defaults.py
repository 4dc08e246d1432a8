"""v1 defaulting (reference §6.1): what is filled, what is never touched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.defaults import drop_type_dependent_fields
from tests.unit.kindhooks import apply_defaults, validate


def service(**spec: Any) -> dict:
    obj = {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}
    apply_defaults("Service", obj)
    return obj["spec"]


def pod(**container: Any) -> dict:
    obj = {"metadata": {"name": "web-1", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "busybox:1.36", **container}]}}
    apply_defaults("Pod", obj)
    return obj["spec"]


# ---------------------------------------------------------------------------- Service


def test_service_minimal() -> None:
    assert service(ports=[{"port": 80}]) == {
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}


def test_service_without_spec_gets_one() -> None:
    obj: dict = {"metadata": {"name": "web"}}
    apply_defaults("Service", obj)
    assert obj["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "NodePort"}, {"externalTrafficPolicy": "Cluster",
                                "internalTrafficPolicy": "Cluster"}),
        ({"type": "LoadBalancer"}, {"externalTrafficPolicy": "Cluster",
                                    "internalTrafficPolicy": "Cluster",
                                    "allocateLoadBalancerNodePorts": True}),
        ({"type": "ClusterIP", "externalIPs": ["192.0.2.1"]}, {"externalTrafficPolicy": "Cluster",
                                                               "internalTrafficPolicy": "Cluster"}),
        ({"type": "ExternalName", "externalName": "db.example.com"}, {}),
    ],
)
def test_service_type_dependent_defaults(spec: dict, expected: dict) -> None:
    out = service(**spec)
    for key in ("externalTrafficPolicy", "internalTrafficPolicy", "allocateLoadBalancerNodePorts"):
        assert out.get(key) == expected.get(key), key


def test_service_never_allocates() -> None:
    out = service(type="LoadBalancer", ports=[{"port": 80}])
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"):
        assert key not in out
    assert "nodePort" not in out["ports"][0]


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"port": 80}, {"port": 80, "protocol": "TCP", "targetPort": 80}),
        ({"port": 80, "targetPort": 0}, {"port": 80, "protocol": "TCP", "targetPort": 80}),
        ({"port": 80, "targetPort": ""}, {"port": 80, "protocol": "TCP", "targetPort": 80}),
        ({"port": 80, "targetPort": "http"}, {"port": 80, "protocol": "TCP", "targetPort": "http"}),
        ({"port": 53, "protocol": "UDP", "targetPort": 5353},
         {"port": 53, "protocol": "UDP", "targetPort": 5353}),
        ({"port": "80"}, {"port": "80", "protocol": "TCP"}),  # wrong type: left for validation
        ({}, {"protocol": "TCP"}),
    ],
)
def test_service_ports(port: dict, expected: dict) -> None:
    assert service(ports=[port])["ports"] == [expected]


@pytest.mark.parametrize(
    ("spec", "config"),
    [
        ({"sessionAffinity": "ClientIP"}, {"clientIP": {"timeoutSeconds": 10800}}),
        ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {}},
         {"clientIP": {"timeoutSeconds": 10800}}),
        ({"sessionAffinity": "ClientIP",
          "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
         {"clientIP": {"timeoutSeconds": 60}}),
        ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}, None),  # None drops it
        ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": "x"}, "x"),
    ],
)
def test_session_affinity(spec: dict, config: Any) -> None:
    assert service(**spec).get("sessionAffinityConfig") == config


def test_service_keeps_what_was_given() -> None:
    given = {"type": "NodePort", "sessionAffinity": "ClientIP",
             "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
             "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
             "ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns", "nodePort": 30053}],
             "clusterIP": "10.96.0.10"}
    assert service(**copy.deepcopy(given)) == given


def test_load_balancer_ingress_gets_vip_mode() -> None:
    obj = {"spec": {"type": "LoadBalancer"},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.x"}]}}}
    apply_defaults("Service", obj)
    assert obj["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1", "ipMode": "VIP"},
                                                        {"hostname": "lb.x"}]


# ---------------------------------------------------------------------------- Pod


def test_pod_spec_defaults() -> None:
    spec = pod()
    assert {k: v for k, v in spec.items() if k != "containers"} == {
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {}, "enableServiceLinks": True}
    assert spec["containers"][0] == {
        "name": "app", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("registry.local:5000/team/busybox", "Always"),
        ("registry.local:5000/team/busybox:1.36", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert pod(image=image)["containers"][0]["imagePullPolicy"] == policy


def test_pod_keeps_what_was_given() -> None:
    obj = {"spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never",
                                    "terminationMessagePolicy": "FallbackToLogsOnError"}],
                    "restartPolicy": "Never", "dnsPolicy": "Default",
                    "terminationGracePeriodSeconds": 0, "schedulerName": "mine"}}
    want = copy.deepcopy(obj)
    apply_defaults("Pod", obj)
    for key in ("restartPolicy", "dnsPolicy", "terminationGracePeriodSeconds", "schedulerName"):
        assert obj["spec"][key] == want["spec"][key]
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert obj["spec"]["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"port": 8080}},
         {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
          "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}),
        ({"tcpSocket": {"port": "http"}, "periodSeconds": 0, "failureThreshold": 5},
         {"tcpSocket": {"port": "http"}, "timeoutSeconds": 1, "periodSeconds": 10,
          "successThreshold": 1, "failureThreshold": 5}),
        ({"httpGet": {"port": 8443, "path": "/healthz", "scheme": "HTTPS"}, "timeoutSeconds": 3},
         {"httpGet": {"port": 8443, "path": "/healthz", "scheme": "HTTPS"}, "timeoutSeconds": 3,
          "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}),
    ],
)
def test_probe_defaults(probe: dict, expected: dict) -> None:
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert pod(**{kind: copy.deepcopy(probe)})["containers"][0][kind] == expected


def test_container_odds_and_ends() -> None:
    spec = pod(ports=[{"containerPort": 80}],
               env=[{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
               lifecycle={"preStop": {"httpGet": {"port": 80}}},
               resources={"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}})
    c = spec["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "status.podIP", "apiVersion": "v1"}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert c["resources"]["requests"] == {"memory": "1Gi", "cpu": "1"}


def test_host_network_pods_publish_their_ports() -> None:
    obj = {"spec": {"hostNetwork": True, "containers": [
        {"name": "c", "image": "x", "ports": [{"containerPort": 80},
                                              {"containerPort": 53, "hostPort": 5353}]}]}}
    apply_defaults("Pod", obj)
    assert [p["hostPort"] for p in obj["spec"]["containers"][0]["ports"]] == [80, 5353]


def test_volume_without_source_is_an_empty_dir() -> None:
    obj = {"spec": {"containers": [], "volumes": [{"name": "scratch"},
                                                  {"name": "cfg", "configMap": {"name": "c"}}]}}
    apply_defaults("Pod", obj)
    assert obj["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}},
                                      {"name": "cfg", "configMap": {"name": "c"}}]


# ---------------------------------------------------------------------------- other kinds


def test_endpoint_slice_ports() -> None:
    obj = {"addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns", "protocol": "UDP"}]}
    apply_defaults("EndpointSlice", obj)
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"},
                            {"name": "dns", "protocol": "UDP"}]


def test_namespace_name_label_and_phase() -> None:
    obj = {"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "lie"}}}
    apply_defaults("Namespace", obj)
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert obj["status"] == {"phase": "Active"}


def test_node_allocatable_defaults_to_capacity() -> None:
    obj = {"status": {"capacity": {"cpu": "2", "pods": "110"}}}
    apply_defaults("Node", obj)
    assert obj["status"]["allocatable"] == {"cpu": "2", "pods": "110"}
    obj["status"]["capacity"]["cpu"] = "4"
    assert obj["status"]["allocatable"]["cpu"] == "2"  # a copy, not an alias


@pytest.mark.parametrize("kind", ["Event"])
def test_kinds_without_defaults_are_untouched(kind: str) -> None:
    obj = {"metadata": {"name": "x"}, "spec": {}}
    apply_defaults(kind, obj)
    assert obj == {"metadata": {"name": "x"}, "spec": {}}


def _leaves_of_wrong_type(obj: Any, path: str = "") -> dict[str, Any]:
    """Every value that is not an object, by path: what defaulting must leave as it is."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_leaves_of_wrong_type(value, f"{path}.{key}"))
        return out
    return {path: obj}


@pytest.mark.parametrize("kind", ["Service", "Pod", "EndpointSlice", "Namespace", "Node"])
@pytest.mark.parametrize("obj", [None, [], "x", {"spec": "x"}, {"spec": []},
                                 {"spec": {"ports": "x", "containers": {"a": 1}}},
                                 {"spec": {"ports": [1, None], "sessionAffinity": 0}},
                                 {"metadata": "x", "status": 5}, {"ports": [1, None]}])
def test_wrong_types_are_left_alone(kind: str, obj: Any) -> None:
    before = _leaves_of_wrong_type(copy.deepcopy(obj))
    apply_defaults(kind, obj)
    after = _leaves_of_wrong_type(obj)
    assert {path: after.get(path) for path in before} == before


def test_defaults_are_idempotent() -> None:
    for kind, obj in (("Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 1}]}}),
                      ("Pod", {"spec": {"containers": [{"name": "c", "image": "x",
                                                        "livenessProbe": {"httpGet": {}}}]}})):
        apply_defaults(kind, obj)
        once = copy.deepcopy(obj)
        apply_defaults(kind, obj)
        assert obj == once


def test_defaulted_minimal_objects_validate() -> None:
    """What a user typically posts must pass once defaulted (as kubectl users expect)."""
    svc = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    lb = {"metadata": {"name": "lb", "namespace": "default"},
          "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    po = {"metadata": {"name": "web-1", "namespace": "default"},
          "spec": {"containers": [{"name": "app", "image": "busybox",
                                   "readinessProbe": {"httpGet": {"port": 80}},
                                   "livenessProbe": {"tcpSocket": {"port": 80}}}]}}
    for kind, obj in (("Service", svc), ("Service", lb), ("Pod", po)):
        apply_defaults(kind, obj)
        assert validate(kind, obj) == []


# ---------------------------------------------------------------------------- type changes


def stored_node_port() -> dict:
    return {"spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                     "sessionAffinity": "None",
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80,
                                "nodePort": 30080}]}}


def test_type_change_drops_unchanged_leftovers() -> None:
    old = stored_node_port()
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    drop_type_dependent_fields(new, old)
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in new["spec"]
    assert new["spec"]["clusterIP"] == "10.96.0.20"  # still needed by a ClusterIP Service

    new = copy.deepcopy(old)
    new["spec"].update(type="ExternalName", externalName="db.example.com")
    drop_type_dependent_fields(new, old)
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "externalTrafficPolicy"):
        assert key not in new["spec"], key


def test_type_change_keeps_what_the_client_changed() -> None:
    old = stored_node_port()
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"][0]["nodePort"] = 30081
    drop_type_dependent_fields(new, old)
    assert new["spec"]["ports"][0]["nodePort"] == 30081  # validation will reject it
    unchanged = copy.deepcopy(old)
    drop_type_dependent_fields(unchanged, old)
    assert unchanged == old
