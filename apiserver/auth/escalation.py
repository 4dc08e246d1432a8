"""Escalation prevention: nobody grants through RBAC what they do not hold.

As Kubernetes' RBAC storage (``pkg/registry/rbac/*/policybased``): creating or
updating a Role/ClusterRole is allowed when the writer already holds every rule in
it (in that namespace, or cluster-wide for a ClusterRole) or may ``escalate``
roles; a ClusterRole with an ``aggregationRule`` needs full authority (or
``escalate``). A RoleBinding/ClusterRoleBinding is allowed when the writer holds
every rule of the role it refers to or may ``bind`` that role. Members of
``system:masters`` may do anything; writes without a user (the server's own
bootstrap) are not checked.

The writer's rules are read inside the write's transaction (these writes are
rare, and it sees the writes just before it), with the same rule matching the
authorizer uses.
"""

from __future__ import annotations

from typing import Any

from apiserver.auth import rbac
from apiserver.auth.authorizer import forbidden_error
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import MASTERS, UserInfo
from apiserver.storage.backend import Txn

FULL_AUTHORITY = (rbac.rule(["*"], ["*"], ["*"]), rbac.rule(["*"], urls=["*"]))


def _applies(binding: rbac.Binding, user: UserInfo) -> bool:
    keys = set(rbac.user_keys(user))
    return any(s in keys for s in binding.subjects)


def rules_in_txn(txn: Txn, user: UserInfo, namespace: str) -> list[rbac.PolicyRule]:
    """Every rule ``user`` holds in ``namespace`` ("" for cluster-wide), as stored now."""
    bindings = [rbac.binding_of(o) for o in txn.list(rbac.CLUSTER_ROLE_BINDINGS)]
    if namespace:
        bindings += [rbac.binding_of(o) for o in txn.list(rbac.ROLE_BINDINGS, namespace)]
    rules: list[rbac.PolicyRule] = []
    for b in bindings:
        if b is None or not _applies(b, user):
            continue
        role = role_object(txn, b.role.kind, b.namespace, b.role.name)
        if role is not None:
            rules.extend(rbac.rules_of(role))
    return rules


def role_object(txn: Txn, kind: str, namespace: str, name: str) -> dict | None:
    if kind == "ClusterRole":
        return txn.get(rbac.CLUSTER_ROLES, "", name)
    if kind == "Role" and namespace:
        return txn.get(rbac.ROLES, namespace, name)
    return None


def _may(rules: list[rbac.PolicyRule], verb: str, resource: str, namespace: str,
         name: str) -> bool:
    info = RequestInfo(verb=verb, is_resource_request=True, api_group=rbac.GROUP,
                       resource=resource, namespace=namespace, name=name)
    return rbac.rules_allow(rules, info)


def _refuse(user: UserInfo, resource: str, name: str,
            missing: list[rbac.PolicyRule]) -> Exception:
    groups = " ".join(f'"{g}"' for g in user.groups)
    text = (f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions '
            "not currently held:\n" + "\n".join(rbac.describe_rule(r) for r in missing))
    return forbidden_error(resource, rbac.GROUP, name, text)


def check_role(txn: Txn, user: UserInfo | None, obj: dict[str, Any], *, resource: str) -> None:
    """Raise Forbidden when ``user`` may not write this Role/ClusterRole."""
    if user is None or MASTERS in user.groups:
        return
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    held = rules_in_txn(txn, user, namespace)
    if _may(held, "escalate", resource, namespace, name):
        return
    if obj.get("aggregationRule") is not None and rbac.uncovered(held, FULL_AUTHORITY):
        raise forbidden_error(resource, rbac.GROUP, name,
                              "must have cluster-admin privileges to use the aggregationRule")
    missing = rbac.uncovered(held, rbac.rules_of(obj))
    if missing:
        raise _refuse(user, resource, name, missing)


def check_binding(txn: Txn, user: UserInfo | None, obj: dict[str, Any], *,
                  resource: str) -> None:
    """Raise Forbidden when ``user`` may not write this RoleBinding/ClusterRoleBinding."""
    if user is None or MASTERS in user.groups:
        return
    binding = rbac.binding_of(obj)
    if binding is None:
        return  # validation has refused it already
    held = rules_in_txn(txn, user, binding.namespace)
    ref_resource = "clusterroles" if binding.role.kind == "ClusterRole" else "roles"
    if _may(held, "bind", ref_resource, binding.namespace, binding.role.name):
        return
    role = role_object(txn, binding.role.kind, binding.namespace, binding.role.name)
    if role is None:
        raise forbidden_error(resource, rbac.GROUP, binding.name,
                              f'{ref_resource}.{rbac.GROUP} "{binding.role.name}" not found')
    missing = rbac.uncovered(held, rbac.rules_of(role))
    if missing:
        raise _refuse(user, resource, binding.name, missing)
