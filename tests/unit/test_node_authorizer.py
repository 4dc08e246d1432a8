"""The Node authorizer's ServiceAccount rules: a node reads, and gets tokens for, only
the ServiceAccounts of pods bound to it (Kubernetes' ``authorizeServiceAccount``)."""

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
