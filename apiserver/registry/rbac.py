"""The four RBAC kinds (rbac.authorization.k8s.io/v1): Role and ClusterRole hold
rules, RoleBinding and ClusterRoleBinding grant a role to subjects.

They differ only in scope, validation and columns; what they share is Kubernetes'
escalation check, inside the write's transaction: a role may be written only by
someone who holds every rule it grants (or may ``escalate``), a binding only by
someone who holds the role (or may ``bind`` it) — ``apiserver/auth/escalation.py``.
"""

from __future__ import annotations

from typing import ClassVar

from apimachinery import kinds, tables
from apiserver.auth import escalation
from apiserver.registry.strategy import Strategy, WriteContext
from apiserver.validation import Rules, rbac


class _RBACStrategy(Strategy):
    binding: ClassVar[bool] = False  # grants a role (else holds rules)

    def _check(self, ctx: WriteContext, obj: dict) -> None:
        check = escalation.check_binding if self.binding else escalation.check_role
        check(ctx.txn, ctx.user, obj, resource=self.kind.plural)

    def begin_create(self, ctx: WriteContext, obj: dict) -> None:
        self._check(ctx, obj)

    def begin_update(self, ctx: WriteContext, new: dict, old: dict) -> None:
        self._check(ctx, new)


class RoleStrategy(_RBACStrategy):
    kind = kinds.ROLE
    rules = Rules(rbac.is_path_segment_name, rbac.validate_role)
    table = tables.ROLE_TABLE
    openapi_root = "V1Role"


class ClusterRoleStrategy(_RBACStrategy):
    kind = kinds.CLUSTERROLE
    rules = Rules(rbac.is_path_segment_name, rbac.validate_cluster_role)
    table = tables.ROLE_TABLE
    openapi_root = "V1ClusterRole"


class RoleBindingStrategy(_RBACStrategy):
    kind = kinds.ROLEBINDING
    rules = Rules(rbac.is_path_segment_name, rbac.validate_role_binding)
    table = tables.ROLE_BINDING_TABLE
    openapi_root = "V1RoleBinding"
    binding = True


class ClusterRoleBindingStrategy(_RBACStrategy):
    kind = kinds.CLUSTERROLEBINDING
    rules = Rules(rbac.is_path_segment_name, rbac.validate_cluster_role_binding)
    table = tables.ROLE_BINDING_TABLE
    openapi_root = "V1ClusterRoleBinding"
    binding = True


ROLES = RoleStrategy()
CLUSTER_ROLES = ClusterRoleStrategy()
ROLE_BINDINGS = RoleBindingStrategy()
CLUSTER_ROLE_BINDINGS = ClusterRoleBindingStrategy()
