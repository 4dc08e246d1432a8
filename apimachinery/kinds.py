"""The resource kinds miniplane serves: one table of facts shared by server and clients.

The API server builds its routes and discovery documents from these entries (each
served kind's behaviour is its strategy, ``apiserver/registry/<kind>.py``, listed in
``apiserver.resources``); mpctl and the informer use them to turn ``svc`` or
``endpointslices`` into a URL. Adding a kind starts here (``docs/adding-a-kind.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    """What a client needs to know about one resource type."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = field(
        default=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """URL prefix of the group-version: ``/api/v1`` or ``/apis/<group>/<version>``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """Collection URL; for a namespaced kind without a namespace, the all-namespace list."""
        if self.namespaced and namespace:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item_path(self, name: str, namespace: str | None = None, subresource: str = "") -> str:
        path = f"{self.collection_path(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path


NAMESPACE = Kind("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
                 subresources=("status", "finalize"))
NODE = Kind("", "v1", "Node", "nodes", "node", False, ("no",), subresources=("status",))
POD = Kind("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",), subresources=("status",))
SERVICE = Kind("", "v1", "Service", "services", "service", True, ("svc",), ("all",),
               subresources=("status",))
ENDPOINTSLICE = Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices",
                     "endpointslice", True)
EVENT = Kind("", "v1", "Event", "events", "event", True, ("ev",))
SERVICEACCOUNT = Kind("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True,
                      ("sa",))
# Leader election and node heartbeats (Kubernetes has no short name for it).
LEASE = Kind("coordination.k8s.io", "v1", "Lease", "leases", "lease", True)
ENDPOINTS = Kind("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",))
# Workloads: /scale is their replica count as an autoscaling/v1 Scale (apiserver/scale.py).
REPLICASET = Kind("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",),
                  ("all",), subresources=("status", "scale"))
DEPLOYMENT = Kind("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",),
                  ("all",), subresources=("status", "scale"))
# Configuration consumed by pods as environment and files (the node agent reads them).
CONFIGMAP = Kind("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",))
SECRET = Kind("", "v1", "Secret", "secrets", "secret", True)
# Reviews are asked, not stored: create is their only verb.
SELFSUBJECTREVIEW = Kind("authentication.k8s.io", "v1", "SelfSubjectReview",
                         "selfsubjectreviews", "selfsubjectreview", False, verbs=("create",))
TOKENREVIEW = Kind("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview",
                   False, verbs=("create",))

RBAC = "rbac.authorization.k8s.io"
ROLE = Kind(RBAC, "v1", "Role", "roles", "role", True)
CLUSTERROLE = Kind(RBAC, "v1", "ClusterRole", "clusterroles", "clusterrole", False)
ROLEBINDING = Kind(RBAC, "v1", "RoleBinding", "rolebindings", "rolebinding", True)
CLUSTERROLEBINDING = Kind(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings",
                          "clusterrolebinding", False)
# authorization.k8s.io reviews: create-only, answered in status, never stored.
AUTHZ = "authorization.k8s.io"
SUBJECTACCESSREVIEW = Kind(AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews",
                           "subjectaccessreview", False, verbs=("create",))
SELFSUBJECTACCESSREVIEW = Kind(AUTHZ, "v1", "SelfSubjectAccessReview",
                               "selfsubjectaccessreviews", "selfsubjectaccessreview", False,
                               verbs=("create",))
SELFSUBJECTRULESREVIEW = Kind(AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                              "selfsubjectrulesreview", False, verbs=("create",))
LOCALSUBJECTACCESSREVIEW = Kind(AUTHZ, "v1", "LocalSubjectAccessReview",
                                "localsubjectaccessreviews", "localsubjectaccessreview", True,
                                verbs=("create",))
REVIEWS = (SUBJECTACCESSREVIEW, SELFSUBJECTACCESSREVIEW, SELFSUBJECTRULESREVIEW,
           LOCALSUBJECTACCESSREVIEW)

KINDS: tuple[Kind, ...] = (NAMESPACE, NODE, POD, SERVICE, ENDPOINTSLICE, EVENT, SERVICEACCOUNT,
                           LEASE, ENDPOINTS, REPLICASET, DEPLOYMENT, CONFIGMAP, SECRET,
                           SELFSUBJECTREVIEW, TOKENREVIEW,
                           ROLE, CLUSTERROLE, ROLEBINDING, CLUSTERROLEBINDING, *REVIEWS)


class UnknownKind(LookupError):
    """Raised when a name matches no kind; its message is fit for a user."""


def lookup(name: str) -> Kind:
    """Resolve what a user types (``svc``, ``Service``, ``services``, ``endpointslice``).

    A ``.group`` suffix is accepted (``endpointslices.discovery.k8s.io``).
    """
    wanted = name.strip().lower()
    base, _, group = wanted.partition(".")
    for k in KINDS:
        if group and group != k.group:
            continue
        if base in (k.plural, k.singular, k.kind.lower()) or base in k.short_names:
            return k
    raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')


def by_kind(api_version: str, kind: str) -> Kind:
    """Find the entry for an object's ``apiVersion`` and ``kind`` (as in YAML manifests)."""
    for k in KINDS:
        if k.kind == kind and k.api_version == api_version:
            return k
    raise UnknownKind(f'no kind "{kind}" is registered for version "{api_version}"')
