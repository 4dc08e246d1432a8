"""Pod GC wiring: force-delete terminating pods that no node agent will finish.

A bound pod is deleted gracefully: the API server only sets its
``deletionTimestamp`` and the pod's node agent removes it (grace period 0) once
its processes are gone. If that node is deleted or not Ready, nobody will, and
the pod (and a namespace being deleted around it) would stay forever. So once
the grace period has run out on such a node, the pod is deleted with grace 0
(``controllers.lifecycle.force_delete_in`` decides). Keys are pods; a pod not yet
due is looked at again at its deadline, and a node going down or away queues
the terminating pods on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from apimachinery.keys import object_key
from apimachinery.kinds import NODE, POD
from client.errors import Conflict, NotFound
from client.http import AsyncClient
from controllers.informers import SharedInformers
from controllers.lifecycle import force_delete_in, node_is_down
from controllers.metrics import Metrics
from controllers.objects import Object, is_deleting, name_of, namespace_of, node_name_of, uid_of
from controllers.runtime import Controller
from controllers.scheduler import POD_NODE_INDEX, pod_node

log = logging.getLogger(__name__)


class PodGcController(Controller):
    """Finishes the deletion of pods whose node can't."""

    name = "podgc"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(metrics, workers=1)
        self.client = client
        self._wall = wall
        self.pods = informers.get(POD)
        self.nodes = informers.get(NODE)
        informers.index(POD, POD_NODE_INDEX, pod_node)
        self.pods.add_handler(self._pod_seen, lambda _old, new: self._pod_seen(new), None)
        self.nodes.add_handler(None, lambda _old, new: self._node_changed(new),
                               self._node_changed)

    def _pod_seen(self, pod: Object) -> None:
        if is_deleting(pod):
            self.queue.add(object_key(pod))

    def _node_changed(self, node: Object) -> None:
        gone = self.nodes.store.get(name_of(node)) is None
        if gone or node_is_down(node):
            for pod in self.pods.store.by_index(POD_NODE_INDEX, name_of(node)):
                self._pod_seen(pod)

    async def sync(self, key: str) -> float | None:
        pod = self.pods.store.get(key)
        if pod is None:
            return None
        node = self.nodes.store.get(node_name_of(pod)) if node_name_of(pod) else None
        due = force_delete_in(pod, node, self._wall())
        if due is None:
            return None
        if due > 0:
            return due
        try:
            await self.client.delete(POD, name_of(pod), namespace_of(pod),
                                     grace_period_seconds=0,
                                     preconditions={"uid": uid_of(pod)})
        except (NotFound, Conflict):
            return None  # already gone, or a new pod of that name
        self.metrics.wrote(self.name, "delete", "pods")
        state = "gone" if node is None else "not ready"
        log.info("pod %s: force-deleted: grace period over and node %s is %s", key,
                 node_name_of(pod) or "(none)", state)
        return None
