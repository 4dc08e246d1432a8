"""v1 Endpoints controller wiring: Service/Pod/Endpoints events → Service keys → writes.

Kubernetes' endpoints controller (``pkg/controller/endpoint``): one Endpoints
object per Service with a selector, of the Service's name, kept from the same
Pods the EndpointSlices are (``controllers.backends``). The computation is
``controllers.endpointsubsets``; this module finds its inputs in the informer
caches and writes:

- a Service event queues it; a Pod event queues every Service selecting the Pod's
  old or new labels (``controllers.servicepods``); an Endpoints added or updated
  for a Service the controller keeps, or any Endpoints deleted, queues that key (a
  hand edit is put back, a deleted object recreated, the echo of our own write
  ends a wait for the cache);
- at start, every cached Endpoints is queued once, so ones left by a Service
  deleted while the controller was away are deleted (Kubernetes'
  ``checkLeftoverEndpoints``; leader-election records are skipped);
- ``sync``: Service gone → delete its Endpoints; no selector (the ``kubernetes``
  Service, whose Endpoints the API server writes, and user-managed ones) or
  ExternalName → leave them alone; else create or update (an optimistic PUT: a 409
  means the cache is behind, and the key is retried) only when the stored object
  differs. After a write, a sync waits until the cache shows it, so it never plans
  from an older copy (Kubernetes' ``staleEndpointsTracker``).

A create refused because the namespace is being deleted (403) is dropped: the
namespace's deletion removes the Service, which removes the need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from apimachinery.keys import object_key
from apimachinery.kinds import ENDPOINTS
from client.errors import Forbidden, NotFound, namespace_terminating
from client.http import AsyncClient
from controllers.backends import manages
from controllers.endpointsubsets import TriggerTimes, desired_endpoints
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, format_time, meta, version_of
from controllers.runtime import Controller
from controllers.servicepods import ServicePods

log = logging.getLogger(__name__)

# Kubernetes runs 5 endpoints workers by default (--concurrent-endpoint-syncs).
DEFAULT_WORKERS = 5
# A sync that finds the cache behind its own write looks again this soon, in case
# the echo that would wake it is missed.
STALE_RECHECK = 1.0
# A write the cache never shows (deleted by someone meanwhile) stops blocking after this.
EXPECTATION_TIMEOUT = 30.0
# Endpoints that hold a leader-election record (old lock style) have no Service.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


class EndpointsController(Controller):
    """Keeps every selector Service's v1 Endpoints equal to its matching Pods."""

    name = "endpoint"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 workers: int = DEFAULT_WORKERS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self._monotonic = monotonic
        self.lookup = ServicePods(informers)
        self.services, self.pods = self.lookup.services, self.lookup.pods
        self.endpoints = informers.get(ENDPOINTS)
        self.triggers = TriggerTimes()
        self._written: dict[str, tuple[int, float]] = {}  # key → (version written, when)
        self.services.add_handler(self._service_event, self._service_updated,
                                  self._service_event)
        self.pods.add_handler(self._pod_event, self._pod_updated, self._pod_event)
        self.endpoints.add_handler(self._endpoints_added, self._endpoints_updated,
                                   self._endpoints_deleted)

    # -- handlers: objects → service keys ----------------------------------------------

    def _service_event(self, service: Object) -> None:
        self.queue.add(object_key(service))

    def _service_updated(self, old: Object, new: Object) -> None:
        self.queue.add(object_key(new))

    def _pod_event(self, pod: Object) -> None:
        for key in self.lookup.services_selecting(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Object, new: Object) -> None:
        keys = self.lookup.services_selecting(new)
        if old is not new:
            keys |= self.lookup.services_selecting(old)
        for key in keys:
            self.queue.add(key)

    def _endpoints_added(self, endpoints: Object) -> None:
        key = object_key(endpoints)
        service = self.services.store.get(key)
        if service is not None and manages(service):
            self.queue.add(key)

    def _endpoints_updated(self, old: Object, new: Object) -> None:
        self._endpoints_added(new)

    def _endpoints_deleted(self, endpoints: Object) -> None:
        self.queue.add(object_key(endpoints))

    async def prepare(self) -> None:
        for endpoints in self.endpoints.store.list():
            if LEADER_ANNOTATION not in (meta(endpoints).get("annotations") or {}):
                self.queue.add(object_key(endpoints))

    # -- sync ----------------------------------------------------------------------------

    def _stale(self, key: str, current: Object | None) -> bool:
        """Has the cache not caught up with our last write of ``key`` yet?"""
        expected = self._written.get(key)
        if expected is None:
            return False
        version, when = expected
        if current is not None and _version(current) >= version:
            del self._written[key]
            return False
        if self._monotonic() - when > EXPECTATION_TIMEOUT:
            log.warning("endpoints %s: the cache never showed version %d; going on", key,
                        version)
            del self._written[key]
            return False
        return True

    async def sync(self, key: str) -> float | None:
        namespace, _, name = key.rpartition("/")
        service = self.services.store.get(key)
        if service is None:
            self.triggers.forget(key)
            self._written.pop(key, None)
            try:
                await self.client.delete(ENDPOINTS, name, namespace)
            except NotFound:
                return None
            self.metrics.wrote(self.name, "delete", ENDPOINTS.plural)
            log.info("service %s: endpoints deleted (service deleted)", key)
            return None
        if not manages(service):
            return None
        current = self.endpoints.store.get(key)
        if self._stale(key, current):
            return STALE_RECHECK
        pods = self.lookup.candidate_pods(service)
        changed_at = self.triggers.compute(key, service, pods)
        body = desired_endpoints(service, pods, current, trigger_time=(
            format_time(changed_at) if changed_at is not None else None))
        if body is None:
            return None
        if current is None:
            try:
                written = await self.client.create(ENDPOINTS, body, namespace)
            except Forbidden as exc:
                if not namespace_terminating(exc):
                    raise
                log.info("service %s: not creating endpoints: %s", key, exc.message)
                return None
            verb = "create"
        else:
            written = await self.client.replace(ENDPOINTS, body, namespace)
            verb = "update"
        self.metrics.wrote(self.name, verb, ENDPOINTS.plural)
        self._written[key] = (_version(written), self._monotonic())
        log.info("service %s: endpoints %sd (%s)", key, verb, _summary(body))
        return None


def _version(obj: Object) -> int:
    try:
        return int(version_of(obj))
    except ValueError:
        return 0


def _summary(body: Object) -> str:
    subsets = body.get("subsets") or []
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    return f"{ready} ready, {not_ready} not ready"
