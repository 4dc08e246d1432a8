"""NodeRestriction and the Node authorizer on a real mp-apiserver, as node-1's agent
is refused: over HTTPS with node-1's client certificate (``system:node:node-1`` in
``system:nodes``, signed by the test run's CA), as its kubeconfig carries it.

Every refusal is checked for what it did not do as well: the object is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ApiServer, wait_until
from tests.integration.callers import Callers

PODS = "/api/v1/namespaces/default/pods"
MERGE = {"content-type": "application/merge-patch+json"}


@pytest.fixture
def cluster(apiserver: ApiServer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(cluster-admin, node-1's agent) on a fresh server with nodes node-1 and node-2,
    pod ``mine`` bound to node-1 and ``theirs`` bound to node-2."""
    callers = Callers(apiserver)
    try:
        admin, node1 = callers.admin(), callers.node("node-1")
        for name in ("node-1", "node-2"):
            resp = admin.post("/api/v1/nodes", json=node(name))
            assert resp.status_code == 201, resp.text
        for pod_name, node_name in (("mine", "node-1"), ("theirs", "node-2")):
            assert admin.post(PODS, json=unbound_pod(pod_name)).status_code == 201
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod_name},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
            resp = admin.post(f"{PODS}/{pod_name}/binding", json=binding)
            assert resp.status_code == 201, resp.text
        # the Node authorizer learns of the bindings from the committed log
        wait_until(lambda: node1.get(f"{PODS}/mine").status_code == 200,
                   what="the node authorizer to see node-1's pod")
        yield admin, node1
    finally:
        callers.close()


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def unbound_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


def test_node_writes_only_its_own_node_and_the_status_of_its_own_pods(cluster) -> None:
    admin, node1 = cluster
    whoami = node1.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
    assert whoami.json()["status"]["userInfo"] == {
        "username": "system:node:node-1", "groups": ["system:nodes", "system:authenticated"]}
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    resp = node1.patch("/api/v1/nodes/node-2/status", json=ready, headers=MERGE)
    assert resp.status_code == 403, resp.text
    assert resp.json()["message"] == ('nodes "node-2" is forbidden: node "node-1" is '
                                      'not allowed to modify node "node-2"')
    resp = node1.patch("/api/v1/nodes/node-1/status", json=ready, headers=MERGE)
    assert resp.status_code == 200, resp.text

    taint = {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    resp = node1.patch("/api/v1/nodes/node-1", json=taint, headers=MERGE)
    assert resp.status_code == 403
    assert resp.json()["message"] == ('nodes "node-1" is forbidden: node "node-1" is '
                                      "not allowed to modify taints")

    running = {"status": {"phase": "Running"}}
    resp = node1.patch(f"{PODS}/theirs/status", json=running, headers=MERGE)
    assert resp.status_code == 403, resp.text
    assert resp.json()["message"] == (
        'pods "theirs" is forbidden: node "node-1" can only update pod status for '
        "pods with spec.nodeName set to itself")
    resp = node1.patch(f"{PODS}/mine/status", json=running, headers=MERGE)
    assert resp.status_code == 200, resp.text

    resp = node1.request("DELETE", f"{PODS}/theirs", json={"gracePeriodSeconds": 0})
    assert resp.status_code == 403
    assert resp.json()["message"] == ('pods "theirs" is forbidden: node "node-1" can '
                                      "only delete pods with spec.nodeName set to itself")

    # no static (mirror) pods here: the system:node role has no pod create at all
    resp = node1.post(PODS, json=unbound_pod("new"))
    assert resp.status_code == 403
    assert resp.json()["message"] == ('pods is forbidden: User "system:node:node-1" cannot '
                                      'create resource "pods" in API group "" in the '
                                      'namespace "default"')

    # nothing the refused requests asked for happened
    theirs = admin.get(f"{PODS}/theirs").json()
    assert theirs["status"]["phase"] == "Pending" and "deletionTimestamp" not in theirs[
        "metadata"]
    assert "conditions" not in admin.get("/api/v1/nodes/node-2").json().get("status", {})
    assert admin.get(f"{PODS}/new").status_code == 404
    assert "taints" not in admin.get("/api/v1/nodes/node-1").json().get("spec", {})
    # what was allowed did happen
    assert admin.get(f"{PODS}/mine").json()["status"]["phase"] == "Running"

    resp = node1.request("DELETE", f"{PODS}/mine", json={"gracePeriodSeconds": 0})
    assert resp.status_code == 200, resp.text
    assert admin.get(f"{PODS}/mine").status_code == 404


def test_node_gets_tokens_only_for_its_own_pods(cluster) -> None:
    """node-1 may read pods (as kubelets do) but a token only for a pod bound to it:
    one for a pod of node-2 would let it act as that pod."""
    admin, node1 = cluster
    for sa_name in ("default", "web"):
        resp = admin.post("/api/v1/namespaces/default/serviceaccounts",
                          json={"metadata": {"name": sa_name}})
        assert resp.status_code in (201, 409), resp.text
    pods = {p["metadata"]["name"]: p for p in admin.get(PODS).json()["items"]}
    token = "/api/v1/namespaces/default/serviceaccounts/{}/token"

    def bound(name: str) -> dict:
        return {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": name,
                                            "uid": pods[name]["metadata"]["uid"]}}}

    # an account no pod of node-1 runs as: the Node authorizer says no
    resp = node1.post(token.format("web"), json=bound("theirs"))
    assert resp.status_code == 403
    assert resp.json()["message"] == (
        'serviceaccounts "web" is forbidden: User "system:node:node-1" cannot create '
        'resource "serviceaccounts/token" in API group "" in the namespace "default": '
        "no relationship found between node 'node-1' and this object")
    # both pods run as default: bound to node-2's pod, NodeRestriction says no
    resp = node1.post(token.format("default"), json=bound("theirs"))
    assert resp.status_code == 403
    assert resp.json()["message"].endswith(
        "node requested token bound to a pod scheduled on a different node")
    # bound to its own pod: a token
    resp = node1.post(token.format("default"), json=bound("mine"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"]["token"].count(".") == 2


def test_other_users_are_not_restricted(cluster) -> None:
    admin, _node1 = cluster
    resp = admin.patch("/api/v1/nodes/node-2", json={"spec": {"taints": [
        {"key": "k", "effect": "NoSchedule"}]}}, headers=MERGE)
    assert resp.status_code == 200, resp.text
    assert admin.get("/api/v1/nodes/node-2").json()["spec"]["taints"][0]["key"] == "k"


def test_node_writes_events_but_reads_or_deletes_none(cluster) -> None:
    """system:node may create and patch Events (kubelet's recorder de-duplicates by
    patching ``count``), in any namespace its pods live in; it may not list, watch,
    read or delete them, nor patch what its role does not name (a pod's spec)."""
    admin, node1 = cluster
    events = "/api/v1/namespaces/default/events"
    body = {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "mine.17a0", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "mine", "namespace": "default"},
            "type": "Warning", "reason": "Unhealthy", "message": "Readiness probe failed: x",
            "source": {"component": "kubelet", "host": "node-1"}, "count": 1}
    resp = node1.post(events, json=body)
    assert resp.status_code == 201, resp.text
    resp = node1.patch(f"{events}/mine.17a0", json={"count": 2}, headers=MERGE)
    assert resp.status_code == 200, resp.text
    assert admin.get(f"{events}/mine.17a0").json()["count"] == 2

    for method, path in (("GET", events), ("GET", f"{events}/mine.17a0"),
                         ("DELETE", f"{events}/mine.17a0")):
        resp = node1.request(method, path)
        assert resp.status_code == 403, (method, path, resp.text)
    assert node1.get(events, params={"watch": "1"}).status_code == 403
    assert admin.get(f"{events}/mine.17a0").status_code == 200  # not deleted
    resp = node1.patch(f"{PODS}/mine", json={"metadata": {"labels": {"x": "y"}}},
                       headers=MERGE)
    assert resp.status_code == 403, resp.text
    assert "labels" not in admin.get(f"{PODS}/mine").json()["metadata"]
