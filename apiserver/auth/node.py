"""The Node authorizer: what a node agent may do because of the pods bound to it.

Kubernetes' Node authorizer keeps a graph of pods and what they reference and lets
``system:node:<name>`` (in ``system:nodes``) reach an object only through a pod
bound to that node. miniplane's nodes need one such thing: a ServiceAccount token
for a pod (``create serviceaccounts/token``), allowed only for ServiceAccounts of
pods whose ``spec.nodeName`` is that node. It also grants, as Kubernetes' does,
the node's own heartbeat Lease in ``kube-node-lease`` (get, create, update, patch,
delete; a create's name is NodeRestriction's to check). Everything else a node may
do is the ``system:node`` ClusterRole's (RBAC), and which Node and Pods it may
write is NodeRestriction admission's. It may get, list and watch one ConfigMap or
Secret by name (``fieldSelector=metadata.name=…`` for the lists) when a pod bound to
it refers to that object (``apimachinery.podrefs``), as Kubernetes' does for the
kubelet's volumes and environment.

``PodIndex`` is the graph's miniplane-sized part: pod → (node, ServiceAccount,
ConfigMaps and Secrets), counted per (namespace, object, node); it is fed from the committed log
like the RBAC index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery.podrefs import CONFIGMAPS, SECRETS, pod_references
from apiserver.auth.authorizer import Decision, Verdict
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo, node_name

PODS = "pods"
NODE_LEASE_NAMESPACE = "kube-node-lease"
LEASE_VERBS = ("get", "create", "update", "patch", "delete")
DEFAULT_SERVICE_ACCOUNT = "default"
REFERENCE_VERBS = ("get", "list", "watch")


def pod_edge(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(node, ServiceAccount) of a bound pod; None while it is unscheduled."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return None
    node = spec.get("nodeName")
    if not isinstance(node, str) or not node:
        return None
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
    return node, str(sa)


class PodIndex:
    """Which ServiceAccounts the pods on each node use."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], tuple[str, str]] = {}
        self._edges: Counter[tuple[str, str, str]] = Counter()  # (ns, sa, node)
        self._refs: dict[tuple[str, str], set[tuple[str, str, str, str]]] = {}
        self._ref_edges: Counter[tuple[str, str, str, str]] = Counter()  # (ns, res, name, node)

    def replace(self, pods: Iterable[Mapping[str, Any]]) -> None:
        self._pods, self._edges = {}, Counter()
        self._refs, self._ref_edges = {}, Counter()
        for pod in pods:
            meta = pod.get("metadata") or {}
            self.apply(str(meta.get("namespace") or ""), str(meta.get("name") or ""), pod)

    def apply(self, namespace: str, name: str, pod: Mapping[str, Any] | None) -> None:
        key = (namespace, name)
        old = self._pods.pop(key, None)
        if old is not None:
            edge = (namespace, old[1], old[0])
            self._edges[edge] -= 1
            if self._edges[edge] <= 0:
                del self._edges[edge]
        for ref in self._refs.pop(key, set()):
            self._ref_edges[ref] -= 1
            if self._ref_edges[ref] <= 0:
                del self._ref_edges[ref]
        new = pod_edge(pod) if pod is not None else None
        if new is not None:
            self._pods[key] = new
            self._edges[(namespace, new[1], new[0])] += 1
            refs = {(namespace, resource, ref_name, new[0])
                    for resource, ref_name in pod_references(pod or {})}
            if refs:
                self._refs[key] = refs
                self._ref_edges.update(refs)

    def node_runs_service_account(self, node: str, namespace: str, sa: str) -> bool:
        return self._edges.get((namespace, sa, node), 0) > 0

    def node_references(self, node: str, namespace: str, resource: str, name: str) -> bool:
        return self._ref_edges.get((namespace, resource, name, node), 0) > 0


@dataclass
class NodeAuthorizer:
    pods: PodIndex

    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict:
        node = node_name(user)
        if node is None or not info.is_resource_request:
            return Verdict(Decision.NO_OPINION)
        if info.api_group == "" and info.resource == "serviceaccounts":
            return self._service_account(node, info)
        if info.api_group == "" and info.resource in (CONFIGMAPS, SECRETS):
            return self._referenced(node, info)
        if info.api_group == "coordination.k8s.io" and info.resource == "leases":
            return self._lease(node, info)
        return Verdict(Decision.NO_OPINION)

    @staticmethod
    def _lease(node: str, info: RequestInfo) -> Verdict:
        """The node's own Lease only: no list or watch, no other node's lease."""
        if info.verb not in LEASE_VERBS:
            return Verdict(Decision.NO_OPINION,
                           "can only get, create, update, patch, or delete a node lease")
        if info.namespace != NODE_LEASE_NAMESPACE:
            return Verdict(Decision.NO_OPINION, "can only access leases in the "
                           f'"{NODE_LEASE_NAMESPACE}" system namespace')
        if info.verb != "create" and info.name != node:
            return Verdict(Decision.NO_OPINION,
                           "can only access node lease with the same name as the requesting node")
        return Verdict(Decision.ALLOW)

    def _service_account(self, node: str, info: RequestInfo) -> Verdict:
        """``get`` one ServiceAccount, or ``create`` its ``token``; nothing else (no
        list or watch: a node learns of no ServiceAccount but its pods')."""
        if info.verb == "get" and not info.subresource:
            if not info.namespace or not info.name:
                return Verdict(Decision.NO_OPINION,
                               "can only read namespaced object of this type")
        elif info.verb != "create" or not info.name:
            return Verdict(Decision.NO_OPINION,
                           "can only create tokens for individual service accounts")
        elif info.subresource != "token":
            return Verdict(Decision.NO_OPINION,
                           "can only create token subresource of serviceaccount")
        if self.pods.node_runs_service_account(node, info.namespace, info.name):
            return Verdict(Decision.ALLOW)
        return Verdict(Decision.NO_OPINION,
                       f"no relationship found between node '{node}' and this object")

    def _referenced(self, node: str, info: RequestInfo) -> Verdict:
        """One ConfigMap or Secret by name (a list or watch names it by field selector),
        read only, and only if a pod bound to the node refers to it."""
        if info.verb not in REFERENCE_VERBS or info.subresource:
            return Verdict(Decision.NO_OPINION, "can only get, list, or watch individual "
                           f"{info.resource}")
        if not info.namespace or not info.name:
            return Verdict(Decision.NO_OPINION,
                           "can only read namespaced object of this type by name")
        if self.pods.node_references(node, info.namespace, info.resource, info.name):
            return Verdict(Decision.ALLOW)
        return Verdict(Decision.NO_OPINION,
                       f"no relationship found between node '{node}' and this object")
