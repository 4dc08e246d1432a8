"""Pure scheduling: (Pod, nodes with their pod counts) → a node, or why none fits.

Kubernetes' scheduler in miniature: *filter* nodes the Pod can't run on, each
failing node counted under the first reason that rules it out (the order below,
as kube-scheduler stops at the first failing plugin), then *score* what is left
by how few pods it runs, ties broken by name so equal inputs choose equally.
Spreading by count is the point: with no resource requests to weigh, the least
loaded node is the one least likely to be the next bottleneck.

Filters, in order, with the text kube-scheduler uses where it has one:

1. the node's Ready condition is not "True" → ``node(s) were not ready``
2. ``spec.unschedulable`` (cordoned), unless the Pod tolerates
   ``node.kubernetes.io/unschedulable`` → ``node(s) were unschedulable``
3. the Pod's ``nodeSelector`` doesn't match the node's labels →
   ``node(s) didn't match Pod's node affinity/selector``
4. a ``NoSchedule``/``NoExecute`` taint the Pod doesn't tolerate →
   ``node(s) had untolerated taint {key: value}``

The "why not" message is kube-scheduler's ``FitError`` text:
``0/3 nodes are available: 1 node(s) were not ready, 2 node(s) were unschedulable.``
(reasons sorted, so the message is stable and only changes when the cause does).
Node affinity, pod (anti-)affinity and resources are not considered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apimachinery.labels import matches_map
from controllers.objects import (
    condition_status,
    is_deleting,
    is_pod_terminal,
    labels_of,
    name_of,
    node_name_of,
    spec,
)

DEFAULT_SCHEDULER = "default-scheduler"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

NOT_READY = "node(s) were not ready"
UNSCHEDULABLE = "node(s) were unschedulable"
SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
NO_NODES = "no nodes available to schedule pods"

Object = Mapping[str, Any]


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True)
class NodeView:
    """What scheduling needs to know about one node."""

    name: str
    labels: Mapping[str, str]
    ready: bool
    unschedulable: bool
    taints: tuple[Taint, ...]
    pods: int  # non-terminal pods bound to it (or assumed bound)


@dataclass(frozen=True)
class Decision:
    """A node name, or None and the message for ``PodScheduled=False``."""

    node: str | None
    message: str = ""


def node_view(node: Object, *, pods: int) -> NodeView:
    s = spec(node)
    taints = tuple(Taint(str(t.get("key") or ""), str(t.get("value") or ""),
                         str(t.get("effect") or ""))
                   for t in s.get("taints") or [] if isinstance(t, Mapping))
    return NodeView(name=name_of(node), labels=dict(labels_of(node)),
                    ready=condition_status(node, "Ready") == "True",
                    unschedulable=s.get("unschedulable") is True, taints=taints, pods=pods)


def needs_scheduling(pod: Object) -> bool:
    """Unbound, alive, and addressed to this scheduler."""
    scheduler = spec(pod).get("schedulerName") or DEFAULT_SCHEDULER
    return (not node_name_of(pod) and not is_deleting(pod) and not is_pod_terminal(pod)
            and scheduler == DEFAULT_SCHEDULER)


def counts_toward_load(pod: Object) -> bool:
    """Pods that occupy their node: bound and not finished."""
    return bool(node_name_of(pod)) and not is_pod_terminal(pod)


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Taint) -> bool:
    """Kubernetes' ``ToleratesTaint`` over a Pod's tolerations."""
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = t.get("key") or ""
        operator = t.get("operator") or "Equal"
        if key and key != taint.key:
            continue
        if operator == "Exists":
            return True  # an empty key with Exists tolerates every taint
        if operator == "Equal" and (t.get("value") or "") == taint.value:
            return True
    return False


def why_not(pod: Object, node: NodeView) -> str | None:
    """The first reason ``node`` can't take ``pod``, or None if it can."""
    tolerations = [t for t in spec(pod).get("tolerations") or [] if isinstance(t, Mapping)]
    if not node.ready:
        return NOT_READY
    if node.unschedulable and not tolerates(
            tolerations, Taint(UNSCHEDULABLE_TAINT, "", "NoSchedule")):
        return UNSCHEDULABLE
    selector = spec(pod).get("nodeSelector")
    if isinstance(selector, Mapping) and selector and not matches_map(selector, node.labels):
        return SELECTOR_MISMATCH
    for taint in node.taints:
        if taint.effect in BLOCKING_EFFECTS and not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {taint}"
    return None


def schedule(pod: Object, nodes: Sequence[NodeView]) -> Decision:
    """Pick the least-loaded node that fits ``pod`` (ties: the first name), or explain."""
    fitting: list[NodeView] = []
    reasons: Counter[str] = Counter()
    for node in nodes:
        reason = why_not(pod, node)
        if reason is None:
            fitting.append(node)
        else:
            reasons[reason] += 1
    if fitting:
        best = min(fitting, key=lambda n: (n.pods, n.name))
        return Decision(best.name)
    return Decision(None, fit_error(len(nodes), reasons))


def fit_error(total: int, reasons: Mapping[str, int]) -> str:
    if total == 0:
        return f"0/0 nodes are available: {NO_NODES}."
    parts = sorted(f"{n} {reason}" for reason, n in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."
