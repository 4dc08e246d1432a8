"""Who may do what around garbage collection: the collector's bootstrap grants, and
OwnerReferencesPermissionEnforcement's decisions (against the real RBAC authorizer)."""

from __future__ import annotations

import pytest

from apiserver.admission import CREATE, UPDATE, Attributes
from apiserver.admission.ownerreferences import (
    OwnerReferencesPermissionEnforcement,
    newly_blocking,
)
from apiserver.auth import policy, rbac
from apiserver.auth.filters import Authorization
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo
from apiserver.errors import Forbidden

CM = UserInfo("system:kube-controller-manager", ("system:authenticated",))
OLIVE = UserInfo("olive", ("system:authenticated",))


def res(verb: str, resource: str, group: str = "", sub: str = "", ns: str = "a",
        name: str = "x") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group=group, resource=resource,
                       subresource=sub, namespace=ns, name=name)


def authz(*extra_roles: dict, bindings: tuple[dict, ...] = ()) -> Authorization:
    a = Authorization()
    a.index.replace({rbac.CLUSTER_ROLES: policy.cluster_roles() + list(extra_roles),
                     rbac.CLUSTER_ROLE_BINDINGS: policy.cluster_role_bindings() + list(bindings)})
    return a


@pytest.mark.parametrize(("info", "allowed"), [
    (res("delete", "pods"), True),
    (res("delete", "replicasets", "apps"), True),
    (res("patch", "deployments", "apps"), True),
    (res("watch", "clusterrolebindings", "rbac.authorization.k8s.io", ns="", name=""), True),
    (res("update", "services", sub="finalizers"), True),  # blockOwnerDeletion on slices
    (res("update", "services"), False),  # patch yes, update no: the collector only patches
    (res("create", "services"), False),  # the collector creates nothing
])
def test_the_controller_manager_can_collect_garbage(info: RequestInfo, allowed: bool):
    assert authz().authorize(CM, info).allowed is allowed


def _pod(refs: list[dict] | None) -> dict:
    return {"metadata": {"name": "p", "namespace": "a", "ownerReferences": refs or []}}


def _attrs(operation: str, new: dict, old: dict | None = None) -> Attributes:
    return Attributes(OLIVE, operation, "pods", "", "a", "p", new, old)


REF = {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u1"}
BLOCK = {**REF, "blockOwnerDeletion": True}


def olive_may(*rules: dict) -> Authorization:
    role = {"kind": "ClusterRole", "metadata": {"name": "olive"}, "rules": list(rules)}
    binding = {"kind": "ClusterRoleBinding", "metadata": {"name": "olive"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "olive"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "olive"}]}
    return authz(role, bindings=(binding,))


def test_references_need_delete_on_the_object():
    plugin = OwnerReferencesPermissionEnforcement(olive_may(
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "update"]}).authorize)
    plugin.validate(_attrs(CREATE, _pod(None)), None)  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="can't delete"):
        plugin.validate(_attrs(CREATE, _pod([REF])), None)  # type: ignore[arg-type]
    # an update that leaves them as they were is not judged
    plugin.validate(_attrs(UPDATE, _pod([REF]), _pod([REF])), None)  # type: ignore[arg-type]


def test_block_owner_deletion_needs_update_on_the_owners_finalizers():
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete"]}]
    plugin = OwnerReferencesPermissionEnforcement(olive_may(*rules).authorize)
    plugin.validate(_attrs(CREATE, _pod([REF])), None)  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="can't set finalizers on"):
        plugin.validate(_attrs(CREATE, _pod([BLOCK])), None)  # type: ignore[arg-type]
    unknown = {**BLOCK, "apiVersion": "example.com/v1", "kind": "Widget"}
    with pytest.raises(Forbidden, match="cannot find RESTMapping"):
        plugin.validate(_attrs(CREATE, _pod([unknown])), None)  # type: ignore[arg-type]
    allowed = OwnerReferencesPermissionEnforcement(olive_may(*rules, {
        "apiGroups": [""], "resources": ["services/finalizers"], "verbs": ["update"],
        "resourceNames": ["web"]}).authorize)
    allowed.validate(_attrs(CREATE, _pod([BLOCK])), None)  # type: ignore[arg-type]


def test_only_new_blocking_references_are_judged():
    assert newly_blocking([BLOCK], [BLOCK]) == []
    assert newly_blocking([BLOCK], [REF]) == [BLOCK]
    assert newly_blocking([REF], []) == []
