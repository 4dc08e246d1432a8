"""Namespaces: the scope of namespaced objects; deleting one first deletes its contents.

A Namespace is created Active with the ``kubernetes`` finalizer. DELETE marks it
Terminating, deletes everything inside it in the same transaction, and removes it
once the last object is gone (an object still held by finalizers or a grace period
keeps it Terminating; its removal finishes the Namespace). Nothing new may be
created in a Terminating Namespace, and the system namespaces are never deleted.
"""

from __future__ import annotations

from apimachinery import kinds, names, status, tables
from apiserver import objects
from apiserver.defaults import default_namespace
from apiserver.errors import Forbidden, NotFound
from apiserver.objects import meta
from apiserver.patch.schemas import CONDITIONS, METADATA, struct
from apiserver.registry.strategy import Strategy, WriteContext
from apiserver.validation import Rules, namespace

PROTECTED = frozenset({"default", "kube-system", "kube-public"})
FINALIZER = "kubernetes"


class NamespaceStrategy(Strategy):
    kind = kinds.NAMESPACE
    rules = Rules(names.is_dns1123_label, namespace.validate_spec, namespace.validate_status)
    extra_fields = ("status.phase",)
    table = tables.NAMESPACE_TABLE
    patch_schema = struct(metadata=METADATA, status=struct(conditions=CONDITIONS))
    openapi_root = "V1Namespace"

    def default(self, obj: dict) -> None:
        default_namespace(obj)

    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Active"}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            spec["finalizers"] = [FINALIZER]
        elif FINALIZER not in finalizers:
            spec["finalizers"] = [FINALIZER, *finalizers]

    def check_delete(self, name: str) -> None:
        if name in PROTECTED:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be '
                            "deleted", details=status.object_details(self.kind.plural, name))

    def delete(self, ctx: WriteContext, namespace: str, obj: dict,
               grace: int | None) -> dict | None:
        m = meta(obj)
        name = m["name"]
        if m.get("deletionTimestamp") is None:
            old = objects.deep_copy(obj)
            m["deletionTimestamp"] = objects.rfc3339(objects.now())
            m["deletionGracePeriodSeconds"] = 0
            obj.setdefault("status", {})["phase"] = "Terminating"
            ctx.put(self, "", obj, old)
        txn = ctx.txn
        for resource, child in txn.resources_in_namespace(name):
            strategy = ctx.strategy_for_key(resource)
            current = txn.get(resource, name, child)
            if strategy is None or current is None or meta(current).get("deletionTimestamp"):
                continue
            strategy.delete(ctx, name, current, None)
        self.child_removed(ctx, name)
        return txn.get(self.key, "", name)

    def admit_child(self, ctx: WriteContext, name: str) -> None:
        ns = ctx.txn.get(self.key, "", name)
        if ns is None:
            raise NotFound.of("namespaces", name)
        if meta(ns).get("deletionTimestamp"):
            message = (f"unable to create new content in namespace {name} because it is "
                       "being terminated")
            raise Forbidden(message, details={
                **status.object_details(self.kind.plural, name),
                "causes": [{"type": status.NAMESPACE_TERMINATING, "message": message,
                            "field": "metadata.namespace"}]})

    def child_removed(self, ctx: WriteContext, name: str) -> None:
        """A Terminating namespace goes with its last object."""
        txn = ctx.txn
        ns = txn.get(self.key, "", name)
        if ns is None or not meta(ns).get("deletionTimestamp"):
            return
        if txn.resources_in_namespace(name):
            return
        txn.remove(self.key, "", name, ns)


STRATEGY = NamespaceStrategy()
