"""A Deployment's status, pure: counts from its ReplicaSets, and the ``Available``
and ``Progressing`` conditions, as Kubernetes' ``sync.go``/``progress.go`` set them.

- ``Available``: True (``MinimumReplicasAvailable``) while at least ``replicas -
  maxUnavailable`` pods are available, else False (``MinimumReplicasUnavailable``).
- ``Progressing`` (only with a progress deadline): ``NewReplicaSetCreated`` /
  ``FoundNewReplicaSet`` when the rollout's ReplicaSet appears,
  ``ReplicaSetUpdated`` whenever the rollout moved (its ``lastUpdateTime`` is
  the last progress seen), ``NewReplicaSetAvailable`` once complete, and False
  ``ProgressDeadlineExceeded`` when ``progressDeadlineSeconds`` passed since the
  last progress; ``DeploymentPaused``/``DeploymentResumed`` (Unknown) on pause
  and resume, so time spent paused never counts against the deadline.

``kubectl rollout status`` reads exactly these: ``observedGeneration``,
``updatedReplicas``, ``replicas``, ``availableReplicas`` and the Progressing reason.
Zero counts are omitted, as Kubernetes' ``omitempty`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from controllers.objects import Object, format_time, meta, name_of, parse_time, status
from controllers.replicas import REPLICA_FAILURE
from controllers.rollout import Plan, total_replicas

PROGRESSING = "Progressing"
AVAILABLE = "Available"

NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

Conditions = list[dict[str, Any]]
COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
          "unavailableReplicas")


def stamp(now: float) -> str:
    """metav1.Time: whole seconds."""
    return format_time(math.floor(now))


def new_condition(type_: str, status_: str, reason: str, message: str, now: float
                  ) -> dict[str, Any]:
    t = stamp(now)
    return {"type": type_, "status": status_, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def conditions_of(obj_status: Mapping[str, Any]) -> Conditions:
    raw = obj_status.get("conditions")
    return [dict(c) for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str
                  ) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(conditions: Conditions, cond: dict[str, Any]) -> Conditions:
    """``SetDeploymentCondition``: a condition of the same status and reason stays as
    it is; one of the same status keeps its ``lastTransitionTime``."""
    current = get_condition(conditions, cond["type"])
    if current is not None and (current.get("status"), current.get("reason")) == (
            cond["status"], cond["reason"]):
        return conditions
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    return [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def remove_condition(conditions: Conditions, type_: str) -> Conditions:
    return [c for c in conditions if c.get("type") != type_]


def _count(obj: Object, field: str) -> int:
    value = status(obj).get(field)
    return value if isinstance(value, int) else 0


def calculate_status(deployment: Object, plan: Plan, all_rs: Sequence[Object],
                     new: Object | None, *, now: float) -> dict[str, Any]:
    """Counts, ``observedGeneration``, ``collisionCount`` and ``Available``; the other
    conditions carried over (``calculateStatus``)."""
    available = sum(_count(rs, "availableReplicas") for rs in all_rs)
    counts = {
        "replicas": sum(_count(rs, "replicas") for rs in all_rs),
        "updatedReplicas": _count(new, "replicas") if new is not None else 0,
        "readyReplicas": sum(_count(rs, "readyReplicas") for rs in all_rs),
        "availableReplicas": available,
        "unavailableReplicas": max(total_replicas(all_rs) - available, 0),
    }
    out: dict[str, Any] = {"observedGeneration": int(meta(deployment).get("generation") or 0)}
    out.update({k: v for k, v in counts.items() if v})
    collisions = status(deployment).get("collisionCount")
    if isinstance(collisions, int):
        out["collisionCount"] = collisions
    conditions = conditions_of(status(deployment))
    if available >= plan.replicas - plan.max_unavailable:
        cond = new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                             "Deployment has minimum availability.", now)
    else:
        cond = new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                             "Deployment does not have minimum availability.", now)
    out["conditions"] = set_condition(conditions, cond)
    return out


def counts(obj_status: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(obj_status.get(k) or 0) for k in COUNTS}


def is_complete(plan: Plan, generation: int, new_status: Mapping[str, Any]) -> bool:
    """All replicas updated and available, and the spec observed (``DeploymentComplete``)."""
    c = counts(new_status)
    return (c["updatedReplicas"] == plan.replicas and c["replicas"] == plan.replicas
            and c["availableReplicas"] == plan.replicas
            and int(new_status.get("observedGeneration") or 0) >= generation)


def is_progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """More updated, fewer old, more ready or more available pods than before."""
    o, n = counts(old), counts(new)
    return (n["updatedReplicas"] > o["updatedReplicas"]
            or n["replicas"] - n["updatedReplicas"] < o["replicas"] - o["updatedReplicas"]
            or n["readyReplicas"] > o["readyReplicas"]
            or n["availableReplicas"] > o["availableReplicas"])


def deadline_left(plan: Plan, conditions: Sequence[Mapping[str, Any]], now: float
                  ) -> float | None:
    """Seconds until the progress deadline passes (≤ 0: passed); None when the
    deadline doesn't apply (none set, complete, already exceeded, no condition)."""
    if plan.progress_deadline is None:
        return None
    cond = get_condition(conditions, PROGRESSING)
    if cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return since + plan.progress_deadline - now


def rollout_status(deployment: Object, plan: Plan, all_rs: Sequence[Object],
                   new: Object | None, *, now: float) -> tuple[dict[str, Any], float | None]:
    """The status after a rollout step and when to look again for the progress
    deadline (``syncRolloutStatus`` with ``requeueStuckDeployment``)."""
    old = status(deployment)
    generation = int(meta(deployment).get("generation") or 0)
    result = calculate_status(deployment, plan, all_rs, new, now=now)
    conditions: Conditions = result["conditions"]
    if plan.progress_deadline is None:
        conditions = remove_condition(conditions, PROGRESSING)
    current = get_condition(conditions_of(old), PROGRESSING)
    c = counts(result)
    complete_before = (c["replicas"] == c["updatedReplicas"] and current is not None
                       and current.get("reason") == NEW_RS_AVAILABLE)
    subject = f'ReplicaSet "{name_of(new)}"' if new is not None else \
        f'Deployment "{name_of(deployment)}"'
    if plan.progress_deadline is not None and not complete_before:
        if is_complete(plan, generation, result):
            conditions = set_condition(conditions, new_condition(
                PROGRESSING, "True", NEW_RS_AVAILABLE, f"{subject} has successfully progressed.",
                now))
        elif is_progressing(old, result):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.",
                                 now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                conditions = remove_condition(conditions, PROGRESSING)
            conditions = set_condition(conditions, cond)
        else:
            left = deadline_left(plan, conditions, now)
            if left is not None and left < 0 or (
                    current is not None and current.get("reason") == TIMED_OUT):
                conditions = set_condition(conditions, new_condition(
                    PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.",
                    now))
    failure = next((get_condition(conditions_of(status(rs)), REPLICA_FAILURE)
                    for rs in ([new] if new is not None else []) + list(all_rs)
                    if get_condition(conditions_of(status(rs)), REPLICA_FAILURE)), None)
    if failure is not None:
        conditions = set_condition(conditions, {
            "type": REPLICA_FAILURE, "status": failure.get("status"),
            "lastUpdateTime": failure.get("lastTransitionTime"),
            "lastTransitionTime": failure.get("lastTransitionTime"),
            "reason": failure.get("reason"), "message": failure.get("message")})
    else:
        conditions = remove_condition(conditions, REPLICA_FAILURE)
    result["conditions"] = conditions
    again = None
    if not is_complete(plan, generation, result):
        left = deadline_left(plan, conditions, now)
        if left is not None:
            again = max(left, 0.0) + 1.0
    return result, again


def paused_conditions(deployment: Object, plan: Plan, *, now: float) -> Conditions | None:
    """The conditions after a pause or resume, or None when unchanged
    (``checkPausedConditions``). A reported timeout is not overwritten."""
    if plan.progress_deadline is None:
        return None
    conditions = conditions_of(status(deployment))
    cond = get_condition(conditions, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return None
    paused_shown = cond is not None and cond.get("reason") == PAUSED
    if plan.paused and not paused_shown:
        return set_condition(conditions, new_condition(PROGRESSING, "Unknown", PAUSED,
                                                       "Deployment is paused", now))
    if not plan.paused and paused_shown:
        return set_condition(conditions, new_condition(PROGRESSING, "Unknown", RESUMED,
                                                       "Deployment is resumed", now))
    return None


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two statuses say the same (missing counts are 0)."""
    return (counts(a) == counts(b)
            and int(a.get("observedGeneration") or 0) == int(b.get("observedGeneration") or 0)
            and a.get("collisionCount") == b.get("collisionCount")
            and conditions_of(a) == conditions_of(b))
