"""Services: a ClusterIP and NodePorts allocated in the write's transaction.

The allocation rules themselves are ``apiserver.services.ServiceAllocations``; this
strategy says when they run: on create and update (after validation, so a rejected
Service takes nothing), and on removal (released once the delete commits). A PUT
of a missing Service creates it, and DELETE answers with the deleted Service, as in
Kubernetes.
"""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apiserver.defaults import default_service, drop_type_dependent_fields
from apiserver.patch.schemas import CONDITIONS, METADATA, merge_by, struct
from apiserver.registry.strategy import Strategy, WriteContext
from apiserver.services import keep_allocated_cluster_ip
from apiserver.validation import Rules, service


class ServiceStrategy(Strategy):
    kind = kinds.SERVICE
    rules = Rules(names.is_dns1035_label, service.validate_spec, service.validate_status)
    extra_fields = ("spec.clusterIP", "spec.type")
    create_on_update = True
    return_deleted = True
    table = tables.SERVICE_TABLE
    patch_schema = struct(
        metadata=METADATA,
        spec=struct(ports=merge_by("port")),
        status=struct(conditions=CONDITIONS),
    )
    openapi_root = "V1Service"

    def default(self, obj: dict) -> None:
        default_service(obj)

    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: dict, old: dict) -> None:
        super().prepare_for_update(new, old)
        drop_type_dependent_fields(new, old)
        spec, old_spec = new.get("spec"), old.get("spec")
        if isinstance(spec, dict) and isinstance(old_spec, dict):
            keep_allocated_cluster_ip(spec, old_spec)

    def begin_create(self, ctx: WriteContext, obj: dict) -> None:
        ctx.allocations.assign(ctx.txn, obj, None)

    def begin_update(self, ctx: WriteContext, new: dict, old: dict) -> None:
        ctx.allocations.assign(ctx.txn, new, old)

    def on_remove(self, ctx: WriteContext, obj: dict) -> None:
        ctx.allocations.release_all(ctx.txn, obj)


STRATEGY = ServiceStrategy()
