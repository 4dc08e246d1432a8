"""The Node authorizer: a node reads, and gets tokens for, only the ServiceAccounts of
pods bound to it (Kubernetes' ``authorizeServiceAccount``), and reads by name only the
ConfigMaps and Secrets those pods reference (``authorizeReadNamespacedObject``)."""

from __future__ import annotations

import pytest

from apiserver.auth.authorizer import Decision
from apiserver.auth.node import NodeAuthorizer, PodIndex, pod_references
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
    assert pod_references(USES_EVERYTHING) == {
        ("serviceaccounts", "builder"),
        ("secrets", "pull"), ("secrets", "init-env"), ("secrets", "db"),
        ("secrets", "certs"), ("secrets", "proj-s"), ("secrets", "csi"),
        ("configmaps", "settings"), ("configmaps", "env-cm"), ("configmaps", "debug"),
        ("configmaps", "files"), ("configmaps", "proj-cm")}
    # odd shapes are no reference, never an exception
    assert pod_references({"containers": "x", "volumes": [None, {"configMap": "x"}],
                           "imagePullSecrets": [{"name": 3}]}) == {
        ("serviceaccounts", "default")}


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
