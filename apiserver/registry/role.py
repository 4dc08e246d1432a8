"""Roles (rbac.authorization.k8s.io/v1): holds rules; writing one is refused when it grants more than the writer holds."""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.auth import escalation
from apiserver.registry.strategy import Strategy, WriteContext
from apiserver.validation import Rules, rbac


class RoleStrategy(Strategy):
    kind = kinds.ROLE
    rules = Rules(rbac.is_path_segment_name, rbac.validate_role)
    table = tables.ROLE_TABLE
    openapi_root = "V1Role"

    def begin_create(self, ctx: WriteContext, obj: dict) -> None:
        escalation.check_role(ctx.txn, ctx.user, obj, resource="roles")

    def begin_update(self, ctx: WriteContext, new: dict, old: dict) -> None:
        escalation.check_role(ctx.txn, ctx.user, new, resource="roles")


STRATEGY = RoleStrategy()
