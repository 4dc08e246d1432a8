"""The bootstrap RBAC policy: ClusterRoles and ClusterRoleBindings every server keeps.

As kube-apiserver's ``bootstrap-roles`` post-start hook: the API server reconciles
these at start and then periodically (``State.bootstrap``): a missing one is
created, and one whose ``rbac.authorization.kubernetes.io/autoupdate`` annotation
is not ``"false"`` gets back any rule, subject or label it lost. ``reconciled`` is
the pure part: (bootstrap object, stored object) → the object to write, or None.

The roles name Kubernetes' resources, restricted to what miniplane serves (plus
the few core ones manifests commonly grant, which cost nothing). The components'
roles list exactly what they call:

- ``system:node``: the node agent (``nodeagent/``): its Node and Node status, pods
  on it (read, status, delete), Services and EndpointSlices (proxy), Events.
  ServiceAccounts, their tokens and Leases are not here: the Node authorizer
  grants ``get`` and ``create serviceaccounts/token`` only for the ServiceAccounts
  of pods bound to the node, reads of the ConfigMaps and Secrets those pods
  reference, and the node's own Lease in ``kube-node-lease``
  (``apiserver/auth/node.py``).
- Secrets: ``edit`` (so ``admin``) reads and writes them, ``view`` does not read
  them (it would read ServiceAccount tokens and so escalate), as in Kubernetes.
- ``system:kube-controller-manager``: ``controllers/`` (EndpointSlices, Endpoints,
  ReplicaSets (creating and deleting pods) and Deployments with their status, scheduler
  with ``pods/binding``, node IPAM and lifecycle, pod GC, ServiceAccounts, events,
  its leader-election Lease — ``create`` any, ``get``/``update`` the one named
  ``kube-controller-manager``, as Kubernetes grants —, ClusterRole aggregation, which needs ``escalate``,
  ReplicaSets (pods: create, adopt, delete) and Deployments (ReplicaSets: create,
  resize, adopt, delete old history; the revision annotation; both kinds' status)).
- ``system:miniplane-dnsd``: what ``dnsd/`` watches.
- ``system:miniplane-node-lifecycle``, bound to the controller-manager too: list
  and watch Leases (the node lifecycle controller's node Lease informer).
- ``system:controller:generic-garbage-collector``, bound to the controller-manager
  too: read, patch and delete everything (the garbage collector).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apimachinery.rbac import (
    AGGREGATE_TO_ADMIN,
    AGGREGATE_TO_EDIT,
    AGGREGATE_TO_VIEW,
    API_VERSION,
    AUTOUPDATE,
    aggregated_rules,
)
from apiserver.auth.user import (
    AUTHENTICATED,
    MASTERS,
    NODES,
    UNAUTHENTICATED,
)

CONTROLLER_MANAGER = "system:kube-controller-manager"
CONTROLLER_LEASE = "kube-controller-manager"  # its leader-election Lease (kube-system)
DNSD = "system:miniplane-dnsd"
MONITORING = "system:monitoring"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL_VERBS = READ + WRITE


def r(verbs: list[str], resources: list[str], groups: tuple[str, ...] = ("",),
      names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": list(groups), "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def urls(verbs: list[str], paths: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "nonResourceURLs": paths}


def _role(name: str, rules: list[dict[str, Any]] | None = None, *,
          labels: dict[str, str] | None = None,
          aggregate_from: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": {AUTOUPDATE: "true"},
                            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults",
                                       **(labels or {})}}
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": meta,
                           "rules": rules or []}
    if aggregate_from is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {aggregate_from: "true"}}]}
    return obj


def _binding(name: str, role: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "annotations": {AUTOUPDATE: "true"},
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": who}
                         for kind, who in subjects]}


DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                  "/openapi/*", "/readyz", "/version", "/version/"]
PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

_ADMIN_PARTS = [
    r(ALL_VERBS, ["roles", "rolebindings"], ("rbac.authorization.k8s.io",)),
    r(["create"], ["localsubjectaccessreviews"], ("authorization.k8s.io",)),
]
_EDIT_PARTS = [
    r(["impersonate"], ["serviceaccounts"]),
    r(WRITE, ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    r(["create"], ["pods/eviction"]),
    # no endpoints: Kubernetes 1.22 took their write from edit (CVE-2021-25740)
    r(WRITE, ["configmaps", "events", "persistentvolumeclaims", "secrets", "serviceaccounts",
              "services", "services/proxy"]),
    r(["create"], ["serviceaccounts/token"]),
    r(READ, ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
             "services/proxy"]),
    r(WRITE, ["endpointslices"], ("discovery.k8s.io",)),
    r(WRITE, ["leases"], ("coordination.k8s.io",)),
    r(WRITE, ["deployments", "deployments/scale", "deployments/rollback", "replicasets",
              "replicasets/scale"], ("apps",)),
]
_VIEW_PARTS = [
    r(READ, ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
             "pods", "pods/log", "pods/status", "replicationcontrollers", "resourcequotas",
             "resourcequotas/status", "serviceaccounts", "services", "services/status"]),
    r(READ, ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
             "pods/status", "replicationcontrollers/status", "resourcequotas",
             "resourcequotas/status"]),
    r(READ, ["namespaces"]),
    r(READ, ["endpointslices"], ("discovery.k8s.io",)),
    r(READ, ["leases"], ("coordination.k8s.io",)),
    r(READ, ["deployments", "deployments/status", "deployments/scale", "replicasets",
             "replicasets/status", "replicasets/scale"], ("apps",)),
]

_NODE_RULES = [
    r(READ, ["nodes"]),
    r(["create", "update", "patch", "delete"], ["nodes"]),
    r(["update", "patch"], ["nodes/status"]),
    r(READ, ["pods"]),
    r(["delete"], ["pods"]),
    r(["update", "patch"], ["pods/status"]),
    r(READ, ["services"]),
    r(READ, ["endpointslices"], ("discovery.k8s.io",)),
    r(["create", "update", "patch"], ["events"]),
    r(["get"], ["namespaces"]),
]

_CONTROLLER_RULES = [
    r(READ, ["services", "namespaces"]),
    r(READ + ["create", "patch", "update", "delete"], ["pods"]),
    r(["create"], ["pods/binding"]),
    r(["patch", "update"], ["pods/status"]),
    r(READ + ["patch", "update"], ["nodes"]),
    r(["patch", "update"], ["nodes/status"]),
    r(READ + ["create", "update", "patch", "delete"], ["endpointslices"], ("discovery.k8s.io",)),
    r(READ + ["create", "update", "delete"], ["endpoints"]),
    r(["create", "patch", "update"], ["events"]),
    r(READ + ["create", "update"], ["serviceaccounts"]),
    r(["create"], ["leases"], ("coordination.k8s.io",)),
    r(["get", "update"], ["leases"], ("coordination.k8s.io",), [CONTROLLER_LEASE]),
    r(READ + ["update", "patch", "escalate"], ["clusterroles"], ("rbac.authorization.k8s.io",)),
    # blockOwnerDeletion on what the controllers make (EndpointSlices → Services, Pods →
    # ReplicaSets …) asks for this (apiserver/admission/ownerreferences.py)
    r(["update"], ["*/finalizers"], ("*",)),
    # the ReplicaSet and Deployment controllers
    r(READ + ["create", "update", "patch", "delete"], ["replicasets"], ("apps",)),
    r(READ + ["patch"], ["deployments"], ("apps",)),
    r(["update"], ["deployments/status", "replicasets/status"], ("apps",)),
]

# The node lifecycle controller's informer on node Leases (kube-node-lease), bound to
# the controller-manager; Kubernetes' controller-manager role grants list and watch
# on everything for its shared informers, this grants them on Leases only.
NODE_LIFECYCLE = "system:miniplane-node-lifecycle"
_NODE_LIFECYCLE_RULES = [r(["list", "watch"], ["leases"], ("coordination.k8s.io",))]

# The garbage collector (``controllers/garbagecollector.py``) watches every kind that
# can own or be owned, patches ownerReferences and finalizers, and deletes dependents:
# Kubernetes' system:controller:generic-garbage-collector rule, bound to the
# controller-manager here (mp-controllers runs every controller as one identity).
GARBAGE_COLLECTOR = "system:controller:generic-garbage-collector"
# Kubernetes grants ``update`` too; this collector only patches, so it is left out.
_GARBAGE_COLLECTOR_RULES = [r(["get", "list", "watch", "patch", "delete"], ["*"], ("*",))]

# The service-lb controller (controllers/servicelb.py) writes LoadBalancer addresses:
# Kubernetes' system:controller:service-controller, bound to the controller-manager
# identity (mp-controllers runs every controller as one). Nobody else who is not an
# admin may write services/status (edit and admin grant services, not their status).
SERVICE_CONTROLLER = "system:controller:service-controller"
_SERVICE_CONTROLLER_RULES = [
    r(READ, ["services"]),
    r(["patch", "update"], ["services/status"]),
    r(["create", "patch", "update"], ["events"]),
]

_DNSD_RULES = [
    r(READ, ["services", "pods", "namespaces"]),
    r(READ, ["endpointslices"], ("discovery.k8s.io",)),
]


def _parts() -> list[dict[str, Any]]:
    return [
        _role("system:aggregate-to-admin", _ADMIN_PARTS, labels={AGGREGATE_TO_ADMIN: "true"}),
        _role("system:aggregate-to-edit", _EDIT_PARTS, labels={AGGREGATE_TO_EDIT: "true"}),
        _role("system:aggregate-to-view", _VIEW_PARTS, labels={AGGREGATE_TO_VIEW: "true"}),
    ]


def cluster_roles() -> list[dict[str, Any]]:
    """Every bootstrap ClusterRole; admin/edit/view with their aggregated rules filled
    from the bootstrap parts (the aggregation controller adds any other part)."""
    roles = [
        _role("cluster-admin", [r(["*"], ["*"], ("*",)), urls(["*"], ["*"])]),
        _role("admin", aggregate_from=AGGREGATE_TO_ADMIN),
        _role("edit", aggregate_from=AGGREGATE_TO_EDIT, labels={AGGREGATE_TO_ADMIN: "true"}),
        _role("view", aggregate_from=AGGREGATE_TO_VIEW, labels={AGGREGATE_TO_EDIT: "true"}),
        *_parts(),
        _role("system:discovery", [urls(["get"], DISCOVERY_URLS)]),
        _role("system:public-info-viewer", [urls(["get"], PUBLIC_URLS)]),
        _role("system:basic-user", [
            r(["create"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
              ("authorization.k8s.io",)),
            r(["create"], ["selfsubjectreviews"], ("authentication.k8s.io",))]),
        _role("system:monitoring", [urls(["get"], ["/healthz", "/healthz/*", "/livez",
                                                   "/livez/*", "/metrics", "/metrics/slis",
                                                   "/readyz", "/readyz/*"])]),
        _role("system:node", _NODE_RULES),
        _role(CONTROLLER_MANAGER, _CONTROLLER_RULES),
        _role(DNSD, _DNSD_RULES),
        _role(NODE_LIFECYCLE, _NODE_LIFECYCLE_RULES),
        _role(GARBAGE_COLLECTOR, _GARBAGE_COLLECTOR_RULES),
        _role(SERVICE_CONTROLLER, _SERVICE_CONTROLLER_RULES),
    ]
    fill_aggregated(roles)
    return roles


def fill_aggregated(roles: list[dict[str, Any]]) -> None:
    """Aggregate in dependency order: view into edit into admin (so admin gets edit's
    and view's rules through edit's labels, as repeated controller passes would)."""
    for _ in range(3):
        for role in roles:
            rules = aggregated_rules(role, roles)
            if rules is not None:
                role["rules"] = rules


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("cluster-admin", "cluster-admin", [("Group", MASTERS)]),
        _binding("system:discovery", "system:discovery", [("Group", AUTHENTICATED)]),
        _binding("system:basic-user", "system:basic-user", [("Group", AUTHENTICATED)]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [("Group", AUTHENTICATED), ("Group", UNAUTHENTICATED)]),
        _binding("system:monitoring", "system:monitoring", [("Group", MONITORING)]),
        _binding("system:node", "system:node", [("Group", NODES)]),
        _binding(CONTROLLER_MANAGER, CONTROLLER_MANAGER, [("User", CONTROLLER_MANAGER)]),
        _binding(DNSD, DNSD, [("User", DNSD)]),
        _binding(NODE_LIFECYCLE, NODE_LIFECYCLE, [("User", CONTROLLER_MANAGER)]),
        _binding(GARBAGE_COLLECTOR, GARBAGE_COLLECTOR, [("User", CONTROLLER_MANAGER)]),
        _binding(SERVICE_CONTROLLER, SERVICE_CONTROLLER, [("User", CONTROLLER_MANAGER)]),
    ]


def _union(have: list[Any], want: Iterable[Any]) -> list[Any]:
    out = list(have)
    for item in want:
        if item not in out:
            out.append(item)
    return out


def reconciled(want: dict[str, Any], have: dict[str, Any] | None) -> dict[str, Any] | None:
    """What to write for bootstrap object ``want`` given the stored ``have``: ``want``
    itself when missing, ``have`` with what it lost when it may be auto-updated, else
    None (nothing to do)."""
    if have is None:
        return want
    meta = have.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    new = {**have, "metadata": {**meta}}
    labels = {**(meta.get("labels") or {}), **want["metadata"].get("labels", {})}
    if labels != (meta.get("labels") or {}):
        new["metadata"]["labels"] = labels
    if "subjects" in want:
        new["subjects"] = _union(have.get("subjects") or [], want["subjects"])
    if "aggregationRule" in want:
        new["aggregationRule"] = want["aggregationRule"]
        # the aggregated rules belong to the aggregation: keep what is there, add ours
    new["rules"] = _union(have.get("rules") or [], want.get("rules") or []) \
        if "rules" in want else have.get("rules")
    if "rules" not in want:
        new.pop("rules", None)
    return None if new == have else new
