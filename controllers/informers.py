"""One informer per kind, shared by every controller in the process.

Several controllers watch Pods and Nodes; one list+watch per kind (as client-go's
``SharedInformerFactory``) keeps the API server's load and our memory independent
of how many controllers run. Controllers ask for an informer and register their
handlers and indexes before ``start``; an index asked for twice under one name is
registered once, so controllers can share one (pods by node, say). An informer may
watch one namespace only (Leases in ``kube-node-lease``: the leader-election
Leases elsewhere change every few seconds and concern no controller here).
"""

from __future__ import annotations

import asyncio
import logging

from apimachinery.kinds import Kind
from client.backoff import Backoff
from client.http import AsyncClient
from client.informer import Informer
from client.store import IndexFunc
from componentbase.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class SharedInformers:
    """Lazily created informers, started together."""

    def __init__(self, client: AsyncClient, *, resync_period: float | None = None,
                 backoff: Backoff | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self.backoff = backoff
        self._informers: dict[str, Informer] = {}  # by plural, or "plural/namespace"
        self._indexes: dict[tuple[str, str], IndexFunc] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, kind: Kind, namespace: str | None = None) -> Informer:
        """The informer of ``kind`` (in every namespace, or only in ``namespace``)."""
        key = kind.plural if namespace is None else f"{kind.plural}/{namespace}"
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, kind, namespace=namespace,
                                resync_period=self.resync_period, backoff=self.backoff)
            self._informers[key] = informer
        return informer

    def index(self, kind: Kind, name: str, fn: IndexFunc) -> None:
        """Add index ``name`` to ``kind``'s store unless a controller already did."""
        if (kind.plural, name) in self._indexes:
            return
        self._indexes[(kind.plural, name)] = fn
        self.get(kind).add_index(name, fn)

    def start(self) -> None:
        for plural, informer in sorted(self._informers.items()):
            self._tasks.append(asyncio.create_task(informer.run(), name=f"informer-{plural}"))

    def synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    async def wait_synced(self) -> None:
        for informer in self._informers.values():
            await informer.wait_synced()
        log.info("informers synced: %s", ", ".join(
            f"{plural} ({len(i.store)})" for plural, i in sorted(self._informers.items())))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
