"""The garbage collector: deletes what its owners no longer hold, as Kubernetes does.

Every kind that can own or be owned is watched (all stored kinds but Events, which
Kubernetes' collector ignores too) into one ``controllers.ownergraph.Graph``. Keys
on the work queue are uids; ``sync`` looks at one:

- an object deleting with the ``orphan`` finalizer: its reference is removed from
  each dependent, then the finalizer;
- one deleting with ``foregroundDeletion``: its dependents are deleted, and the
  finalizer goes once none with ``blockOwnerDeletion`` remains;
- an object with owners: each owner the graph cannot vouch for is looked up live by
  name and its uid compared (a cache miss alone never deletes anything); with every
  owner gone the object is deleted (``Background``, or ``Foreground`` down a
  foreground chain) with a uid precondition; with some alive, only the references to
  the dead ones are removed.

Writes carry the cached object's resourceVersion, so a stale cache is a Conflict
and a rate-limited retry, never a lost update.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from apimachinery.kinds import EVENT, KINDS, Kind
from client.errors import Conflict, NotFound
from client.http import AsyncClient
from client.informer import Informer
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, meta, uid_of
from controllers.ownergraph import (
    Action,
    Graph,
    Node,
    OwnerRef,
    OwnerState,
    judge_dependent,
    judge_owner,
    node_of,
    owner_state,
)
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# An owner reference → its replacement, or None to drop it.
RefChange = Callable[[dict[str, Any]], dict[str, Any] | None]

# Owners confirmed absent, kept so that the dependents of one deleted owner cost one
# GET, not one each (Kubernetes' absentOwnerCache holds 500). A uid is never reused,
# so an entry can't go stale; the bound is only on memory.
ABSENT_OWNERS_KEPT = 500

# Stored kinds a client may delete; Events are left out, as Kubernetes' collector does.
GC_KINDS: tuple[Kind, ...] = tuple(
    k for k in KINDS if {"watch", "delete", "patch"} <= set(k.verbs) and k is not EVENT)


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 workers: int = 2, kinds: tuple[Kind, ...] = GC_KINDS) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self.graph = Graph()
        self._absent: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._kinds = {(k.group, k.kind): k for k in KINDS if k.verbs != ("create",)}
        self._informers: dict[tuple[str, str], Informer] = {}
        for kind in kinds:
            informer = informers.get(kind)
            self._informers[(kind.group, kind.kind)] = informer
            seen = self._seen_of(kind)
            informer.add_handler(seen, self._updated_of(seen), self._gone)

    # -- graph changes (informer callbacks: fast, no I/O) ------------------------------

    def _seen_of(self, kind: Kind) -> Callable[[Object], None]:
        def seen(obj: Object) -> None:
            for uid in self.graph.observe(node_of(obj, kind.api_version, kind.kind)):
                self.queue.add(uid)

        return seen

    def _updated_of(self, seen: Callable[[Object], None]) -> Callable[[Object, Object], None]:
        def updated(old: Object, new: Object) -> None:
            if uid_of(old) != uid_of(new):  # replaced under its name between two lists
                self._gone(old)
            seen(new)

        return updated

    def _gone(self, obj: Object) -> None:
        for uid in self.graph.forget(uid_of(obj)):
            self.queue.add(uid)

    # -- one item -----------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        node = self.graph.nodes.get(key)
        if node is None:
            return None  # gone: its dependents were queued by ``_gone``
        if node.deleting:
            action = judge_owner(node, self.graph)
        else:
            states = {ref.uid: await self._owner_state(ref, node) for ref in node.owners}
            action = judge_dependent(node, states, self.graph.dependents(node.uid))
        await self._carry_out(node, action)
        return None

    async def _owner_state(self, ref: OwnerRef, dependent: Node) -> OwnerState:
        """The graph's word for an observed owner; otherwise a live GET by name."""
        owner = self.graph.vouched_owner(ref, dependent)
        if owner is not None:
            return owner_state(owner.uid, ref, owner.finalizers, owner.deleting)
        # as Kubernetes, by where it was looked for: another namespace may hold that uid
        key = (ref.uid, ref.group, ref.kind, ref.name, dependent.namespace)
        if key in self._absent:
            return OwnerState.DANGLING
        state = await self._look_up(ref, dependent)
        if state is OwnerState.DANGLING:
            self._absent[key] = None
            if len(self._absent) > ABSENT_OWNERS_KEPT:
                self._absent.popitem(last=False)
        return state

    async def _look_up(self, ref: OwnerRef, dependent: Node) -> OwnerState:
        kind = self._kinds.get((ref.group, ref.kind))
        if kind is None:
            log.warning("%s: owner %s/%s %s is of a kind this server does not serve; kept",
                        _describe(dependent), ref.api_version, ref.kind, ref.name)
            return OwnerState.SOLID
        if kind.namespaced and not dependent.namespace:
            return OwnerState.DANGLING  # a cluster-scoped object can't have a namespaced owner
        try:
            found = await self.client.get(kind, ref.name,
                                          dependent.namespace if kind.namespaced else None)
        except NotFound:
            return OwnerState.DANGLING
        m = meta(found)
        return owner_state(uid_of(found), ref, m.get("finalizers") or (),
                           m.get("deletionTimestamp") is not None)

    async def _carry_out(self, node: Node, action: Action) -> None:
        if action.nothing:
            return
        if action.unblock:
            await self._patch_owner_refs(node, lambda r: {**r, "blockOwnerDeletion": False})
        if action.drop_owners:
            await self._patch_owner_refs(
                node, lambda r: None if r.get("uid") in action.drop_owners else r)
            log.info("%s: removed dangling owner references %s", _describe(node),
                     ", ".join(sorted(action.drop_owners)))
        for dependent in action.orphan:
            await self._patch_owner_refs(
                dependent, lambda r: None if r.get("uid") == node.uid else r)
            log.info("%s: orphaned from %s", _describe(dependent), _describe(node))
        for uid in action.enqueue:
            self.queue.add(uid)
        if action.remove_finalizer:
            await self._remove_finalizer(node, action.remove_finalizer)
        if action.delete:
            await self._delete(node, action.delete)

    async def _delete(self, node: Node, policy: str) -> None:
        kind = self._kind_of(node)
        try:
            await self.client.delete(kind, node.name, node.namespace or None,
                                     propagation_policy=policy,
                                     preconditions={"uid": node.uid})
        except (NotFound, Conflict):
            return  # gone already, or its name holds a new object now
        self.metrics.wrote(self.name, "delete", kind.plural)
        log.info("%s: deleted (propagation %s): no owner holds it", _describe(node), policy)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        obj = self._cached(node)
        if obj is None:
            return
        kept = [f for f in meta(obj).get("finalizers") or [] if f != finalizer]
        await self._patch(node, obj, {"finalizers": kept})
        log.info("%s: finalizer %s removed", _describe(node), finalizer)

    async def _patch_owner_refs(self, node: Node, change: RefChange) -> None:
        """Rewrite the cached object's ownerReferences through ``change`` (a reference
        → the new one, or None to drop it), guarded by its resourceVersion."""
        obj = self._cached(node)
        if obj is None:
            return
        refs = [change(dict(r)) for r in meta(obj).get("ownerReferences") or []]
        await self._patch(node, obj, {"ownerReferences": [r for r in refs if r is not None]})

    async def _patch(self, node: Node, obj: Object, metadata: dict[str, Any]) -> None:
        kind = self._kind_of(node)
        body = {"metadata": {"resourceVersion": meta(obj).get("resourceVersion"), **metadata}}
        try:
            await self.client.patch(kind, node.name, body, namespace=node.namespace or None)
        except NotFound:
            return
        self.metrics.wrote(self.name, "patch", kind.plural)

    def _cached(self, node: Node) -> Object | None:
        """The informer's copy of ``node``'s object (never changed here), if it is that uid."""
        informer = self._informers.get((node.group, node.kind))
        if informer is None:
            return None
        key = f"{node.namespace}/{node.name}" if node.namespace else node.name
        obj = informer.store.get(key)
        return obj if obj is not None and uid_of(obj) == node.uid else None

    def _kind_of(self, node: Node) -> Kind:
        return self._kinds[(node.group, node.kind)]


def _describe(node: Node) -> str:
    where = f"{node.namespace}/" if node.namespace else ""
    return f"{node.kind} {where}{node.name}"
