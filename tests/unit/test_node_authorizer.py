"""The Node authorizer's ServiceAccount rules: a node reads, and gets tokens for, only
the ServiceAccounts of pods bound to it (Kubernetes' ``authorizeServiceAccount``)."""

from __future__ import annotations

import pytest

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


def ref(resource: str, verb: str = "get", *, name: str = "app", ns: str = "a",
        sub: str = "") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group="", resource=resource,
                       subresource=sub, name=name, namespace=ns)


def test_a_node_reads_only_the_config_maps_and_secrets_its_pods_refer_to() -> None:
    pods = PodIndex()
    pods.replace([
        {"metadata": {"namespace": "a", "name": "p1"},
         "spec": {"nodeName": "node-1", "volumes": [
             {"name": "v", "configMap": {"name": "app"}},
             {"name": "s", "projected": {"sources": [{"secret": {"name": "creds"}}]}}]}},
        {"metadata": {"namespace": "a", "name": "p2"},
         "spec": {"nodeName": "node-2", "volumes": [
             {"name": "s", "secret": {"secretName": "other"}}]}}])
    node = NodeAuthorizer(pods)
    for verb in ("get", "list", "watch"):
        assert node.authorize(NODE1, ref("configmaps", verb)).allowed
        assert node.authorize(NODE1, ref("secrets", verb, name="creds")).allowed
    for info in (ref("secrets", name="other"), ref("configmaps", ns="b"),
                 ref("configmaps", name="creds"), ref("secrets", "update", name="creds"),
                 ref("secrets", "list", name="")):
        assert not node.authorize(NODE1, info).allowed
    assert node.authorize(NODE1, ref("secrets", name="other")).reason == NOBODY
    pods.apply("a", "p1", None)  # the pod went: so does the permission
    assert not node.authorize(NODE1, ref("configmaps")).allowed
