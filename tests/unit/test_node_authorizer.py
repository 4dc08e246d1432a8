"""The Node authorizer: a node reads, and gets tokens for, only the ServiceAccounts of
pods bound to it (Kubernetes' ``authorizeServiceAccount``), and reads by name only the
ConfigMaps and Secrets those pods reference (``authorizeReadNamespacedObject``)."""

from __future__ import annotations

import pytest

from apimachinery.podrefs import pod_references
from apiserver.auth.authorizer import Decision
from apiserver.auth.node import NodeAuthorizer, PodIndex
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo

NODE1 = UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))
NOBODY = "no relationship found between node 'node-1' and this object"


def sa(verb: str, *, name: str = "builder", ns: str = "a", sub: str = "") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group="",
                       resource="serviceaccounts", subresource=sub, name=name, namespace=ns)


@pytest.fixture
def node() -> NodeAuthorizer:
    pods = PodIndex()
    pods.replace([
        {"metadata": {"namespace": "a", "name": "p1"},
         "spec": {"nodeName": "node-1", "serviceAccountName": "builder"}},
        {"metadata": {"namespace": "a", "name": "p2"},
         "spec": {"nodeName": "node-2", "serviceAccountName": "web"}}])
    return NodeAuthorizer(pods)


def test_a_node_may_get_the_service_account_of_its_pod(node: NodeAuthorizer) -> None:
    assert node.authorize(NODE1, sa("get")).allowed
    verdict = node.authorize(NODE1, sa("get", name="web"))
    assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, NOBODY)
    assert not node.authorize(NODE1, sa("get", ns="b")).allowed


@pytest.mark.parametrize(("request_info", "reason"), [
    (sa("list", name=""), "can only create tokens for individual service accounts"),
    (sa("watch", name=""), "can only create tokens for individual service accounts"),
    (sa("update"), "can only create tokens for individual service accounts"),
    (sa("delete"), "can only create tokens for individual service accounts"),
    (sa("create"), "can only create token subresource of serviceaccount"),
    (sa("get", sub="token"), "can only create tokens for individual service accounts"),
    (sa("get", name=""), "can only read namespaced object of this type"),
])
def test_nothing_else_about_service_accounts(node: NodeAuthorizer, request_info: RequestInfo,
                                             reason: str) -> None:
    verdict = node.authorize(NODE1, request_info)
    assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, reason)


# -- ConfigMaps and Secrets: only those referenced by pods bound to the node ------------


def obj(resource: str, verb: str = "get", *, name: str = "cfg", ns: str = "a",
        sub: str = "") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group="", resource=resource,
                       subresource=sub, name=name, namespace=ns)


@pytest.fixture
def configs() -> NodeAuthorizer:
    pods = PodIndex()
    pods.replace([
        {"metadata": {"namespace": "a", "name": "p1"},
         "spec": {"nodeName": "node-1", "containers": [
             {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {
                 "name": "cfg", "key": "k"}}}],
              "envFrom": [{"secretRef": {"name": "creds"}}]}],
             "volumes": [{"name": "v", "secret": {"secretName": "files"}},
                         {"name": "w", "projected": {"sources": [
                             {"configMap": {"name": "proj"}}]}}]}},
        {"metadata": {"namespace": "a", "name": "p2"},
         "spec": {"nodeName": "node-2", "containers": [
             {"name": "c", "envFrom": [{"configMapRef": {"name": "theirs"}}]}]}}])
    return NodeAuthorizer(pods)


@pytest.mark.parametrize("request_info", [
    obj("configmaps"), obj("configmaps", "watch"), obj("configmaps", "list"),
    obj("secrets", name="creds"), obj("secrets", name="files"),
    obj("configmaps", name="proj")])
def test_a_node_reads_the_configmaps_and_secrets_of_its_pods(
        configs: NodeAuthorizer, request_info: RequestInfo) -> None:
    assert configs.authorize(NODE1, request_info).allowed


@pytest.mark.parametrize(("request_info", "reason"), [
    (obj("configmaps", name="theirs"), NOBODY),
    (obj("secrets", name="cfg"), NOBODY),  # a ConfigMap's name is no Secret's
    (obj("secrets", name="creds", ns="b"), NOBODY),
    (obj("configmaps", "list", name=""), "No Object name found"),
    (obj("secrets", "update", name="creds"), "can only read resources of this type"),
    (obj("secrets", "delete", name="creds"), "can only read resources of this type"),
    (obj("configmaps", sub="status"), "cannot read subresource"),
    (obj("configmaps", ns=""), "can only read namespaced object of this type"),
])
def test_nothing_else_about_configmaps_and_secrets(
        configs: NodeAuthorizer, request_info: RequestInfo, reason: str) -> None:
    verdict = configs.authorize(NODE1, request_info)
    assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, reason)


def test_the_grant_ends_with_the_pod(configs: NodeAuthorizer) -> None:
    configs.pods.apply("a", "p1", None)
    assert not configs.authorize(NODE1, obj("configmaps")).allowed


def test_every_place_a_pod_names_a_configmap_or_secret() -> None:
    spec = {"initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init"}}]}],
            "ephemeralContainers": [{"name": "e", "env": [{"name": "X", "valueFrom": {
                "secretKeyRef": {"name": "debug", "key": "k"}}}]}],
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [{"name": "v", "configMap": {"name": "vol"}},
                        {"name": "w", "projected": {"sources": [
                            {"secret": {"name": "proj"}}, {"serviceAccountToken": {}}]}},
                        {"name": "bad", "secret": "not a mapping"}]}
    assert pod_references({"spec": spec}) == {("configmaps", "init"), ("secrets", "debug"),
                                              ("secrets", "registry"), ("configmaps", "vol"),
                                              ("secrets", "proj")}


# ---------------------------------------------------------------- ConfigMaps and Secrets

USES_EVERYTHING = {
    "nodeName": "node-1", "serviceAccountName": "builder",
    "imagePullSecrets": [{"name": "pull"}],
    "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
    "containers": [{"name": "c", "env": [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "D", "value": "plain"}],
        "envFrom": [{"configMapRef": {"name": "env-cm"}, "prefix": "X_"}]}],
    "ephemeralContainers": [{"name": "e", "envFrom": [{"configMapRef": {"name": "debug"}}]}],
    "volumes": [{"name": "v1", "configMap": {"name": "files"}},
                {"name": "v2", "secret": {"secretName": "certs"}},
                {"name": "v3", "projected": {"sources": [
                    {"configMap": {"name": "proj-cm"}}, {"secret": {"name": "proj-s"}},
                    {"serviceAccountToken": {"path": "token"}}]}},
                {"name": "v4", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                {"name": "v5", "emptyDir": {}}],
}


def test_pod_references_are_kubernetes_graph_edges() -> None:
    assert pod_references({"spec": USES_EVERYTHING}) == {
        ("secrets", "pull"), ("secrets", "init-env"), ("secrets", "db"),
        ("secrets", "certs"), ("secrets", "proj-s"), ("secrets", "csi"),
        ("configmaps", "settings"), ("configmaps", "env-cm"), ("configmaps", "debug"),
        ("configmaps", "files"), ("configmaps", "proj-cm")}
    # odd shapes are no reference, never an exception
    assert pod_references({"spec": {"containers": "x", "volumes": [None, {"configMap": "x"}],
                                    "imagePullSecrets": [{"name": 3}]}}) == set()


def read(resource: str, name: str, verb: str = "get", *, ns: str = "a",
         sub: str = "") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group="", resource=resource,
                       subresource=sub, name=name, namespace=ns)


@pytest.fixture
def referencing() -> NodeAuthorizer:
    pods = PodIndex()
    pods.replace([{"metadata": {"namespace": "a", "name": "p1"}, "spec": USES_EVERYTHING},
                  {"metadata": {"namespace": "a", "name": "p2"},
                   "spec": {"nodeName": "node-2", "volumes": [
                       {"name": "v", "secret": {"secretName": "other"}}]}}])
    return NodeAuthorizer(pods)


@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_a_node_reads_by_name_what_its_pods_reference(referencing: NodeAuthorizer,
                                                      verb: str) -> None:
    assert referencing.authorize(NODE1, read("secrets", "db", verb)).allowed
    assert referencing.authorize(NODE1, read("configmaps", "proj-cm", verb)).allowed
    for denied in (read("secrets", "other", verb), read("secrets", "db", verb, ns="b"),
                   read("configmaps", "db", verb)):
        verdict = referencing.authorize(NODE1, denied)
        assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, NOBODY)


@pytest.mark.parametrize(("request_info", "reason"), [
    (read("secrets", "", "list"), "No Object name found"),
    (read("secrets", "", "watch"), "No Object name found"),
    (read("secrets", "db", "list", ns=""), "can only read namespaced object of this type"),
    (read("secrets", "db", "update"), "can only read resources of this type"),
    (read("configmaps", "files", "delete"), "can only read resources of this type"),
    (read("secrets", "db", "create"), "can only read resources of this type"),
    (read("secrets", "db", sub="status"), "cannot read subresource"),
])
def test_no_write_and_no_list_of_all(referencing: NodeAuthorizer, request_info: RequestInfo,
                                     reason: str) -> None:
    verdict = referencing.authorize(NODE1, request_info)
    assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, reason)


def test_the_edge_goes_with_the_last_pod_that_made_it() -> None:
    pods = PodIndex()
    spec = {"nodeName": "node-1", "volumes": [{"name": "v", "secret": {"secretName": "db"}}]}
    pods.apply("a", "p1", {"spec": spec})
    pods.apply("a", "p2", {"spec": spec})
    pods.apply("a", "p1", None)
    assert pods.node_references("node-1", "a", "secrets", "db")
    pods.apply("a", "p2", {"spec": {**spec, "nodeName": "node-2"}})  # moved: not node-1's now
    assert not pods.node_references("node-1", "a", "secrets", "db")
    assert pods.node_references("node-2", "a", "secrets", "db")
