"""EndpointSlice controller wiring: Service/Pod/slice events → Service keys → slice writes.

The computation is ``controllers.slices.desired_slices``; this module only finds
its inputs in the informer caches and sends its plan:

- a Service event queues that Service; a Pod event queues every Service whose
  selector matches the Pod's old or new labels (``controllers.servicepods``, so
  a Pod event doesn't scan every Service); a managed slice
  event queues its Service, unless it is the echo of our own write;
- ``sync`` plans from the caches and writes creates, then updates (optimistic
  PUT: a 409 means the cache is behind, so the key is retried), then deletes;
- a Node event that changes its zone label, readiness or allocatable CPU queues
  the Services with Pods on it (their endpoints' ``zone``) and every Service
  with ``topology-mode: Auto`` (its allocation by zone CPU, ``controllers.hints``);
- the ``last-change-trigger-time`` of a write is the wall-clock time the
  controller received the earliest Pod or Service change not yet reflected in
  the Service's slices (after a restart, the time of the initial list).

Writes that can't succeed because the namespace is being deleted (403) are
dropped: the namespace's deletion removes the Service, which removes the need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping

from apimachinery.keys import make_key, object_key
from apimachinery.kinds import ENDPOINTSLICE, NODE, POD
from client.errors import Forbidden, NotFound, namespace_terminating
from client.http import AsyncClient
from client.store import Store
from controllers import hints
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import (
    Object,
    condition_status,
    format_time,
    labels_of,
    name_of,
    namespace_of,
    status,
)
from controllers.runtime import Controller
from controllers.scheduler import POD_NODE_INDEX, pod_node
from controllers.servicepods import ServicePods
from controllers.slices import (
    SERVICE_NAME_LABEL,
    SlicePlan,
    desired_slices,
    is_managed,
    slices_to_delete_for_missing_service,
)
from controllers.slicetracker import SliceTracker

log = logging.getLogger(__name__)

SLICE_SERVICE_INDEX = "service"  # managed slices by their Service's key

# Kubernetes runs 5 EndpointSlice workers by default (--concurrent-service-endpoint-syncs).
DEFAULT_WORKERS = 5

# A sync that finds the cache behind its own writes looks again this soon, in case
# the echo that would wake it is missed.
STALE_RECHECK = 1.0


def _topology(node: Object) -> tuple[str, str | None, object]:
    """What of a Node the slices depend on: zone, readiness, allocatable CPU."""
    allocatable = status(node).get("allocatable")
    return (hints.node_zone(node), condition_status(node, "Ready"),
            allocatable.get("cpu") if isinstance(allocatable, dict) else None)


class NodesByName(Mapping[str, Object]):
    """The Node cache as a read-only mapping, without copying it for every sync."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, name: str) -> Object:
        node = self._store.get(name)
        if node is None:
            raise KeyError(name)
        return node

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.keys())

    def __len__(self) -> int:
        return len(self._store)


def _slice_service_key(slice_: Object) -> str | None:
    service = labels_of(slice_).get(SERVICE_NAME_LABEL)
    if not service or not is_managed(slice_):
        return None
    return make_key(namespace_of(slice_), service)


class EndpointSliceController(Controller):
    """Keeps every selector Service's EndpointSlices equal to its matching Pods."""

    name = "endpointslice"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 max_endpoints: int, workers: int = DEFAULT_WORKERS,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self.max_endpoints = max_endpoints
        self._wall = wall
        self.tracker = SliceTracker(monotonic)
        self._pending: dict[str, float] = {}  # service key → earliest unreflected change
        self._blocked: set[str] = set()  # services waiting for the cache to show our writes
        self.lookup = ServicePods(informers)
        self.services, self.pods = self.lookup.services, self.lookup.pods
        self.slices = informers.get(ENDPOINTSLICE)
        informers.index(ENDPOINTSLICE, SLICE_SERVICE_INDEX, _slice_service_key)
        self.services.add_handler(self._service_changed, self._service_updated,
                                  self._service_changed)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_added)
        self.slices.add_handler(self._slice_added, self._slice_updated, self._slice_deleted)
        self.nodes = informers.get(NODE)
        informers.index(POD, POD_NODE_INDEX, pod_node)
        self.nodes.add_handler(self._node_changed, self._node_updated, self._node_changed)
        metrics.gauge("miniplane_endpointslices_managed",
                      "EndpointSlices in the cache that this controller manages.",
                      self.managed_slices)

    def managed_slices(self) -> int:
        store = self.slices.store
        return sum(len(store.index_keys(SLICE_SERVICE_INDEX, v))
                   for v in store.index_values(SLICE_SERVICE_INDEX))

    # -- handlers: objects → service keys ------------------------------------------------

    def _changed(self, key: str) -> None:
        """A change the slices may need to reflect: remember when, then queue."""
        now = self._wall()
        self._pending[key] = min(self._pending.get(key, now), now)
        self.queue.add(key)

    def _service_changed(self, service: Object) -> None:
        self._changed(object_key(service))

    def _service_updated(self, old: Object, new: Object) -> None:
        if old is new:  # resync: look again, but nothing changed
            self.queue.add(object_key(new))
        else:
            self._changed(object_key(new))

    def services_selecting(self, pod: Object) -> set[str]:
        return self.lookup.services_selecting(pod)

    def _pod_added(self, pod: Object) -> None:
        for key in self.services_selecting(pod):
            self._changed(key)

    def _pod_updated(self, old: Object, new: Object) -> None:
        keys = self.services_selecting(new)
        if old is new:
            for key in keys:
                self.queue.add(key)
            return
        for key in keys | self.services_selecting(old):
            self._changed(key)

    def _node_changed(self, node: Object) -> None:
        keys = {key for pod in self.pods.store.by_index(POD_NODE_INDEX, name_of(node))
                for key in self.services_selecting(pod)}
        keys.update(object_key(service) for service in self.services.store.list()
                    if hints.auto_enabled(service))
        for key in keys:
            self._changed(key)

    def _node_updated(self, old: Object, new: Object) -> None:
        if _topology(old) != _topology(new):
            self._node_changed(new)

    def _slice_added(self, slice_: Object) -> None:
        self._slice_event(slice_, deleted=False)

    def _slice_updated(self, old: Object, new: Object) -> None:
        self._slice_event(new, deleted=False)

    def _slice_deleted(self, slice_: Object) -> None:
        self._slice_event(slice_, deleted=True)

    def _slice_event(self, slice_: Object, *, deleted: bool) -> None:
        key = _slice_service_key(slice_)
        if key is None:
            return
        ours = self.tracker.observe(key, slice_, deleted=deleted)
        if not ours or key in self._blocked:
            self.queue.add(key)

    # -- sync ----------------------------------------------------------------------------

    def _cached_slice(self, namespace: str) -> Callable[[str], Object | None]:
        return lambda name: self.slices.store.get(make_key(namespace, name))

    def candidate_pods(self, service: Object) -> list[Object]:
        return self.lookup.candidate_pods(service)

    async def sync(self, key: str) -> float | None:
        namespace, _, name = key.rpartition("/")
        if self.tracker.stale(key, self._cached_slice(namespace)):
            self._blocked.add(key)
            return STALE_RECHECK
        self._blocked.discard(key)
        changed_at = self._pending.pop(key, None)
        trigger = format_time(changed_at if changed_at is not None else self._wall())
        service = self.services.store.get(key)
        existing = self.slices.store.by_index(SLICE_SERVICE_INDEX, key)
        if service is None:
            plan = slices_to_delete_for_missing_service(namespace, name, existing)
        else:
            plan = desired_slices(service, self.candidate_pods(service), existing,
                                  max_endpoints=self.max_endpoints, trigger_time=trigger,
                                  nodes=NodesByName(self.nodes.store))
        if plan.empty:
            if service is None:
                self.tracker.forget(key)
            return None
        try:
            await self._apply(key, namespace, plan)
        except Exception:
            if changed_at is not None:  # the change is still unreflected
                self._pending[key] = min(self._pending.get(key, changed_at), changed_at)
            raise
        log.info("service %s: endpointslices %s%s%s", key, plan.summary(),
                 "" if service is not None else " (service deleted)",
                 f" (topology hints off: {plan.no_hints})" if plan.no_hints else "")
        return None

    async def _apply(self, key: str, namespace: str, plan: SlicePlan) -> None:
        for body in plan.creates:
            try:
                created = await self.client.create(ENDPOINTSLICE, body, namespace)
            except Forbidden as exc:
                if not namespace_terminating(exc):
                    raise
                log.info("service %s: not creating a slice: %s", key, exc.message)
                return
            self.metrics.wrote(self.name, "create", ENDPOINTSLICE.plural)
            self.tracker.wrote(key, created)
            log.debug("service %s: created endpointslice %s at %s", key, name_of(created),
                      created["metadata"].get("resourceVersion"))
        for body in plan.updates:
            updated = await self.client.replace(ENDPOINTSLICE, body, namespace)
            self.metrics.wrote(self.name, "update", ENDPOINTSLICE.plural)
            self.tracker.wrote(key, updated)
        for slice_name in plan.deletes:
            try:
                await self.client.delete(ENDPOINTSLICE, slice_name, namespace)
                self.metrics.wrote(self.name, "delete", ENDPOINTSLICE.plural)
            except NotFound:
                pass
            self.tracker.deleted(key, slice_name)
