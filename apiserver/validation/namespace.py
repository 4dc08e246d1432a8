"""Namespace rules (Kubernetes ``ValidateNamespace``, ``…StatusUpdate``, ``…FinalizeUpdate``).

Only metadata matters on the main resource; ``spec.finalizers`` are what the
namespace lifecycle waits on before a terminating namespace disappears.
"""

from __future__ import annotations

from apimachinery import names
from apiserver.errors import invalid
from apiserver.validation.fields import FieldErrors

PHASES = ("Active", "Terminating")
# Finalizers without a domain prefix are reserved for Kubernetes' own.
STANDARD_FINALIZERS = ("kubernetes",)


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    for p, finalizer in errs.strings(spec.get("finalizers"), "spec.finalizers"):
        if errs.check(finalizer, p, names.is_qualified_name) and "/" not in finalizer \
                and finalizer not in STANDARD_FINALIZERS:
            errs.append(invalid(p, finalizer, "name is neither a standard finalizer name nor "
                                "is it fully qualified"))


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """The phase follows deletionTimestamp: Active while alive, Terminating after."""
    status = errs.obj(obj.get("status"), "status") or {}
    phase = errs.enum(status.get("phase"), "status.phase", PHASES)
    meta = obj.get("metadata")
    deleting = isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))
    if phase == "Active" and deleting:
        errs.append(invalid("status.phase", phase,
                            "may only be 'Terminating' if `deletionTimestamp` is not empty"))
    elif phase == "Terminating" and not deleting:
        errs.append(invalid("status.phase", phase,
                            "may only be 'Active' if `deletionTimestamp` is empty"))
    errs.conditions(status.get("conditions"), "status.conditions")
