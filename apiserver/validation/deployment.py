"""Deployment rules (Kubernetes ``ValidateDeployment``, ``…Update``, ``…StatusUpdate``).

Beyond the shared workload spec (``workload.py``): the rollout strategy (RollingUpdate
with ``maxSurge``/``maxUnavailable`` as an int or a percent, not both zero, or
Recreate), ``revisionHistoryLimit``, ``progressDeadlineSeconds`` (longer than
``minReadySeconds``) and ``paused``.
"""

from __future__ import annotations

import re
from typing import Any

from apiserver.errors import invalid, not_supported, required
from apiserver.validation import workload
from apiserver.validation.fields import FieldErrors, is_int

STRATEGY_TYPES = ("Recreate", "RollingUpdate")
PERCENT = re.compile(r"[0-9]+%")
PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' "
                   "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
STATUS_COUNTS = ("updatedReplicas", "readyReplicas", "availableReplicas")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    old_spec = old.get("spec") if isinstance(old, dict) else None
    workload.validate_workload_spec(errs, spec, old_spec if isinstance(old_spec, dict) else None,
                                    kind="deployment")
    _check_strategy(errs, spec.get("strategy"))
    errs.at_least(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit", 0)
    deadline = errs.at_least(spec.get("progressDeadlineSeconds"),
                             "spec.progressDeadlineSeconds", 0)
    min_ready = spec.get("minReadySeconds")
    if deadline is not None and is_int(min_ready) and deadline <= min_ready:
        errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                            "must be greater than minReadySeconds"))
    errs.boolean(spec.get("paused"), "spec.paused")


def _check_strategy(errs: FieldErrors, value: Any) -> None:
    path = "spec.strategy"
    strategy = errs.obj(value, path) or {}
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        errs.only_when(rolling is not None, False, f"{path}.rollingUpdate",
                       "may not be specified when strategy `type` is 'Recreate'")
    elif kind == "RollingUpdate":
        if rolling is None:
            errs.append(required(f"{path}.rollingUpdate",
                                 "this should be defaulted and never be nil"))
        else:
            _check_rolling_update(errs, errs.obj(rolling, f"{path}.rollingUpdate") or {},
                                  f"{path}.rollingUpdate")
    else:
        errs.append(not_supported(f"{path}.type", kind, list(STRATEGY_TYPES)))


def _check_rolling_update(errs: FieldErrors, rolling: dict, path: str) -> None:
    unavailable = _int_or_percent(errs, rolling.get("maxUnavailable"), f"{path}.maxUnavailable")
    surge = _int_or_percent(errs, rolling.get("maxSurge"), f"{path}.maxSurge")
    if isinstance(rolling.get("maxUnavailable"), str) and unavailable is not None \
            and unavailable > 100:
        errs.append(invalid(f"{path}.maxUnavailable", rolling["maxUnavailable"],
                            "must not be greater than 100%"))
    if unavailable == 0 and surge == 0:
        errs.append(invalid(f"{path}.maxUnavailable", rolling.get("maxUnavailable"),
                            "may not be 0 when `maxSurge` is 0"))


def _int_or_percent(errs: FieldErrors, value: Any, path: str) -> int | None:
    """``ValidatePositiveIntOrPercent``: a number ≥ 0 or ``N%``; the number (or N)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not PERCENT.fullmatch(value):
            errs.append(invalid(path, value, PERCENT_MESSAGE))
            return None
        return int(value[:-1])
    if not is_int(value):
        errs.append(invalid(path, value, "must be an integer or a percent string"))
        return None
    return errs.at_least(value, path, 0)


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    status = errs.obj(obj.get("status"), "status") or {}
    workload.check_replica_counts(errs, status, STATUS_COUNTS)
    errs.at_least(status.get("unavailableReplicas"), "status.unavailableReplicas", 0)
    errs.at_least(status.get("collisionCount"), "status.collisionCount", 0)
    errs.conditions(status.get("conditions"), "status.conditions")
