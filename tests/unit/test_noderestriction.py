"""NodeRestriction decisions: what node-1's agent may and may not write."""

from __future__ import annotations

import pytest

from apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from apiserver.admission.noderestriction import Missing, decide, forbidden_labels
from apiserver.auth.user import UserInfo

NODE1 = UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))


def pod_on(node: str, uid: str = "u1", **meta) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": uid, **meta},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}}


STORED = {
    ("pods", "default", "p"): pod_on("node-1"),
    ("pods", "default", "q"): pod_on("node-2", uid="u2"),
    ("nodes", "", "node-1"): {"metadata": {"name": "node-1", "uid": "n1"}},
}


def get(resource: str, namespace: str, name: str) -> dict | None:
    return STORED.get((resource, namespace, name))


def attrs(operation: str, resource: str, name: str, *, obj=None, old=None, namespace="default",
          subresource="", group="") -> Attributes:
    return Attributes(user=NODE1, operation=operation, resource=resource, group=group,
                      namespace=namespace, name=name, obj=obj, old=old, subresource=subresource)


def node(name: str, labels=None, taints=None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints} if taints else {}}


def token_request(name="p", uid="u1", **ref) -> dict:
    return {"spec": {"audiences": ["api"], "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": name, "uid": uid, **ref}}}


def mirror(**over) -> dict:
    body = pod_on("node-1", annotations={"kubernetes.io/config.mirror": "x"},
                  ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "node-1",
                                    "uid": "n1", "controller": True}])
    body["metadata"].update(over)
    return body


CASES = [
    # nodes
    ("update own node", attrs(UPDATE, "nodes", "node-1", obj=node("node-1"), old=node("node-1"),
                              namespace=""), None),
    ("status of own node", attrs(UPDATE, "nodes", "node-1", obj=node("node-1"),
                                 old=node("node-1"), namespace="", subresource="status"), None),
    ("create own node", attrs(CREATE, "nodes", "node-1", namespace="",
                              obj=node("node-1", {"kubernetes.io/hostname": "node-1"})), None),
    ("modify another node", attrs(UPDATE, "nodes", "node-2", obj=node("node-2"),
                                  old=node("node-2"), namespace=""),
     'node "node-1" is not allowed to modify node "node-2"'),
    ("delete another node", attrs(DELETE, "nodes", "node-2", old=node("node-2"), namespace=""),
     'node "node-1" is not allowed to modify node "node-2"'),
    ("create another node", attrs(CREATE, "nodes", "node-2", obj=node("node-2"), namespace=""),
     'node "node-1" is not allowed to modify node "node-2"'),
    ("change own taints", attrs(UPDATE, "nodes", "node-1", namespace="",
                                obj=node("node-1"),
                                old=node("node-1", taints=[{"key": "k", "effect": "NoSchedule"}])),
     'node "node-1" is not allowed to modify taints'),
    ("restricted label", attrs(UPDATE, "nodes", "node-1", namespace="", old=node("node-1"),
                               obj=node("node-1", {"node-restriction.kubernetes.io/pci": "yes"})),
     "is not allowed to modify labels: node-restriction.kubernetes.io/pci"),
    ("kubelet label", attrs(UPDATE, "nodes", "node-1", namespace="", old=node("node-1"),
                            obj=node("node-1", {"node.kubernetes.io/exclude": "x"})), None),
    ("register with a role label", attrs(CREATE, "nodes", "node-1", namespace="",
                                         obj=node("node-1", {"node-role.kubernetes.io/master": ""})),
     'node "node-1" is not allowed to set the following labels: node-role.kubernetes.io/master'),
    # pods
    ("status of own pod", attrs(UPDATE, "pods", "p", subresource="status",
                                obj=pod_on("node-1"), old=pod_on("node-1")), None),
    ("status of another node's pod", attrs(UPDATE, "pods", "q", subresource="status",
                                           obj=pod_on("node-2"), old=pod_on("node-2")),
     'node "node-1" can only update pod status for pods with spec.nodeName set to itself'),
    ("status of an unbound pod", attrs(UPDATE, "pods", "q", subresource="status",
                                       obj=pod_on(""), old=pod_on("")),
     'node "node-1" can only update pod status for pods with spec.nodeName set to itself'),
    ("labels through status", attrs(UPDATE, "pods", "p", subresource="status",
                                    obj=pod_on("node-1", labels={"a": "b"}), old=pod_on("node-1")),
     'node "node-1" cannot update labels through pod status'),
    ("delete own pod", attrs(DELETE, "pods", "p", old=pod_on("node-1")), None),
    ("delete another node's pod", attrs(DELETE, "pods", "q", old=pod_on("node-2")),
     'node "node-1" can only delete pods with spec.nodeName set to itself'),
    ("update a pod", attrs(UPDATE, "pods", "p", obj=pod_on("node-1"), old=pod_on("node-1")),
     'unexpected operation "UPDATE", node "node-1" can only create and delete mirror pods'),
    ("bind a pod", attrs(CREATE, "pods", "q", subresource="binding",
                         obj={"target": {"name": "node-1"}}),
     "unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed"),
    ("create a plain pod", attrs(CREATE, "pods", "p", obj=pod_on("node-1")),
     'pod does not have "kubernetes.io/config.mirror" annotation, node "node-1" can only '
     "create mirror pods"),
    ("create a mirror pod", attrs(CREATE, "pods", "p", obj=mirror()), None),
    ("mirror pod owned by another", attrs(CREATE, "pods", "p", obj=mirror(ownerReferences=[
        {"apiVersion": "v1", "kind": "Node", "name": "node-2", "uid": "n2", "controller": True}])),
     'node "node-1" can only create pods with an owner reference set to itself'),
    ("mirror pod with a stale node uid", attrs(CREATE, "pods", "p", obj=mirror(ownerReferences=[
        {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "old", "controller": True}])),
     "node node-1 UID mismatch: expected old got n1"),
    # leases
    ("own lease", attrs(UPDATE, "leases", "node-1", group="coordination.k8s.io",
                        namespace="kube-node-lease", obj={}, old={}), None),
    ("create own lease", attrs(CREATE, "leases", "", group="coordination.k8s.io",
                               namespace="kube-node-lease",
                               obj={"metadata": {"name": "node-1"}}), None),
    ("another node's lease", attrs(UPDATE, "leases", "node-2", group="coordination.k8s.io",
                                   namespace="kube-node-lease", obj={}, old={}),
     "can only access node lease with the same name as the requesting node"),
    ("lease elsewhere", attrs(CREATE, "leases", "node-1", group="coordination.k8s.io",
                              namespace="kube-system", obj={"metadata": {"name": "node-1"}}),
     'can only access leases in the "kube-node-lease" system namespace'),
    # serviceaccount tokens
    ("token for own pod", attrs(CREATE, "serviceaccounts", "default", subresource="token",
                                obj=token_request()), None),
    ("token for another node's pod", attrs(CREATE, "serviceaccounts", "default",
                                           subresource="token", obj=token_request("q", "u2")),
     "node requested token bound to a pod scheduled on a different node"),
    ("unbound token", attrs(CREATE, "serviceaccounts", "default", subresource="token",
                            obj={"spec": {"audiences": ["api"]}}),
     "node requested token not bound to a pod"),
    ("token bound without uid", attrs(CREATE, "serviceaccounts", "default",
                                      subresource="token", obj=token_request(uid="")),
     "node requested token with a pod binding without a uid"),
    ("token for a recreated pod", attrs(CREATE, "serviceaccounts", "default",
                                        subresource="token", obj=token_request(uid="old")),
     "the UID in the bound object reference (old) does not match the UID in record. The "
     "object might have been deleted and then recreated"),
    # everything else is the authorizer's business
    ("services", attrs(CREATE, "services", "s", obj={}), None),
]


@pytest.mark.parametrize(("request_attrs", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_decide(request_attrs, reason):
    assert decide("node-1", request_attrs, get) == reason


def test_token_for_a_missing_pod_is_not_found():
    with pytest.raises(Missing):
        decide("node-1", attrs(CREATE, "serviceaccounts", "default", subresource="token",
                               obj=token_request("gone")), get)


def test_forbidden_labels():
    assert forbidden_labels({"kubernetes.io/hostname", "app", "example.com/x",
                             "kubelet.kubernetes.io/y", "foo.node-restriction.kubernetes.io/z",
                             "k8s.io/a"}) == ["foo.node-restriction.kubernetes.io/z", "k8s.io/a"]


def test_forbidden_message_names_the_object():
    err = attrs(UPDATE, "nodes", "node-2", namespace="").forbidden(
        'node "node-1" is not allowed to modify node "node-2"')
    assert err.code == 403
    assert err.message == ('nodes "node-2" is forbidden: node "node-1" is not allowed to '
                           'modify node "node-2"')
    assert err.details == {"name": "node-2", "kind": "nodes"}
