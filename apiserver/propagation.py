"""Deletion propagation: what a DELETE's options mean for the garbage collector.

Kubernetes' API server does not delete dependents itself: it records on the owner
what the garbage collector must do (``registry/generic/registry/store.go``,
``deletionFinalizersForGarbageCollection``):

- ``Background`` (the default for every kind served here, apps/v1 included): the
  owner goes now; the collector then deletes what pointed at it.
- ``Foreground``: the owner gets the ``foregroundDeletion`` finalizer and stays,
  marked for deletion, until the collector has deleted its blocking dependents.
- ``Orphan`` (or the legacy ``orphanDependents: true``): the owner gets the
  ``orphan`` finalizer; the collector strips its references from the dependents.

An explicit option wins over a finalizer the object already carries (so a second
DELETE may switch policy); with neither, the finalizer stays and the kind's
default applies. Pure functions; ``writes.Writes.delete`` applies the result.
"""

from __future__ import annotations

from typing import Any

from apiserver.errors import BadRequest, FieldError, Invalid, invalid, not_supported
from apiserver.validation.meta import FOREGROUND, ORPHAN

BACKGROUND_POLICY, FOREGROUND_POLICY, ORPHAN_POLICY = "Background", "Foreground", "Orphan"
POLICIES = (FOREGROUND_POLICY, BACKGROUND_POLICY, ORPHAN_POLICY)


def check_options(options: dict[str, Any]) -> None:
    """Kubernetes' ValidateDeleteOptions for the propagation fields: 422 when wrong."""
    errors: list[FieldError] = []
    policy, orphan = options.get("propagationPolicy"), options.get("orphanDependents")
    if orphan is not None and not isinstance(orphan, bool):
        raise BadRequest("orphanDependents must be a boolean")
    if policy is not None and policy not in POLICIES:
        errors.append(not_supported("propagationPolicy", policy, [*POLICIES, "nil"]))
    elif policy is not None and orphan is not None:
        errors.append(invalid("propagationPolicy", policy,
                              "orphanDependents and deletionPropagation cannot be both set"))
    if errors:
        raise Invalid("DeleteOptions", "", errors, "meta.k8s.io")


def _orphans(finalizers: list[str], options: dict[str, Any]) -> bool:
    """shouldOrphanDependents: option, then the object's finalizer, then the kind's
    default, which is "don't" for every kind served here (only the pre-apps/v1
    versions of ReplicaSet and Deployment defaulted to Orphan)."""
    if options.get("orphanDependents") is not None:
        return bool(options["orphanDependents"])
    policy = options.get("propagationPolicy")
    if policy is not None:
        return policy == ORPHAN_POLICY
    for f in finalizers:
        if f in (ORPHAN, FOREGROUND):
            return f == ORPHAN
    return False


def _foreground(finalizers: list[str], options: dict[str, Any]) -> bool:
    """shouldDeleteDependents: option, then the object's finalizer; never by default."""
    if options.get("orphanDependents") is not None:
        return False
    policy = options.get("propagationPolicy")
    if policy is not None:
        return policy == FOREGROUND_POLICY
    return FOREGROUND in finalizers


def finalizers_after_delete(current: list[str] | None, options: dict[str, Any]
                            ) -> list[str] | None:
    """The object's finalizers once this DELETE is applied; None when unchanged."""
    have = [f for f in (current or []) if isinstance(f, str)]
    kept = [f for f in have if f not in (ORPHAN, FOREGROUND)]
    if _orphans(have, options):
        kept.append(ORPHAN)
    if _foreground(have, options):
        kept.append(FOREGROUND)
    return None if set(kept) == set(have) else kept


def delete_status(options: dict[str, Any], result: dict[str, Any]) -> int:
    """200, or 202 when the object stays (marked for deletion) and the caller asked for
    cascading with the legacy ``orphanDependents: false``, as Kubernetes answers (only
    then, not to break older clients)."""
    stays = result.get("kind") != "Status" and bool(
        (result.get("metadata") or {}).get("deletionTimestamp"))
    return 202 if stays and options.get("orphanDependents") is False else 200
