"""NodeRestriction: what a node agent (``system:node:<name>``) may write.

The Node authorizer lets a node reach the kinds it needs; this plugin narrows
that to its own objects, as Kubernetes' NodeRestriction does:

- its own Node (create, update, status, delete), without changing its taints or
  labels outside the ones a kubelet sets (``kubernetes.io/hostname`` …,
  ``node.kubernetes.io/*``), and never ``node-restriction.kubernetes.io/*``;
- the status of pods bound to it (``spec.nodeName``), and deleting those pods;
  creating only mirror pods bound to it and owned by its Node;
- its own Lease in ``kube-node-lease``;
- ServiceAccount tokens only bound to a pod running on it.

``decide`` is pure: it gets a lookup for the stored objects it needs and returns
the refusal's reason, or None. The plugin reads through the write's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from apiserver.auth.user import node_name
from apiserver.errors import NotFound

if TYPE_CHECKING:
    from apiserver.storage.store import Txn

NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
# Labels a kubelet sets on its own Node (k8s.io/kubelet/pkg/apis: kubeletLabels).
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"))
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

# (resource key, namespace, name) → the stored object, or None
Lookup = Callable[[str, str, str], dict | None]


class Missing(Exception):
    """An object the decision needs is not stored (answered 404, as Kubernetes does)."""

    def __init__(self, plural: str, name: str) -> None:
        super().__init__(name)
        self.plural, self.name = plural, name


def decide(node: str, attrs: Attributes, get: Lookup) -> str | None:
    """Why node ``node`` may not make this write, or None if it may."""
    if attrs.group == "coordination.k8s.io" and attrs.resource == "leases":
        return _lease(node, attrs)
    if attrs.group:
        return None
    if attrs.resource == "pods":
        return _pod(node, attrs, get)
    if attrs.resource == "nodes":
        return _node(node, attrs)
    if attrs.resource == "serviceaccounts":
        return _token(node, attrs, get)
    return None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _spec_node(pod: dict | None) -> Any:
    return _dict(_dict(pod).get("spec")).get("nodeName")


# ---------------------------------------------------------------------------- pods


def _pod(node: str, attrs: Attributes, get: Lookup) -> str | None:
    if attrs.subresource == "status":
        if attrs.operation != UPDATE:
            return f'unexpected operation "{attrs.operation}"'
        if _spec_node(attrs.old) != node:
            return f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
        labels = _dict(_dict(attrs.obj).get("metadata")).get("labels") or {}
        if labels != (_dict(_dict(attrs.old).get("metadata")).get("labels") or {}):
            return f'node "{node}" cannot update labels through pod status'
        return None
    if attrs.subresource:
        return (f'unexpected pod subresource "{attrs.subresource}", only \'status\' and '
                "'eviction' are allowed")
    if attrs.operation == DELETE:
        if _spec_node(attrs.old) != node:
            return f'node "{node}" can only delete pods with spec.nodeName set to itself'
        return None
    if attrs.operation == CREATE:
        return _mirror_pod(node, _dict(attrs.obj), get)
    return (f'unexpected operation "{attrs.operation}", node "{node}" can only create and '
            "delete mirror pods")


def _mirror_pod(node: str, pod: dict, get: Lookup) -> str | None:
    meta, spec = _dict(pod.get("metadata")), _dict(pod.get("spec"))
    if MIRROR_ANNOTATION not in _dict(meta.get("annotations")):
        return (f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only '
                "create mirror pods")
    if spec.get("nodeName") != node:
        return f'node "{node}" can only create pods with spec.nodeName set to itself'
    refs = meta.get("ownerReferences")
    owners: list = refs if isinstance(refs, list) else []
    if len(owners) > 1:
        return f'node "{node}" can only create pods with a single owner reference set to itself'
    owner = _dict(owners[0]) if owners else {}
    if not owners or owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" \
            or owner.get("name") != node:
        return f'node "{node}" can only create pods with an owner reference set to itself'
    if owner.get("controller") is not True:
        return f'node "{node}" can only create pods with a controller owner reference set to itself'
    if owner.get("blockOwnerDeletion") is True:
        return f'node "{node}" must not set blockOwnerDeletion on an owner reference'
    stored = get("nodes", "", node)
    if stored is None:
        raise Missing("nodes", node)
    uid = _dict(stored.get("metadata")).get("uid")
    if owner.get("uid") != uid:
        return f"node {node} UID mismatch: expected {owner.get('uid')} got {uid}"
    if spec.get("serviceAccountName"):
        return f'node "{node}" can not create pods that reference a service account'
    volumes = [_dict(v) for v in spec.get("volumes") or [] if isinstance(v, dict)]
    if any(v.get("secret") is not None for v in volumes):
        return f'node "{node}" can not create pods that reference secrets'
    if any(v.get("configMap") is not None for v in volumes):
        return f'node "{node}" can not create pods that reference configmaps'
    if any(v.get("persistentVolumeClaim") is not None for v in volumes):
        return f'node "{node}" can not create pods that reference persistentvolumeclaims'
    return None


# ---------------------------------------------------------------------------- nodes


def _node(node: str, attrs: Attributes) -> str | None:
    requested = attrs.name or _dict(_dict(attrs.obj).get("metadata")).get("name")
    if requested != node:
        return f'node "{node}" is not allowed to modify node "{requested}"'
    if attrs.operation == CREATE:
        labels = _labels(attrs.obj)
        forbidden = forbidden_labels(changed_labels(labels, {}))
        if forbidden:
            return f'node "{node}" is not allowed to set the following labels: {", ".join(forbidden)}'
    if attrs.operation == UPDATE:
        taints = _dict(_dict(attrs.obj).get("spec")).get("taints") or []
        old_taints = _dict(_dict(attrs.old).get("spec")).get("taints") or []
        if taints != old_taints:
            return f'node "{node}" is not allowed to modify taints'
        forbidden = forbidden_labels(changed_labels(_labels(attrs.obj), _labels(attrs.old)))
        if forbidden:
            return f"is not allowed to modify labels: {', '.join(forbidden)}"
    return None


def _labels(obj: dict | None) -> dict:
    return _dict(_dict(_dict(obj).get("metadata")).get("labels"))


def changed_labels(new: Mapping[str, Any], old: Mapping[str, Any]) -> set[str]:
    return {k for k in set(new) | set(old) if new.get(k) != old.get(k) or (k in new) != (k in old)}


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _within(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    return key in KUBELET_LABELS or any(_within(_label_namespace(key), d)
                                        for d in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(keys: set[str]) -> list[str]:
    """Labels a node may not add, change or remove on its own Node (sorted)."""
    out = []
    for key in keys:
        ns = _label_namespace(key)
        restricted = _within(ns, RESTRICTION_LABEL_NAMESPACE)
        kubernetes = _within(ns, "kubernetes.io") or _within(ns, "k8s.io")
        if restricted or (kubernetes and not is_kubelet_label(key)):
            out.append(key)
    return sorted(out)


# ---------------------------------------------------------------------------- leases, tokens


def _lease(node: str, attrs: Attributes) -> str | None:
    if attrs.namespace != NODE_LEASE_NAMESPACE:
        return f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
    name = attrs.name or _dict(_dict(attrs.obj).get("metadata")).get("name")
    if name != node:
        return "can only access node lease with the same name as the requesting node"
    return None


def _token(node: str, attrs: Attributes, get: Lookup) -> str | None:
    if attrs.operation != CREATE or attrs.subresource != "token":
        return None
    ref = _dict(_dict(attrs.obj).get("spec")).get("boundObjectRef")
    if not isinstance(ref, dict) or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" \
            or not ref.get("name"):
        return "node requested token not bound to a pod"
    if not ref.get("uid"):
        return "node requested token with a pod binding without a uid"
    pod = get("pods", attrs.namespace, str(ref["name"]))
    if pod is None:
        raise Missing("pods", str(ref["name"]))
    if ref["uid"] != _dict(pod.get("metadata")).get("uid"):
        return (f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                "in record. The object might have been deleted and then recreated")
    if _spec_node(pod) != node:
        return "node requested token bound to a pod scheduled on a different node"
    return None


# ---------------------------------------------------------------------------- plugin


@dataclass(frozen=True)
class NodeRestriction:
    """The validating plugin; only requests of a node user are looked at."""

    def validate(self, attrs: Attributes, txn: Txn) -> None:
        node = node_name(attrs.user)
        if node is None:
            if attrs.user.name.startswith("system:node:") and "system:nodes" in attrs.user.groups:
                raise attrs.forbidden(f'could not determine node from user "{attrs.user.name}"')
            return
        try:
            reason = decide(node, attrs, txn.get)
        except Missing as gone:
            raise NotFound.of(gone.plural, gone.name) from None
        if reason is not None:
            raise attrs.forbidden(reason)
