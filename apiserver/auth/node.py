"""The Node authorizer: what a node agent may do because of the pods bound to it.

Kubernetes' Node authorizer keeps a graph of pods and what they reference and lets
``system:node:<name>`` (in ``system:nodes``) reach an object only through a pod
bound to that node. miniplane's nodes reach three kinds that way:

- a ServiceAccount of a pod bound to the node: ``get`` it, ``create`` its ``token``;
- a ConfigMap or Secret such a pod references (``apimachinery.podrefs``: env
  ``configMapKeyRef``/``secretKeyRef``, ``envFrom``, ``configMap``/``secret``/
  ``projected`` volumes, volume plugins' secrets, ``imagePullSecrets``): ``get`` it by
  name, or ``list``/``watch`` it narrowed to its name by
  ``fieldSelector=metadata.name=<name>`` (how kubelet watches each one it uses); never
  a list of all of them, never a write.

It also grants, as Kubernetes' does, the node's own heartbeat Lease in
``kube-node-lease`` (get, create, update, patch, delete; a create's name is
NodeRestriction's to check). Everything else a node may do is the ``system:node``
ClusterRole's (RBAC, which grants no ConfigMap or Secret), and which Node and Pods it
may write is NodeRestriction admission's.

``PodIndex`` is the graph's miniplane-sized part: pod → (node, the objects it
references), counted per (namespace, resource, name, node); it is fed from the
committed log like the RBAC index, so a pod's references count from its binding on
and stop with its deletion.
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
READ_VERBS = ("get", "list", "watch")
SERVICEACCOUNTS = "serviceaccounts"
DEFAULT_SERVICE_ACCOUNT = "default"


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


def pod_edges(pod: Mapping[str, Any]) -> tuple[str, frozenset[tuple[str, str]]] | None:
    """(node, {(resource, name)}) of a bound pod: its ServiceAccount and the ConfigMaps
    and Secrets it references; None while it is unscheduled."""
    edge = pod_edge(pod)
    if edge is None:
        return None
    return edge[0], frozenset({(SERVICEACCOUNTS, edge[1]), *pod_references(pod)})


class PodIndex:
    """What the pods on each node use: ServiceAccounts, ConfigMaps, Secrets."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], tuple[str, frozenset[tuple[str, str]]]] = {}
        # (namespace, resource, name, node) → how many pods
        self._edges: Counter[tuple[str, str, str, str]] = Counter()

    def replace(self, pods: Iterable[Mapping[str, Any]]) -> None:
        self._pods, self._edges = {}, Counter()
        for pod in pods:
            meta = pod.get("metadata") or {}
            self.apply(str(meta.get("namespace") or ""), str(meta.get("name") or ""), pod)

    def apply(self, namespace: str, name: str, pod: Mapping[str, Any] | None) -> None:
        key = (namespace, name)
        old = self._pods.pop(key, None)
        if old is not None:
            for resource, name in old[1]:
                edge = (namespace, resource, name, old[0])
                self._edges[edge] -= 1
                if self._edges[edge] <= 0:
                    del self._edges[edge]
        new = pod_edges(pod) if pod is not None else None
        if new is not None:
            self._pods[key] = new
            for resource, name in new[1]:
                self._edges[(namespace, resource, name, new[0])] += 1

    def node_references(self, node: str, namespace: str, resource: str, name: str) -> bool:
        """Whether a pod bound to ``node`` references that object."""
        return self._edges.get((namespace, resource, name, node), 0) > 0

    def node_runs_service_account(self, node: str, namespace: str, sa: str) -> bool:
        return self.node_references(node, namespace, SERVICEACCOUNTS, sa)


@dataclass
class NodeAuthorizer:
    pods: PodIndex

    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict:
        node = node_name(user)
        if node is None or not info.is_resource_request:
            return Verdict(Decision.NO_OPINION)
        if info.api_group == "" and info.resource == "serviceaccounts":
            return self._service_account(node, info)
        if info.api_group == "coordination.k8s.io" and info.resource == "leases":
            return self._lease(node, info)
        if info.api_group == "" and info.resource in (CONFIGMAPS, SECRETS):
            return self._referenced(node, info)
        return Verdict(Decision.NO_OPINION)

    def _referenced(self, node: str, info: RequestInfo) -> Verdict:
        """Read one ConfigMap or Secret a pod bound to the node references (Kubernetes'
        ``authorizeReadNamespacedObject``): get, or list/watch by name."""
        if info.verb not in READ_VERBS:
            return Verdict(Decision.NO_OPINION, "can only read resources of this type")
        if info.subresource:
            return Verdict(Decision.NO_OPINION, "cannot read subresource")
        if not info.namespace:
            return Verdict(Decision.NO_OPINION, "can only read namespaced object of this type")
        if not info.name:
            return Verdict(Decision.NO_OPINION, "No Object name found")
        if self.pods.node_references(node, info.namespace, info.resource, info.name):
            return Verdict(Decision.ALLOW)
        return Verdict(Decision.NO_OPINION,
                       f"no relationship found between node '{node}' and this object")

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
