"""RoleBindings (rbac.authorization.k8s.io/v1): grants a role to subjects; writing one is refused unless the writer holds the role or may bind it."""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.auth import escalation
from apiserver.registry.strategy import Strategy, WriteContext
from apiserver.validation import Rules, rbac


class RoleBindingStrategy(Strategy):
    kind = kinds.ROLEBINDING
    rules = Rules(rbac.is_path_segment_name, rbac.validate_role_binding)
    table = tables.ROLE_BINDING_TABLE
    openapi_root = "V1RoleBinding"

    def begin_create(self, ctx: WriteContext, obj: dict) -> None:
        escalation.check_binding(ctx.txn, ctx.user, obj, resource="rolebindings")

    def begin_update(self, ctx: WriteContext, new: dict, old: dict) -> None:
        escalation.check_binding(ctx.txn, ctx.user, new, resource="rolebindings")


STRATEGY = RoleBindingStrategy()
