"""The lease endpoint reconciler: this server's identity Lease and the ``kubernetes``
Service's EndpointSlices and v1 Endpoints (the I/O around ``apiserver.peers``).

Every ``interval`` each server renews its own Lease in ``kube-system``, then writes
the slices and the Endpoints object from every live Lease (only when they differ), then deletes Leases whose
server is long gone. At a graceful stop it deletes its own Lease and rewrites the
slices and Endpoints at once, as kube-apiserver's ``RemoveEndpoints`` does. The writes go through
the ordinary write path (validation, admission, optimistic concurrency), so two
servers reconciling at once settle by a Conflict and the next round; SQLite (one
server) and PostgreSQL (several) run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import orjson

from apiserver import objects, peers
from apiserver.errors import AlreadyExists, APIError, Conflict, NotFound
from apiserver.registry.endpoints import STRATEGY as ENDPOINTS
from apiserver.registry.endpointslice import STRATEGY as SLICES
from apiserver.registry.lease import STRATEGY as LEASES
from apiserver.storage.backend import Backend
from apiserver.storage.store import CorruptObject, Txn
from apiserver.writes import Writes

log = logging.getLogger(__name__)

# a graceful stop waits at most this long for the withdrawal (a database that does
# not answer must not hold the stop)
WITHDRAW_TIMEOUT = 5.0


class EndpointReconciler:
    def __init__(self, store: Backend, writes: Writes, identity: peers.Identity, *,
                 duration: float, interval: float) -> None:
        self.store, self.writes, self.identity = store, writes, identity
        self.duration, self.interval = duration, interval
        # kube-apiserver's holder identity: the Lease's name and a per-process UUID
        self.holder = f"{identity.lease_name}_{uuid.uuid4()}"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile()
            except APIError:
                log.exception("reconciling the kubernetes Service's endpoints failed")

    async def reconcile(self) -> None:
        """One round: renew this server's Lease; only then (as kube-apiserver) the slices
        from every live Lease, and tidying of dead ones."""
        if not await self.renew():
            return
        leases = await self._list(LEASES.key, peers.LEASE_NAMESPACE)
        now = objects.now()
        live = peers.live_peers(leases, now)
        await self.write_slices(live)
        await self.write_endpoints(live)
        for lease in peers.garbage(leases, now):
            meta = lease["metadata"]
            if await self._submit(self.writes.delete(
                    LEASES, peers.LEASE_NAMESPACE, meta["name"],
                    {"preconditions": {"resourceVersion": meta.get("resourceVersion")}})):
                log.info("deleted Lease %s/%s of an API server gone since %s",
                         peers.LEASE_NAMESPACE, meta["name"],
                         (lease.get("spec") or {}).get("renewTime"))

    async def renew(self) -> bool:
        """Create or renew this server's Lease; False when that did not happen this round."""
        name = self.identity.lease_name
        try:
            raw = await anyio.to_thread.run_sync(
                self.store.get, LEASES.key, peers.LEASE_NAMESPACE, name)
        except CorruptObject:
            return False  # logged at start; --check-storage names it
        current = orjson.loads(raw) if raw is not None else None
        body = peers.lease_body(self.identity, self.holder, self.duration, objects.now(),
                                current)
        if current is None:
            done = await self._submit(self.writes.create(LEASES, peers.LEASE_NAMESPACE, body))
            if done:
                log.info("created Lease %s/%s for %s:%d", peers.LEASE_NAMESPACE, name,
                         self.identity.address, self.identity.port)
            return done
        return await self._submit(self.writes.update(LEASES, peers.LEASE_NAMESPACE, name, body))

    async def withdraw(self) -> None:
        """At a graceful stop: this server's Lease deleted, the slices rewritten without it."""
        async def run() -> None:
            await self._submit(self.writes.delete(
                LEASES, peers.LEASE_NAMESPACE, self.identity.lease_name, {}))
            leases = await self._list(LEASES.key, peers.LEASE_NAMESPACE)
            live = peers.live_peers(leases, objects.now())
            await self.write_slices(live)
            await self.write_endpoints(live)
        try:
            async with asyncio.timeout(WITHDRAW_TIMEOUT):
                await run()
        except (APIError, TimeoutError) as exc:
            log.warning("could not withdraw this server's endpoint at stop: %s", exc)

    async def write_slices(self, live: list[peers.Peer]) -> None:
        """The stored ``kubernetes`` slices made to name ``live`` (no write when they do)."""
        stored = [s for s in await self._list(SLICES.key, peers.SLICE_NAMESPACE)
                  if peers.is_managed_slice(s)
                  or (s.get("metadata") or {}).get("name") == peers.SERVICE_NAME]
        todo = peers.plan(peers.desired_slices(live), stored)
        writes: list[Callable[[Txn], Any]] = [
            *(self.writes.create(SLICES, peers.SLICE_NAMESPACE, body) for body in todo.create),
            *(self.writes.update(SLICES, peers.SLICE_NAMESPACE, body["metadata"]["name"], body)
              for body in todo.update),
            *(self.writes.delete(SLICES, peers.SLICE_NAMESPACE, name, {})
              for name in todo.delete)]
        done = [await self._submit(w) for w in writes]
        if writes and all(done):
            log.info("the kubernetes Service's endpoints are now %s",
                     ", ".join(f"{p.address}:{p.port}" for p in live))

    async def write_endpoints(self, live: list[peers.Peer]) -> None:
        """The stored ``default/kubernetes`` Endpoints made to name ``live`` (no write
        when it does): what Endpoints readers (older tools) see of the API servers."""
        try:
            raw = await anyio.to_thread.run_sync(
                self.store.get, ENDPOINTS.key, peers.SLICE_NAMESPACE, peers.SERVICE_NAME)
        except CorruptObject:
            return  # logged at start; --check-storage names it
        stored = orjson.loads(raw) if raw is not None else None
        body = peers.plan_endpoints(live, stored)
        if body is None:
            return
        if stored is None:
            await self._submit(self.writes.create(ENDPOINTS, peers.SLICE_NAMESPACE, body))
        else:
            await self._submit(self.writes.update(ENDPOINTS, peers.SLICE_NAMESPACE,
                                                  peers.SERVICE_NAME, body))

    async def _list(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        page = await anyio.to_thread.run_sync(self.store.list, resource, namespace)
        return [orjson.loads(item) for item in page.items]

    async def _submit(self, write: Callable[[Txn], Any]) -> bool:
        """Run one write; False when another server (or a person) changed the object
        meanwhile: the next round looks again."""
        try:
            await asyncio.wrap_future(self.store.submit(write))
        except (AlreadyExists, Conflict, NotFound):
            return False
        return True
