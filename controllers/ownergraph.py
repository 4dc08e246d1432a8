"""The garbage collector's owner → dependents graph, and its decisions (pure).

Kubernetes' ``pkg/controller/garbagecollector`` (graph builder + attemptToDelete +
attemptToOrphan), reduced to what decides. Nodes are the objects the collector's
informers have seen, keyed by uid; an owner reference names its owner by uid, so
an owner recreated under the same name is another node, and the dependent still
pointing at the old uid is collected.

``Graph.observe``/``Graph.forget`` keep the graph and say which uids to look at
again; ``judge_dependent`` and ``judge_owner`` turn what is known about one item
into an ``Action``. The controller (``controllers.garbagecollector``) resolves the
owners it cannot vouch for with a live GET (never deleting on a cache miss alone)
and carries the actions out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

ORPHAN_FINALIZER, FOREGROUND_FINALIZER = "orphan", "foregroundDeletion"
BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"


@dataclass(frozen=True)
class OwnerRef:
    """One ``metadata.ownerReferences`` entry."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


@dataclass(frozen=True)
class Node:
    """What the collector keeps of one object."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    owners: tuple[OwnerRef, ...] = ()
    finalizers: tuple[str, ...] = ()
    deleting: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def deleting_dependents(self) -> bool:
        """Foreground deletion: marked for deletion, waiting for its dependents."""
        return self.deleting and FOREGROUND_FINALIZER in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN_FINALIZER in self.finalizers

    def is_owner_named_by(self, ref: OwnerRef, dependent: Node) -> bool:
        """This node is what ``dependent``'s ``ref`` means: same uid, group, kind and name,
        and in the dependent's namespace unless cluster-scoped (``namespace == ""``)."""
        return (self.uid == ref.uid and self.name == ref.name and self.kind == ref.kind
                and self.group == ref.group
                and self.namespace in ("", dependent.namespace))


def node_of(obj: Mapping[str, Any], api_version: str, kind: str) -> Node:
    """The graph node of an API object of that kind (a dict as the informers cache it)."""
    m = obj.get("metadata") or {}
    owners = tuple(
        OwnerRef(str(r.get("apiVersion") or ""), str(r.get("kind") or ""),
                 str(r.get("name") or ""), str(r.get("uid") or ""),
                 r.get("controller") is True, r.get("blockOwnerDeletion") is True)
        for r in m.get("ownerReferences") or [] if isinstance(r, Mapping))
    finalizers = tuple(f for f in m.get("finalizers") or [] if isinstance(f, str))
    return Node(api_version, kind, str(m.get("namespace") or ""), str(m.get("name") or ""),
                str(m.get("uid") or ""), str(m.get("resourceVersion") or ""), owners, finalizers,
                m.get("deletionTimestamp") is not None)


@dataclass
class Graph:
    """Observed nodes by uid, and who depends on each uid (observed or not)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    _dependents: dict[str, set[str]] = field(default_factory=dict)

    def dependents(self, uid: str) -> list[Node]:
        return [self.nodes[d] for d in sorted(self._dependents.get(uid, ())) if d in self.nodes]

    def blocking_dependents(self, uid: str) -> list[Node]:
        """Dependents whose reference to ``uid`` blocks its foreground deletion."""
        return [d for d in self.dependents(uid)
                if any(r.uid == uid and r.block_owner_deletion for r in d.owners)]

    def observe(self, node: Node) -> set[str]:
        """Add or update ``node``; the uids whose state this may have changed."""
        old = self.nodes.get(node.uid)
        self.nodes[node.uid] = node
        old_owners = {r.uid: r for r in old.owners} if old else {}
        new_owners = {r.uid: r for r in node.owners}
        for uid in old_owners.keys() - new_owners.keys():
            self._unlink(uid, node.uid)
        for uid in new_owners:
            self._dependents.setdefault(uid, set()).add(node.uid)
        work: set[str] = set()
        if node.deleting_dependents or node.orphaning:
            work.add(node.uid)  # an owner with the collector's finalizer
        if node.deleting_dependents and not (old and old.deleting_dependents):
            work.update(d.uid for d in self.dependents(node.uid))
        if any(self._suspect(r, node) for r in node.owners):
            work.add(node.uid)  # an owner unseen, mismatched or going: check it
        # owners waiting for this dependent that it no longer blocks
        for uid, ref in old_owners.items():
            now = new_owners.get(uid)
            if ref.block_owner_deletion and (now is None or not now.block_owner_deletion):
                owner = self.nodes.get(uid)
                if owner is not None and owner.deleting_dependents:
                    work.add(uid)
        return work

    def forget(self, uid: str) -> set[str]:
        """Remove the node (the object is gone); the uids to look at again."""
        node = self.nodes.pop(uid, None)
        work = {d.uid for d in self.dependents(uid)}  # maybe dangling now
        if node is None:
            return work
        for ref in node.owners:
            self._unlink(ref.uid, uid)
            owner = self.nodes.get(ref.uid)
            if owner is not None and (owner.deleting_dependents or owner.orphaning):
                work.add(ref.uid)  # one dependent fewer to wait for
        return work

    def _unlink(self, owner: str, dependent: str) -> None:
        deps = self._dependents.get(owner)
        if deps is not None:
            deps.discard(dependent)
            if not deps:
                del self._dependents[owner]

    def _suspect(self, ref: OwnerRef, dependent: Node) -> bool:
        owner = self.nodes.get(ref.uid)
        return (owner is None or not owner.is_owner_named_by(ref, dependent)
                or owner.deleting_dependents)

    def vouched_owner(self, ref: OwnerRef, dependent: Node) -> Node | None:
        """The observed node ``ref`` means, if the graph knows it; None: ask the server."""
        owner = self.nodes.get(ref.uid)
        if owner is not None and owner.is_owner_named_by(ref, dependent):
            return owner
        return None


class OwnerState(Enum):
    """classifyReferences' three answers for one owner reference."""

    SOLID = "solid"  # exists with that uid, not waiting for its dependents
    DANGLING = "dangling"  # absent, or its name now holds another uid
    WAITING = "waiting"  # exists, being deleted in the foreground


def owner_state(found_uid: str | None, ref: OwnerRef, finalizers: Iterable[str] = (),
                deleting: bool = False) -> OwnerState:
    """The state of ``ref``'s owner from a lookup by name (``found_uid`` None: 404)."""
    if found_uid is None or found_uid != ref.uid:
        return OwnerState.DANGLING
    if deleting and FOREGROUND_FINALIZER in finalizers:
        return OwnerState.WAITING
    return OwnerState.SOLID


@dataclass(frozen=True)
class Action:
    """What to do about one item. ``delete`` (a policy) deletes it with a uid
    precondition; ``drop_owners`` removes those owner references from it;
    ``unblock`` clears blockOwnerDeletion on its references (a cycle);
    ``remove_finalizer`` takes that finalizer off it; ``enqueue``/``orphan`` name
    dependents to look at / to strip this item's reference from."""

    delete: str | None = None
    drop_owners: frozenset[str] = frozenset()
    unblock: bool = False
    remove_finalizer: str | None = None
    enqueue: tuple[str, ...] = ()
    orphan: tuple[Node, ...] = ()

    @property
    def nothing(self) -> bool:
        return self == NOTHING


NOTHING = Action()


def judge_dependent(item: Node, states: Mapping[str, OwnerState],
                    dependents: Iterable[Node] = ()) -> Action:
    """attemptToDeleteItem for an item with owners, given each owner's state by uid.

    Some owner solid: keep the item, dropping references to owners gone or being
    deleted in the foreground. None solid and one waiting: delete the item in the
    foreground if it has dependents itself (so the wait propagates down the chain),
    unblocking its references first if one of its dependents waits on it too (a
    cycle). All dangling: delete it with its own finalizer's policy, else Background.
    """
    if item.deleting or not item.owners:
        return NOTHING
    solid = [u for u, s in states.items() if s is OwnerState.SOLID]
    others = frozenset(u for u, s in states.items() if s is not OwnerState.SOLID)
    if solid:
        return Action(drop_owners=others) if others else NOTHING
    deps = list(dependents)
    if any(s is OwnerState.WAITING for s in states.values()) and deps:
        cycle = any(d.deleting_dependents for d in deps)
        return Action(delete=FOREGROUND, unblock=cycle)
    if ORPHAN_FINALIZER in item.finalizers:
        return Action(delete=ORPHAN)
    if FOREGROUND_FINALIZER in item.finalizers:
        return Action(delete=FOREGROUND)
    return Action(delete=BACKGROUND)


def judge_owner(item: Node, graph: Graph) -> Action:
    """An item deleting with the collector's finalizer.

    ``orphan``: strip its reference from every dependent, then the finalizer.
    ``foregroundDeletion``: look at every dependent not yet going (each is deleted
    by ``judge_dependent``); the finalizer goes once no blocking dependent remains.
    """
    if item.orphaning:
        deps = tuple(graph.dependents(item.uid))
        return Action(orphan=deps, remove_finalizer=ORPHAN_FINALIZER)
    if item.deleting_dependents:
        blocking = graph.blocking_dependents(item.uid)
        pending = tuple(d.uid for d in graph.dependents(item.uid) if not d.deleting)
        if not blocking:
            return Action(enqueue=pending, remove_finalizer=FOREGROUND_FINALIZER)
        return Action(enqueue=pending)
    return NOTHING
