"""ReplicaSet rules (Kubernetes ``ValidateReplicaSet``, ``…Update``, ``…StatusUpdate``).

The spec is the shared workload spec (``workload.py``); the status is the
controller's count of the pods it keeps.
"""

from __future__ import annotations

from apiserver.validation import workload
from apiserver.validation.fields import FieldErrors

STATUS_COUNTS = ("fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    old_spec = old.get("spec") if isinstance(old, dict) else None
    workload.validate_workload_spec(errs, spec, old_spec if isinstance(old_spec, dict) else None,
                                    kind="replicaset")


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    status = errs.obj(obj.get("status"), "status") or {}
    workload.check_replica_counts(errs, status, STATUS_COUNTS)
    errs.conditions(status.get("conditions"), "status.conditions")
