"""A container's environment as kubelet builds it (``nodeagent.pods.envvars``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeagent.pods.envsource import Objects
from nodeagent.pods.envvars import (
    EnvError,
    PodContext,
    container_env,
    expand,
    expand_command,
    field_value,
    is_env_var_name,
    mapping_for,
    referenced,
    resource_value,
    services_env,
)


def svc(name: str, ns: str, ip: str | None, *ports: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": list(ports)}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1",
                 {"name": "https", "port": 443, "protocol": "TCP"})
POD = {"metadata": {"name": "p", "namespace": "ns1", "uid": "u-1",
                    "labels": {"app": "web", "tier": "a"},
                    "annotations": {"note": "hi"}},
       "spec": {"nodeName": "node-1", "serviceAccountName": "sa"}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_service_variables_for_the_namespace_and_the_master_service() -> None:
    services = [KUBERNETES,
                svc("my-db", "ns1", "10.96.5.5", {"name": "sql-port", "port": 5432},
                    {"name": "metrics", "port": 9100, "protocol": "UDP"}),
                svc("other", "ns2", "10.96.6.6", {"port": 80}),
                svc("headless", "ns1", "None", {"port": 80}),
                svc("external", "ns1", None)]
    env = services_env(services, "ns1")
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "MY_DB_SERVICE_HOST": "10.96.5.5", "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_SQL_PORT": "5432", "MY_DB_SERVICE_PORT_METRICS": "9100",
        "MY_DB_PORT": "tcp://10.96.5.5:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.96.5.5:5432", "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.96.5.5",
        "MY_DB_PORT_9100_UDP": "udp://10.96.5.5:9100", "MY_DB_PORT_9100_UDP_PROTO": "udp",
        "MY_DB_PORT_9100_UDP_PORT": "9100", "MY_DB_PORT_9100_UDP_ADDR": "10.96.5.5"}
    links_off = services_env(services, "ns1", enable_service_links=False)
    assert set(links_off) == {k for k in env if k.startswith("KUBERNETES_")}


def test_a_kubernetes_service_of_the_pods_namespace_wins_as_in_kubelet() -> None:
    own = svc("kubernetes", "ns1", "10.96.9.9", {"port": 80})
    for order in ([own, KUBERNETES], [KUBERNETES, own]):
        assert services_env(order, "ns1")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"
    assert services_env([own, KUBERNETES], "ns1", enable_service_links=False)[
        "KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


@pytest.mark.parametrize(("text", "want"), [
    ("$(A)-$(B)", "a-b"),
    ("$$(A)", "$(A)"),
    ("$(MISSING)", "$(MISSING)"),
    ("$(A", "$(A"),
    ("a$", "a$"),
    ("$x$(A)", "$xa"),
    ("$$$$", "$$"),
    ("()$()", "()$()"),
    ("", ""),
])
def test_expansion_as_kubernetes_does_it(text: str, want: str) -> None:
    assert expand(text, mapping_for({"A": "a"}, {"B": "b", "A": "not this"})) == want


def test_command_and_args_are_expanded_against_the_environment() -> None:
    container = {"command": ["echo", "$(GREETING)"], "args": ["$(NAME)", "$$(NAME)", "$(X)"]}
    assert expand_command(container, {"GREETING": "hi", "NAME": "you"}) == [
        "echo", "hi", "you", "$(NAME)", "$(X)"]


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "p"), ("metadata.namespace", "ns1"), ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"), ("metadata.labels['nope']", ""),
    ("metadata.annotations['note']", "hi"), ("metadata.labels", 'app="web"\ntier="a"'),
    ("spec.nodeName", "node-1"), ("spec.serviceAccountName", "sa"),
    ("status.podIP", "10.244.1.5"), ("status.podIPs", "10.244.1.5"),
    ("status.hostIP", "10.250.0.2"), ("status.hostIPs", "10.250.0.2"),
])
def test_field_refs(path: str, want: str) -> None:
    assert field_value(POD, path, pod_ips=["10.244.1.5"], host_ips=["10.250.0.2"],
                       service_account="sa") == want


def test_unknown_field_ref_is_a_config_error() -> None:
    with pytest.raises(EnvError, match="spec.priority"):
        field_value(POD, "spec.priority", pod_ips=[], host_ips=[], service_account="sa")


ALLOC = {"cpu": "4", "memory": "8Gi"}


@pytest.mark.parametrize(("resources", "ref", "want"), [
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu"}, "1"),  # rounded up
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"limits": {"cpu": "1500m"}}, {"resource": "limits.cpu", "divisor": "100m"}, "15"),
    ({}, {"resource": "limits.cpu"}, "4"),  # the node's allocatable
    ({}, {"resource": "limits.memory", "divisor": "1Mi"}, "8192"),
    ({"limits": {"memory": "64Mi"}}, {"resource": "limits.memory"}, str(64 << 20)),
    ({"limits": {"memory": "64Mi"}}, {"resource": "requests.memory", "divisor": "1Mi"},
     "64"),  # a request not set is its limit
    ({"requests": {"memory": "1Gi"}}, {"resource": "requests.memory", "divisor": "1Gi"},
     "1"),
    ({}, {"resource": "requests.cpu"}, "0"),
    ({}, {"resource": "limits.ephemeral-storage"}, "0"),
])
def test_resource_field_refs(resources: dict[str, Any], ref: dict[str, Any],
                             want: str) -> None:
    assert resource_value(ref, {"resources": resources}, ALLOC) == want


def test_unknown_resource_is_a_config_error() -> None:
    with pytest.raises(EnvError, match="unsupported container resource : limits.gpu"):
        resource_value({"resource": "limits.gpu"}, {}, ALLOC)


def ctx(**kw: Any) -> PodContext:
    return PodContext(service_env=kw.pop("service_env", {"WEB_SERVICE_HOST": "10.96.1.1"}),
                      pod_ips=["10.244.1.5"], host_ips=["10.250.0.2"], allocatable=ALLOC,
                      service_account="sa", **kw)


CONFIGS = Objects(
    configmaps={"app": {"data": {"mode": "fast", "level": "3", "bad key": "x",
                                 "1st": "y"}}, "gone": None},
    secrets={"creds": {"data": {"password": b64("s3cret"), "user": b64("me")}}})


def test_the_whole_environment_in_kubelets_order() -> None:
    container = {"name": "c", "envFrom": [
        {"configMapRef": {"name": "app"}, "prefix": "APP_"},
        {"secretRef": {"name": "creds"}}],
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app",
                                                                   "key": "mode"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                                "key": "password"}}},
                {"name": "WHO", "value": "$(user)@$(WEB_SERVICE_HOST) $(MODE) $(LATER)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                    "resource": "limits.memory", "divisor": "1Gi"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {
                    "name": "app", "key": "missing", "optional": True}}},
                {"name": "WEB_SERVICE_HOST", "value": "mine"},
                {"name": "EMPTY", "value": ""},
                {"name": "LATER", "value": "x"}]}
    built = container_env(POD, container, ctx(), CONFIGS)
    assert built.env == {
        "APP_mode": "fast", "APP_level": "3", "APP_1st": "y",
        "password": "s3cret", "user": "me", "MODE": "fast", "PASS": "s3cret",
        "WHO": "me@10.96.1.1 fast $(LATER)", "POD": "p", "MEM": "8",
        "WEB_SERVICE_HOST": "mine", "EMPTY": "", "LATER": "x"}
    assert built.warnings == [(
        "InvalidEnvironmentVariableNames",
        "Keys [APP_bad key] from the EnvFrom configMap ns1/app were skipped since they are "
        "considered invalid environment variable names.")]


def test_service_variables_come_first_and_the_containers_own_win() -> None:
    built = container_env(POD, {"env": [{"name": "A", "value": "1"}]},
                          ctx(service_env={"A": "svc", "B": "svc"}), Objects())
    assert list(built.env.items()) == [("B", "svc"), ("A", "1")]


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]},
     'configmap "gone" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "k"}}}]},
     "couldn't find key k in ConfigMap ns1/app"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
     'secret "nope" not found'),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
     "couldn't find key k in Secret ns1/creds"),
    ({"envFrom": [{"configMapRef": {"name": "gone"}}]}, 'configmap "gone" not found'),
    ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
])
def test_missing_required_sources_are_config_errors(container: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(EnvError) as info:
        container_env(POD, container, ctx(), CONFIGS)
    assert str(info.value) == message


def test_optional_missing_sources_are_skipped() -> None:
    container = {"envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                             {"secretRef": {"name": "nope", "optional": True}}],
                 "env": [{"name": "X", "valueFrom": {"secretKeyRef": {
                     "name": "nope", "key": "k", "optional": True}}}]}
    assert container_env(POD, container, ctx(service_env={}), CONFIGS).env == {}


def test_what_a_container_references() -> None:
    container = {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s"}}],
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "b",
                                                                         "key": "k"}}},
                         {"name": "Y", "value": "v"}]}
    assert referenced(container) == ({"a", "b"}, {"s"})


@pytest.mark.parametrize(("name", "ok"), [("A_B", True), ("my.env-name", True),
                                          ("_x1", True), ("1x", False), ("a b", False),
                                          (".", False), ("..x", False), ("", False)])
def test_env_var_names(name: str, ok: bool) -> None:
    assert is_env_var_name(name) is ok
