"""Node lifecycle wiring: silent nodes → Ready=Unknown, their pods → not Ready.

Decisions are in ``controllers.lifecycle``; this module keeps one ``Probe`` per
node (updated in the Node and Lease event handlers, the moment a heartbeat
arrives: a Node status post or a renewal of the node's Lease in
``kube-node-lease``, which this process watches in that namespace only) and
works node keys:

- a healthy node's key is looked at again exactly when its grace period would
  run out (``add_after``), so detection needs no polling loop;
- before declaring a node silent it and its Lease are read fresh from the API
  server (the Lease by a list of one: the controller-manager may list and watch
  Leases, as Kubernetes' role allows for informers, but not get other than its own),
  since a lagging watch must not turn into a false alarm;
- the node's conditions are written with an optimistic PUT of ``/status``, so a
  status post that lands meanwhile wins (409, and the next look sees it); a Lease
  renewed in that instant restarts the probe, and the agent, seeing its node
  Unknown, posts Ready again (as with Kubernetes' controller);
- while a node's Ready is "False" or "Unknown" (checked with a fresh read, since
  a returning agent's pod updates may overtake its node update in our caches),
  every pod on it with Ready "True" gets Ready "False" (a status patch carrying
  the pod's resourceVersion, so a newer write by the node agent wins). A pod
  event on such a node queues the node again, so a pod marked Ready later is
  caught too.

When heartbeats resume the node agent sets Ready itself and restores its pods'
readiness; this controller only notices the node is healthy again.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

from apimachinery.keys import make_key, object_key
from apimachinery.kinds import LEASE, NODE, POD
from apimachinery.nodelease import NODE_LEASE_NAMESPACE
from client.errors import NotFound
from client.http import AsyncClient
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.lifecycle import (
    Probe,
    node_is_down,
    observe,
    pod_not_ready_status,
    pods_to_mark_not_ready,
    seconds_left,
    silent_status,
)
from controllers.metrics import Metrics
from controllers.objects import (
    Object,
    format_time,
    is_pod_ready,
    name_of,
    namespace_of,
    node_name_of,
    version_of,
)
from controllers.runtime import Controller
from controllers.scheduler import POD_NODE_INDEX, pod_node

log = logging.getLogger(__name__)


class NodeLifecycleController(Controller):
    """Marks nodes that stopped posting heartbeats, and their pods."""

    name = "nodelifecycle"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 grace_period: float, recorder: Recorder,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(metrics, workers=2)
        self.client = client
        self.grace_period = grace_period
        self.recorder = recorder
        self._monotonic = monotonic
        self._wall = wall
        self.probes: dict[str, Probe] = {}
        self.nodes = informers.get(NODE)
        self.pods = informers.get(POD)
        self.leases = informers.get(LEASE, NODE_LEASE_NAMESPACE)
        informers.index(POD, POD_NODE_INDEX, pod_node)
        self.nodes.add_handler(self._node_seen, lambda _old, new: self._node_seen(new),
                               self._node_deleted)
        self.leases.add_handler(self._lease_seen, lambda _old, new: self._lease_seen(new),
                                None)
        self.pods.add_handler(self._pod_seen, lambda _old, new: self._pod_seen(new), None)
        metrics.gauge("miniplane_nodes_not_ready",
                      "Nodes whose Ready condition is False or Unknown.", self.nodes_down)

    def nodes_down(self) -> int:
        return sum(1 for n in self.nodes.store.list() if node_is_down(n))

    # -- handlers ------------------------------------------------------------------------

    def _lease_of(self, name: str) -> Object | None:
        return self.leases.store.get(make_key(NODE_LEASE_NAMESPACE, name))

    def _node_seen(self, node: Object) -> None:
        self._beat(node, self._lease_of(name_of(node)))

    def _lease_seen(self, lease: Object) -> None:
        node = self.nodes.store.get(name_of(lease))
        if node is not None:  # else the node's own event will look at its lease
            self._beat(node, lease)

    def _beat(self, node: Object, lease: Object | None) -> None:
        name = name_of(node)
        before = self.probes.get(name)
        probe = observe(before, node, lease, self._monotonic())
        self.probes[name] = probe
        if before is not None and probe is not before and node_is_down(node):
            log.info("node %s: heartbeat again after being down", name)
        self.queue.add(name)

    def _node_deleted(self, node: Object) -> None:
        self.probes.pop(name_of(node), None)

    def _pod_seen(self, pod: Object) -> None:
        node_name = node_name_of(pod)
        if not node_name or not is_pod_ready(pod):
            return
        node = self.nodes.store.get(node_name)
        if node is not None and node_is_down(node):
            self.queue.add(node_name)

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        node: Object | None = self.nodes.store.get(key)
        if node is None:
            return None
        now = self._monotonic()
        probe = self.probes.get(key)
        if probe is None:
            probe = self.probes[key] = observe(None, node, self._lease_of(key), now)
        left = seconds_left(probe, now, self.grace_period)
        fresh = False
        if left <= 0 and silent_status(node, "") is not None:  # not yet marked: do it
            node = await self._mark_silent(key, probe)
            if node is None:
                return None
            fresh = True
            probe = self.probes.get(key, probe)
            left = seconds_left(probe, self._monotonic(), self.grace_period)
        if node_is_down(node):
            await self._mark_pods_not_ready(node, fresh=fresh)
        return left if left > 0 else None

    async def _mark_silent(self, key: str, probe: Probe) -> Object | None:
        """Set the node's conditions to Unknown if it is still silent; return the node
        as it is now (None if it is gone)."""
        try:
            fresh = await self.client.get(NODE, key)
        except NotFound:
            return None
        # a list of one (RBAC: the controller-manager lists and watches Leases; it gets
        # only its own leader-election Lease, as Kubernetes' role has it)
        leases = await self.client.list(LEASE, NODE_LEASE_NAMESPACE,
                                        field_selector=f"metadata.name={key}")
        lease: Object | None = next(iter(leases.get("items") or []), None)
        now = self._monotonic()
        updated = observe(probe, fresh, lease, now)
        if updated is not probe:  # a heartbeat the cache hadn't shown yet
            self.probes[key] = updated
            return fresh
        status = silent_status(fresh, format_time(self._wall()))
        if status is None:
            return fresh
        body = copy.deepcopy(fresh)
        body["status"] = status
        # optimistic: a 409 means it changed (a heartbeat?) since the read; look again
        written = await self.client.replace(NODE, body, subresource="status")
        self.metrics.wrote(self.name, "update", "nodes/status")
        log.warning("node %s: no heartbeat for %.1fs (grace %.0fs); Ready=Unknown",
                    key, now - probe.observed_at, self.grace_period)
        self.recorder.record(written, kind="Node", type_="Normal", reason="NodeNotReady",
                             message=f"Node {key} status is now: NodeNotReady")
        return written

    async def _mark_pods_not_ready(self, node: Object, *, fresh: bool) -> None:
        """``fresh``: ``node`` was just read from (or written to) the server."""
        node_name = name_of(node)
        pods = self.pods.store.by_index(POD_NODE_INDEX, node_name)
        if not pods_to_mark_not_ready(node, pods):
            return
        if not fresh:
            # An agent that comes back posts its node's Ready first, then its pods; the
            # pod events may reach us before the node's. Ask the server, not the cache.
            try:
                node = await self.client.get(NODE, node_name)
            except NotFound:
                return
        targets = pods_to_mark_not_ready(node, pods)
        now = format_time(self._wall())
        marked = 0
        for pod in targets:
            patch = {"metadata": {"resourceVersion": version_of(pod)},
                     "status": pod_not_ready_status(pod, node_name, now)}
            try:
                await self.client.patch(POD, name_of(pod), patch, namespace=namespace_of(pod),
                                        patch_type="strategic", subresource="status")
            except NotFound:
                continue
            marked += 1
            self.metrics.wrote(self.name, "patch", "pods/status")
            log.info("pod %s: Ready=False (node %s is not ready)", object_key(pod), node_name)
        if marked:
            log.warning("node %s: marked %d pod(s) not ready", node_name, marked)
