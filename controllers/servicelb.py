"""service-lb controller: LoadBalancer Services get an ingress IP from a local pool.

A local cluster has no cloud: as kind's cloud-provider-kind or MetalLB's L2 mode,
this hands each ``type: LoadBalancer`` Service of the default class an address
from ``--lb-pool`` and writes it to ``status.loadBalancer.ingress`` (the
``services/status`` subresource, RBAC role ``system:controller:service-controller``);
the proxy on every node programs the address (KUBE-EXT/KUBE-FW chains) and the
fabric routes the pool to the nodes (``mpctl cluster up``). Keys are
``namespace/name``; one worker, so two Services are never given one address
between a write and the cache seeing it. ``lbpool.decide`` is the decision, pure.
"""

from __future__ import annotations

import logging
from typing import Any

from apimachinery.kinds import SERVICE
from client.errors import Conflict, NotFound
from client.http import AsyncClient
from controllers import lbpool
from controllers.events import WARNING, Recorder
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, meta, name_of, namespace_of
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# An owned Service without an address is looked at again this often (besides every
# release of an address, which requeues it at once).
RETRY_PENDING = 30.0


def key_of(service: Object) -> str:
    return f"{namespace_of(service)}/{name_of(service)}"


def _age(service: Object) -> tuple[str, str]:
    """First come, first served: creation time, then key (RFC 3339 sorts as text)."""
    return (str(meta(service).get("creationTimestamp") or ""), key_of(service))


class ServiceLBController(Controller):
    """Assigns and releases pool addresses in Services' load balancer status."""

    name = "service-lb"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics,
                 pool: lbpool.Pool, *, recorder: Recorder | None = None) -> None:
        super().__init__(metrics, workers=1)
        self.client = client
        self.pool = pool
        self.recorder = recorder
        self.services = informers.get(SERVICE)
        # what this process wrote and the cache may not show yet:
        # key → (resourceVersion of the write, addresses)
        self.written: dict[str, tuple[str, list[str]]] = {}
        self.services.add_handler(self._changed, lambda _old, new: self._changed(new),
                                  self._deleted)

    def _changed(self, service: Object) -> None:
        if lbpool.owns(service) or any(ip in self.pool for ip in lbpool.ingress_ips(service)):
            self.queue.add(key_of(service))

    def _deleted(self, service: Object) -> None:
        key = key_of(service)
        self.written.pop(key, None)
        if any(ip in self.pool for ip in lbpool.ingress_ips(service)):
            self._requeue_pending()

    def _requeue_pending(self) -> None:
        """An address was freed: Services waiting for one try again."""
        for service in self.services.store.list():
            if lbpool.owns(service) and not lbpool.ingress_ips(service):
                self.queue.add(key_of(service))

    def _held_by_others(self, service: Object) -> set[str]:
        """Pool addresses other Services hold; of an address two Services claim, the
        older one keeps it."""
        mine, me = set(lbpool.ingress_ips(service)), _age(service)
        held: set[str] = set()
        for other in self.services.store.list():
            key = key_of(other)
            if key == me[1]:
                continue
            for ip in lbpool.ingress_ips(self._latest(other)):
                if ip in self.pool and (ip not in mine or _age(other) < me):
                    held.add(ip)
        return held

    def _latest(self, service: Object) -> Object:
        """``service`` with the ingress this process last wrote, while the cache is
        older than that write (resourceVersions are the store's revisions here)."""
        key = key_of(service)
        if key not in self.written:
            return service
        version, ips = self.written[key]
        cached = str(meta(service).get("resourceVersion") or "")
        if not (cached.isdigit() and version.isdigit() and int(cached) < int(version)):
            self.written.pop(key, None)  # the cache has caught up (or moved on)
            return service
        return {**service, "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}

    async def sync(self, key: str) -> float | None:
        cached = self.services.store.get(key)
        if cached is None:
            self.written.pop(key, None)
            return None
        service = self._latest(cached)
        decision = lbpool.decide(service, self.pool, self._held_by_others(service))
        if decision.ingress is not None:
            await self._write(service, decision.ingress)
        if decision.problem:
            log.warning("service %s: %s", key, decision.problem)
            if self.recorder is not None:
                self.recorder.record(service, kind="Service", type_=WARNING,
                                     reason="AllocationFailed", message=decision.problem)
            return RETRY_PENDING
        return None

    async def _write(self, service: Object, ingress: list[dict[str, str]]) -> None:
        key = key_of(service)
        body: dict[str, Any] = {"status": {"loadBalancer": {"ingress": ingress or None}}}
        try:
            updated = await self.client.patch(SERVICE, name_of(service), body,
                                              namespace=namespace_of(service),
                                              subresource="status")
        except NotFound:
            return  # deleted meanwhile
        except Conflict:
            self.queue.add_rate_limited(key)
            return
        ips = [e["ip"] for e in ingress]
        self.written[key] = (str(meta(updated).get("resourceVersion") or ""), ips)
        self.metrics.wrote(self.name, "patch", "services/status")
        if ips:
            log.info("service %s: load balancer address %s", key, ips[0])
        else:
            log.info("service %s: load balancer address released", key)
            self._requeue_pending()
