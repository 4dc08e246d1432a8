"""Lease rules (Kubernetes' ``ValidateLeaseSpec``), plus the MicroTime format.

Kubernetes refuses a malformed ``acquireTime``/``renewTime`` while decoding (a
MicroTime parses only as RFC 3339 with six fraction digits); here bodies are
plain JSON, so that check is a field error naming the field.
"""

from __future__ import annotations

from apimachinery.timestamps import MICRO_TIME_LAYOUT, parse_micro_time
from apiserver.errors import forbidden, invalid
from apiserver.validation.fields import FieldErrors

MICRO_TIME_FIELDS = ("acquireTime", "renewTime")
# coordination.k8s.io/v1 CoordinatedLeaseStrategy values.
STRATEGIES = ("OldestEmulationVersion",)


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    errs.text(spec.get("holderIdentity"), "spec.holderIdentity")
    duration = errs.integer(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errs.at_least(spec.get("leaseTransitions"), "spec.leaseTransitions", 0)
    for key in MICRO_TIME_FIELDS:
        value = spec.get(key)
        if value is not None and parse_micro_time(value) is None:
            errs.append(invalid(f"spec.{key}", value,
                                f"must be a time in the layout {MICRO_TIME_LAYOUT}"))
    strategy = errs.enum(spec.get("strategy"), "spec.strategy", STRATEGIES)
    holder = errs.text(spec.get("preferredHolder"), "spec.preferredHolder")
    if holder and not strategy and not spec.get("strategy"):
        errs.append(forbidden("spec.preferredHolder",
                              "may only be specified if `strategy` is defined"))
