"""The proxy part of ``mp-nodeagent``, wired: informers → tracker → sync loop, plus status.

Three informers (Services and EndpointSlices in all namespaces, and this node's
own Node, for its zone label) feed ``Proxier.tracker``; the sync loop starts once
all have listed. ``run`` returns when ``stop`` is called
(SIGTERM); the rules stay in the kernel, as kube-proxy leaves them, so traffic
keeps flowing while the agent restarts.
"""

from __future__ import annotations

import asyncio
import logging

from apimachinery.kinds import ENDPOINTSLICE, NODE, SERVICE
from client.backoff import Backoff
from client.config import ClientConfig
from client.http import AsyncClient
from client.informer import Informer
from componentbase.tasks import cancel_and_wait
from nodeagent.proxy.sync import Proxier

log = logging.getLogger(__name__)

# Reconnect quickly: rules go stale while the watch is down. 0.1 s doubling to 5 s.
BACKOFF = Backoff(base=0.1, cap=5.0)
REQUEST_TIMEOUT = 10.0  # seconds for a list page; watches get their own read timeout


class ProxyAgent:
    """Runs the informers and the proxier until stopped."""

    def __init__(self, api: ClientConfig, proxier: Proxier) -> None:
        self.proxier = proxier
        self.client = AsyncClient(api, timeout=REQUEST_TIMEOUT)
        self.services = Informer(self.client, SERVICE, backoff=BACKOFF)
        self.slices = Informer(self.client, ENDPOINTSLICE, backoff=BACKOFF)
        self.node = Informer(self.client, NODE, backoff=BACKOFF,
                             field_selector=f"metadata.name={proxier.config.node_name}")
        t = proxier.tracker
        self.services.add_handler(t.service_added, t.service_updated, t.service_deleted)
        self.slices.add_handler(t.slice_added, t.slice_updated, t.slice_deleted)
        self.node.add_handler(t.node_added, t.node_updated, t.node_deleted)

    async def _wait_synced(self) -> None:
        await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced(),
                             self.node.wait_synced())
        log.info("informers synced: %d Services, %d EndpointSlices",
                 len(self.services.store), len(self.slices.store))

    async def run(self) -> None:
        informers = [asyncio.create_task(i.run(), name=f"informer-{i.kind.plural}")
                     for i in (self.services, self.slices, self.node)]
        try:
            await self.proxier.run(self._wait_synced)
        finally:
            await cancel_and_wait(informers)
            await self.client.aclose()

    def stop(self) -> None:
        self.proxier.stop()
