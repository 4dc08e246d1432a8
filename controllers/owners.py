"""Controller references: who owns an object, and whether a controller may claim it.

As client-go's ``ControllerRefManager``: a controller *owns* the objects whose
``ownerReferences`` name it with ``controller: true``; it *adopts* an orphan its
selector matches (unless either side is being deleted) and *releases* an object it
owns that its selector no longer matches (unless it is itself being deleted). The
ReplicaSet controller claims pods this way, the Deployment controller ReplicaSets.

``claim`` is the decision; ``adopt_patch``/``release_patch`` are the merge patches
that carry it out. They send the whole new ``ownerReferences`` list (a merge patch
replaces lists) with the object's ``resourceVersion``, so a concurrent change of
the references is a 409 and the claim is decided again from a fresher cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from controllers.objects import Object, is_deleting, labels_of, meta, namespace_of, uid_of


class Claim(Enum):
    OWNED = "owned"  # ours, and the selector matches
    ADOPT = "adopt"  # an orphan to make ours
    RELEASE = "release"  # ours, but the selector no longer matches
    IGNORE = "ignore"  # someone else's, or not to be touched


def controller_ref(obj: Object) -> Mapping[str, Any] | None:
    """The owner reference with ``controller: true``, or None (an orphan)."""
    refs = meta(obj).get("ownerReferences")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def controller_uid(obj: Object) -> str | None:
    ref = controller_ref(obj)
    return str(ref.get("uid") or "") if ref is not None else None


def owner_reference(owner: Object, *, kind: str, api_version: str) -> dict[str, Any]:
    """A controller reference to ``owner`` (``metav1.NewControllerRef``)."""
    m = meta(owner)
    return {"apiVersion": api_version, "kind": kind, "name": str(m.get("name") or ""),
            "uid": uid_of(owner), "controller": True, "blockOwnerDeletion": True}


def claim(owner: Object, matches: Callable[[Mapping[str, str]], bool], obj: Object) -> Claim:
    """What ``owner`` (whose selector is ``matches``) does with ``obj`` (``ClaimObject``)."""
    ref = controller_ref(obj)
    if ref is not None:
        if ref.get("uid") != uid_of(owner):
            return Claim.IGNORE
        if matches(labels_of(obj)):
            return Claim.OWNED
        return Claim.IGNORE if is_deleting(owner) else Claim.RELEASE
    if is_deleting(owner) or not matches(labels_of(obj)) or is_deleting(obj):
        return Claim.IGNORE
    if namespace_of(owner) != namespace_of(obj):
        return Claim.IGNORE
    return Claim.ADOPT


def _refs(obj: Object) -> list[Mapping[str, Any]]:
    refs = meta(obj).get("ownerReferences")
    return [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []


def adopt_patch(obj: Object, ref: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes ``ref`` the controller of ``obj`` (other refs kept)."""
    refs = [dict(r) for r in _refs(obj) if r.get("uid") != ref.get("uid")] + [dict(ref)]
    return {"metadata": {"ownerReferences": refs,
                         "resourceVersion": str(meta(obj).get("resourceVersion") or "")}}


def release_patch(obj: Object, owner_uid: str) -> dict[str, Any]:
    """The merge patch that drops ``owner_uid``'s reference from ``obj``."""
    refs = [dict(r) for r in _refs(obj) if r.get("uid") != owner_uid]
    return {"metadata": {"ownerReferences": refs or None,
                         "resourceVersion": str(meta(obj).get("resourceVersion") or "")}}
