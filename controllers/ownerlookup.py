"""From a dependent to the cached controllers it concerns (client-go's handlers).

The ReplicaSet controller hears of pods, the Deployment controller of ReplicaSets,
and both turn a dependent's change into owner keys the same way: the owner its
controller reference names (only if the cached owner has that uid), and for an
orphan every owner in its namespace whose selector matches, since one of them may
adopt it. An update queues the old owner too when the reference changed, and the
matching owners when the labels or the reference did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apimachinery.keys import make_key, object_key
from client.store import Store
from controllers.objects import Object, labels_of, namespace_of, uid_of
from controllers.owners import controller_ref, controller_uid
from controllers.replicas import selector_of

NAMESPACE_INDEX = "namespace"  # dependents and owners by namespace (orphans' candidates)
CONTROLLER_INDEX = "controller-uid"  # dependents by their controller's uid


def by_namespace(obj: Object) -> str | None:
    return namespace_of(obj) or None


def by_controller(obj: Object) -> str | None:
    return controller_uid(obj) or None


class CachedOwners:
    """The owners of one kind in an informer's store (indexed by ``NAMESPACE_INDEX``)."""

    def __init__(self, kind: str, store: Store) -> None:
        self.kind = kind
        self.store = store

    def key(self, obj: Object, ref: Mapping[str, Any] | None) -> str | None:
        """The key of the cached owner ``ref`` names, if it is that very object."""
        if ref is None or ref.get("kind") != self.kind:
            return None
        key = make_key(namespace_of(obj), str(ref.get("name") or ""))
        owner = self.store.get(key)
        return key if owner is not None and uid_of(owner) == ref.get("uid") else None

    def selecting(self, obj: Object) -> list[str]:
        """The owners of ``obj``'s namespace whose selector matches its labels."""
        keys = []
        for owner in self.store.by_index(NAMESPACE_INDEX, namespace_of(obj)):
            selector = selector_of(owner)
            if selector is not None and selector.matches(labels_of(obj)):
                keys.append(object_key(owner))
        return keys

    def for_added(self, obj: Object) -> tuple[str | None, list[str]]:
        """(its owner's key, or None and the owners that may adopt it)."""
        ref = controller_ref(obj)
        if ref is not None:
            return self.key(obj, ref), []
        return None, self.selecting(obj)

    def for_updated(self, old: Object, new: Object) -> list[str]:
        """The owners a change of a dependent concerns."""
        keys: list[str] = []
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and (key := self.key(old, old_ref)) is not None:
            keys.append(key)
        if new_ref is not None:
            if (key := self.key(new, new_ref)) is not None:
                keys.append(key)
            return keys
        if labels_of(old) != labels_of(new) or old_ref != new_ref:
            keys.extend(self.selecting(new))
        return keys
