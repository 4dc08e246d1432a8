"""Pure node-lifecycle decisions: is a node silent, what its status and pods become.

A node agent beats two ways, as a kubelet does (KEP-589): it renews its Lease
in ``kube-node-lease`` (``spec.renewTime``, every few seconds: the cheap, primary
heartbeat) and posts its Node status (the Ready condition's ``lastHeartbeatTime``)
only when that changes or every few minutes. Either one moving means the agent is
alive. As Kubernetes' node lifecycle controller does, neither *value* is compared
with our clock (the agent's clock may be skewed); what counts is when *we* last
saw one of them change, on our monotonic clock (a ``Probe``). A node neither of
whose heartbeats has changed for the grace period is silent: its conditions become ``Unknown`` and its pods' Ready condition
``False``, so their endpoints stop being ready. When the agent posts again it
sets Ready itself and, being the owner of pod status, restores its pods.

Force deletion of terminating pods (a slice of Kubernetes' pod GC): a pod whose
deletion grace period has run out, on a node that no longer exists or is not
Ready, has no agent left to finish it; it is deleted with grace 0, so that
e.g. a namespace with pods on a dead node can finish deleting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery.nodelease import renew_time_of
from controllers.objects import (
    condition,
    condition_status,
    is_pod_ready,
    is_pod_terminal,
    meta,
    parse_time,
    status,
)

Object = Mapping[str, Any]

SILENT_REASON = "NodeStatusUnknown"
SILENT_MESSAGE = "Node agent stopped posting node status."
NEVER_REASON = "NodeStatusNeverUpdated"
NEVER_MESSAGE = "Node agent never posted node status."
POD_NOT_READY_REASON = "NodeNotReady"


@dataclass(frozen=True)
class Probe:
    """The last heartbeat values seen for a node (its Ready condition's
    ``lastHeartbeatTime``, its Lease's ``renewTime``) and when (monotonic) either
    last changed."""

    heartbeat: str | None
    renewed: str | None
    observed_at: float


def heartbeat_of(node: Object) -> str | None:
    """The Ready condition's ``lastHeartbeatTime`` (None if there is none)."""
    ready = condition(node, "Ready")
    value = ready.get("lastHeartbeatTime") if ready is not None else None
    return value if isinstance(value, str) and value else None


def observe(probe: Probe | None, node: Object, lease: Object | None, now: float) -> Probe:
    """The probe after seeing ``node`` and its Lease (None: it has none): restarted
    at ``now`` if either heartbeat moved (or this is the first sighting, which gives
    every node a full grace period). A Lease that vanished is no sign of life: the
    last renewal seen is kept."""
    heartbeat = heartbeat_of(node)
    renewed = renew_time_of(lease) or (probe.renewed if probe is not None else None)
    if probe is None or probe.heartbeat != heartbeat or probe.renewed != renewed:
        return Probe(heartbeat, renewed, now)
    return probe


def seconds_left(probe: Probe, now: float, grace: float) -> float:
    """Time until the node counts as silent (≤ 0: it does)."""
    return probe.observed_at + grace - now


def silent_status(node: Object, now_text: str) -> dict[str, Any] | None:
    """The node's ``status`` with every condition (and at least Ready) set to
    ``Unknown``, as Kubernetes does for a silent node; None if already so.

    ``lastHeartbeatTime`` is kept, so this write doesn't look like a heartbeat.
    """
    st = dict(status(node))
    conditions = [dict(c) for c in st.get("conditions") or [] if isinstance(c, Mapping)]
    never = heartbeat_of(node) is None
    if not any(c.get("type") == "Ready" for c in conditions):
        conditions.append({"type": "Ready"})
    changed = False
    for c in conditions:
        if c.get("status") == "Unknown":
            continue
        changed = True
        c["status"] = "Unknown"
        c["reason"] = NEVER_REASON if never else SILENT_REASON
        c["message"] = NEVER_MESSAGE if never else SILENT_MESSAGE
        c["lastTransitionTime"] = now_text
    if not changed:
        return None
    st["conditions"] = conditions
    return st


def node_is_down(node: Object) -> bool:
    """Ready is "False" or "Unknown": its pods must not serve. A node that has not
    posted a Ready condition at all is still starting, not down."""
    return condition_status(node, "Ready") in ("False", "Unknown")


def pods_to_mark_not_ready(node: Object, pods: Iterable[Object]) -> list[Object]:
    """Pods on a down node whose Ready condition is still "True"."""
    if not node_is_down(node):
        return []
    return [p for p in pods if is_pod_ready(p) and not is_pod_terminal(p)]


def pod_not_ready_status(pod: Object, node_name: str, now_text: str) -> dict[str, Any]:
    """A strategic-merge status patch setting the pod's Ready condition to False."""
    return {"conditions": [{
        "type": "Ready", "status": "False", "reason": POD_NOT_READY_REASON,
        "message": f"node {node_name} is not ready", "lastTransitionTime": now_text,
        "lastProbeTime": None}]}


def force_delete_in(pod: Object, node: Object | None, now: float) -> float | None:
    """Seconds until ``pod`` should be force-deleted (≤ 0: now), or None if it never
    should: it isn't terminating, or its node is alive to finish it.

    ``node`` is the pod's node, None if that node doesn't exist; ``now`` Unix time.
    """
    deadline = parse_time(meta(pod).get("deletionTimestamp"))
    if deadline is None:
        return None
    if node is not None and not node_is_down(node):
        return None
    return deadline - now
