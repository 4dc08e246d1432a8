"""ReplicaSet decisions, pure: which pods count, which to delete first, the new pods
and the status. ``controllers.replicaset`` feeds these from its caches.

As Kubernetes' ReplicaSet controller:

- a pod *counts* (is active) unless it is terminating or has finished
  (``Succeeded``/``Failed``);
- surplus pods go in ``ActivePodsWithRanks`` order: unscheduled before scheduled,
  Pending before Unknown before Running, not ready before ready, lower
  ``controller.kubernetes.io/pod-deletion-cost`` first, more pods of the same
  owner family on its node first, ready for less time first, more container
  restarts first, newer first (Kubernetes' logarithmic buckets of the last two
  are not reproduced: plain time order);
- creations go in slow-start batches 1, 2, 4, … so a template that can't be
  created fails once, not ``replicas`` times;
- a pod is *available* once it has been Ready for ``minReadySeconds``.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apimachinery.labels import LabelSelector, SelectorError, selector_from_label_selector_object
from controllers.objects import (
    Object,
    condition,
    format_time,
    is_deleting,
    is_pod_ready,
    is_pod_terminal,
    labels_of,
    meta,
    name_of,
    node_name_of,
    parse_time,
    spec,
    status,
)

# kube-controller-manager's BurstReplicas: at most this many creates or deletes per sync.
BURST_REPLICAS = 500
# SlowStartInitialBatchSize
INITIAL_BATCH = 1
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
REPLICA_FAILURE = "ReplicaFailure"

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def desired_replicas(obj: Object) -> int:
    """``spec.replicas``, 1 when unset (the apps/v1 default)."""
    value = spec(obj).get("replicas")
    return value if isinstance(value, int) and value >= 0 else 1


def min_ready_seconds(obj: Object) -> int:
    value = spec(obj).get("minReadySeconds")
    return value if isinstance(value, int) and value > 0 else 0


def selector_of(obj: Object) -> LabelSelector | None:
    """The object's ``spec.selector``, or None when it can't select (absent or invalid)."""
    raw = spec(obj).get("selector")
    if not isinstance(raw, Mapping):
        return None
    try:
        selector = selector_from_label_selector_object(raw)
    except SelectorError:
        return None
    return None if selector.empty else selector


def is_active(pod: Object) -> bool:
    """Kubernetes' ``IsPodActive``: not finished and not being deleted."""
    return not is_pod_terminal(pod) and not is_deleting(pod)


def _ready_since(pod: Object) -> float | None:
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return parse_time(ready.get("lastTransitionTime"))


def is_pod_available(pod: Object, min_ready: int, now: float) -> bool:
    """Ready, and for at least ``min_ready`` seconds (``IsPodAvailable``)."""
    if not is_pod_ready(pod):
        return False
    if min_ready <= 0:
        return True
    since = _ready_since(pod)
    return since is not None and since + min_ready <= now


def seconds_until_available(pods: Iterable[Object], min_ready: int, now: float) -> float | None:
    """How soon the next ready-but-not-yet-available pod becomes available, so the
    status is recomputed then (None: no such pod)."""
    if min_ready <= 0:
        return None
    waits = [since + min_ready - now for p in pods
             if (since := _ready_since(p)) is not None and since + min_ready > now]
    return max(min(waits), 0.0) if waits else None


def _restarts(pod: Object) -> int:
    statuses = status(pod).get("containerStatuses")
    counts = [int(s.get("restartCount") or 0) for s in statuses or []
              if isinstance(s, Mapping)] if isinstance(statuses, list) else []
    return max(counts, default=0)


def _deletion_cost(pod: Object) -> int:
    annotations = meta(pod).get("annotations")
    raw = annotations.get(DELETION_COST_ANNOTATION) if isinstance(annotations, Mapping) else None
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _zero_last_desc(value: float | None) -> tuple[int, float]:
    """Sort key for "missing first, then later before earlier" (``afterOrZero``)."""
    return (0, 0.0) if value is None else (1, -value)


def deletion_key(pod: Object, rank: int) -> tuple[Any, ...]:
    """Smaller deletes first (``ActivePodsWithRanks.Less``); ``rank`` is how many pods
    of the same family share the pod's node."""
    ready = is_pod_ready(pod)
    return (
        1 if node_name_of(pod) else 0,
        _PHASE_ORDER.get(str(status(pod).get("phase") or ""), 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -rank,
        _zero_last_desc(_ready_since(pod)) if ready else (0, 0.0),
        -_restarts(pod),
        _zero_last_desc(parse_time(meta(pod).get("creationTimestamp"))),
        name_of(pod),
    )


def pods_to_delete(pods: Sequence[Object], count: int, *,
                   related: Iterable[Object] = ()) -> list[Object]:
    """The ``count`` pods to delete first; ``related`` are the active pods of the whole
    family (this ReplicaSet's and its siblings'), ranked by node to spread deletions."""
    if count >= len(pods):
        return list(pods)
    on_node = Counter(node_name_of(p) for p in related if node_name_of(p))
    ranked = sorted(pods, key=lambda p: deletion_key(p, on_node.get(node_name_of(p), 0)))
    return ranked[:count]


def slow_start_batches(count: int, initial: int = INITIAL_BATCH) -> list[int]:
    """Batch sizes for ``count`` creations: 1, 2, 4, … (``slowStartBatch``)."""
    batches: list[int] = []
    size = min(count, initial)
    remaining = count
    while size > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


def pod_from_template(rs: Object, owner_ref: Mapping[str, Any]) -> dict[str, Any]:
    """A pod of ``rs``'s template (``GetPodFromTemplate``): its labels, annotations and
    finalizers, ``generateName`` ``<rs>-``, and ``rs`` as its controller."""
    template = spec(rs).get("template")
    template = template if isinstance(template, Mapping) else {}
    raw_meta = template.get("metadata")
    tmeta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    pod_meta: dict[str, Any] = {"generateName": f"{name_of(rs)}-",
                                "namespace": str(meta(rs).get("namespace") or ""),
                                "ownerReferences": [dict(owner_ref)]}
    for field in ("labels", "annotations"):
        if tmeta.get(field):
            pod_meta[field] = dict(tmeta[field])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(dict(template.get("spec") or {}))}


def template_labels(rs: Object) -> Mapping[str, str]:
    template = spec(rs).get("template")
    tmeta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = tmeta.get("labels") if isinstance(tmeta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _template_matches(rs: Object, pod: Object) -> bool:
    have = labels_of(pod)
    return all(have.get(k) == v for k, v in template_labels(rs).items())


def replica_set_status(rs: Object, pods: Sequence[Object], *, error: str | None,
                       now: float) -> dict[str, Any]:
    """The status ``rs`` should have over its active ``pods`` (``calculateStatus``);
    ``error`` is why creating or deleting pods failed this sync, if it did."""
    old = dict(status(rs))
    min_ready = min_ready_seconds(rs)
    new: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if _template_matches(rs, p)),
        "readyReplicas": sum(1 for p in pods if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_pod_available(p, min_ready, now)),
        "observedGeneration": int(meta(rs).get("generation") or 0),
    }
    conditions = [dict(c) for c in old.get("conditions") or [] if isinstance(c, Mapping)]
    failure = condition(rs, REPLICA_FAILURE)
    if error is not None and failure is None:
        diff = len(pods) - desired_replicas(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions.append({"type": REPLICA_FAILURE, "status": "True", "reason": reason,
                           "message": error, "lastTransitionTime": format_time(math.floor(now))})
    elif error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    if conditions:
        new["conditions"] = conditions
    return new


def status_changed(rs: Object, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change what ``rs`` says (missing counts are 0)."""
    old = status(rs)
    for field in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                  "observedGeneration"):
        if int(old.get(field) or 0) != int(new.get(field) or 0):
            return True
    return list(old.get("conditions") or []) != list(new.get("conditions") or [])
