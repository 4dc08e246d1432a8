"""Scheduler wiring: unbound Pods → a node (``pods/binding``) or ``PodScheduled=False``.

The decision is ``controllers.scheduling.schedule``; this module keeps its inputs:

- **Load per node**, counted incrementally from Pod events (a decision never scans
  every Pod). A Pod is counted on its node from the moment it is *assumed* there
  (right after the decision, before the binding is even sent, as kube-scheduler
  assumes), so a burst of Pods spreads instead of all landing on the node that
  looked emptiest in a cache that hasn't seen the previous bindings yet. A failed
  binding takes the assumption back.
- **Unschedulable Pods** are remembered; any node change that could make room
  (a node added, becoming Ready, uncordoned, relabelled, retainted) queues them
  all again, as kube-scheduler moves its unschedulable queue on cluster events.

Binding is ``POST pods/{name}/binding``; a 409 (bound meanwhile) or 404 (deleted
meanwhile) means there is nothing left to do.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from apimachinery.keys import object_key
from apimachinery.kinds import NODE, POD
from client.errors import Conflict, NotFound
from client.http import AsyncClient
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import (
    Object,
    condition,
    format_time,
    labels_of,
    name_of,
    namespace_of,
    node_name_of,
    spec,
)
from controllers.runtime import Controller
from controllers.scheduling import (
    counts_toward_load,
    needs_scheduling,
    node_view,
    schedule,
)

log = logging.getLogger(__name__)

POD_NODE_INDEX = "node"  # pods by spec.nodeName (shared with node lifecycle)

# Decisions are quick and bindings small; a few workers overlap the binding
# round-trips while assumptions keep their decisions consistent.
DEFAULT_WORKERS = 4


def pod_node(pod: Object) -> str | None:
    return node_name_of(pod) or None


def _node_fingerprint(node: Object) -> tuple[Any, ...]:
    """The parts of a node scheduling looks at; other changes (heartbeats) don't
    make room for anyone."""
    ready = condition(node, "Ready")
    s = spec(node)
    return (ready.get("status") if ready else None, s.get("unschedulable"),
            sorted(labels_of(node).items()), repr(s.get("taints")))


class Scheduler(Controller):
    """Binds every unbound Pod (of the default scheduler) to a fitting node."""

    name = "scheduler"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 recorder: Recorder, workers: int = DEFAULT_WORKERS,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self.recorder = recorder
        self._wall = wall
        self.pods = informers.get(POD)
        self.nodes = informers.get(NODE)
        informers.index(POD, POD_NODE_INDEX, pod_node)
        self._counted: dict[str, str] = {}  # pod key → node its load is counted on
        self._load: Counter[str] = Counter()
        self._unschedulable: set[str] = set()
        self.pods.add_handler(self._pod_changed, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(self._node_added, self._node_updated, None)
        metrics.gauge("miniplane_scheduler_unschedulable_pods",
                      "Pods the scheduler found no node for.", lambda: len(self._unschedulable))

    # -- load bookkeeping ----------------------------------------------------------------

    def _count(self, key: str, node: str | None) -> None:
        previous = self._counted.pop(key, None)
        if previous is not None:
            self._load[previous] -= 1
            if self._load[previous] <= 0:
                del self._load[previous]
        if node is not None:
            self._counted[key] = node
            self._load[node] += 1

    def _recount(self, key: str) -> None:
        """Drop an assumption: count the pod as the cache has it now."""
        cached = self.pods.store.get(key)
        bound = cached is not None and counts_toward_load(cached)
        self._count(key, node_name_of(cached) if cached is not None and bound else None)

    def load(self, node: str) -> int:
        return self._load.get(node, 0)

    # -- handlers ------------------------------------------------------------------------

    def _pod_changed(self, pod: Object) -> None:
        key = object_key(pod)
        if counts_toward_load(pod):
            self._count(key, node_name_of(pod))
        elif node_name_of(pod):
            self._count(key, None)  # finished: it frees its node
        # (unbound: an assumption, if any, stands until the binding shows up)
        if needs_scheduling(pod):
            self.queue.add(key)
        else:
            self._unschedulable.discard(key)

    def _pod_updated(self, old: Object, new: Object) -> None:
        self._pod_changed(new)

    def _pod_deleted(self, pod: Object) -> None:
        key = object_key(pod)
        self._count(key, None)
        self._unschedulable.discard(key)

    def _node_added(self, node: Object) -> None:
        self._retry_unschedulable()

    def _node_updated(self, old: Object, new: Object) -> None:
        if old is new or _node_fingerprint(old) != _node_fingerprint(new):
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self.queue.add(key)

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        pod = self.pods.store.get(key)
        if pod is None or not needs_scheduling(pod):
            self._unschedulable.discard(key)
            return None
        if key in self._counted:
            return None  # assumed: the binding is in flight or its echo is on the way
        nodes = [node_view(n, pods=self.load(name_of(n))) for n in self.nodes.store.list()]
        decision = schedule(pod, nodes)
        if decision.node is None:
            self._unschedulable.add(key)
            await self._report_unschedulable(pod, decision.message)
            return None
        self._unschedulable.discard(key)
        self._count(key, decision.node)  # assume before the first await
        try:
            await self.client.bind(name_of(pod), decision.node, namespace_of(pod))
        except (Conflict, NotFound) as exc:
            self._recount(key)  # bound elsewhere, or gone: the cache will say which
            log.info("pod %s: not bound: %s", key, exc.message)
            return None
        except Exception:
            self._recount(key)
            raise
        self.metrics.wrote(self.name, "create", "pods/binding")
        log.info("pod %s: bound to node %s (%d pods there)", key, decision.node,
                 self.load(decision.node))
        self.recorder.record(pod, kind="Pod", type_="Normal", reason="Scheduled",
                             message=f"Successfully assigned {key} to {decision.node}")
        return None

    async def _report_unschedulable(self, pod: Object, message: str) -> None:
        """Set ``PodScheduled=False`` (Unschedulable, ``message``) unless it says so."""
        current: Mapping[str, Any] | None = condition(pod, "PodScheduled")
        if current is not None and (current.get("status"), current.get("reason"),
                                    current.get("message")) == ("False", "Unschedulable",
                                                                message):
            return
        now = format_time(self._wall())
        transition = (current.get("lastTransitionTime")
                      if current is not None and current.get("status") == "False" else now)
        patch = {"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastTransitionTime": transition, "lastProbeTime": None}]}}
        try:
            await self.client.patch(POD, name_of(pod), patch, namespace=namespace_of(pod),
                                    patch_type="strategic", subresource="status")
        except NotFound:
            return
        self.metrics.wrote(self.name, "patch", "pods/status")
        log.info("pod %s: unschedulable: %s", object_key(pod), message)
        self.recorder.record(pod, kind="Pod", type_="Warning", reason="FailedScheduling",
                             message=message)
