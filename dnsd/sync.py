"""Keeping the index in sync with the API server, and knowing whether it is.

Three ``client.Informer``\\s (Services, EndpointSlices, Namespaces, all
namespaces) feed the ``Index`` handlers. The informers resume, relist and back
off by themselves; while the API server is away dnsd keeps answering from what
it has.

"In sync" (``/readyz``) means: every informer has listed once, and the last
request each of them made got an answer. The informer doesn't expose whether its
watch is currently established, so dnsd hands the client an httpx transport
that watches the outcome of every request (and of every watch stream while it is
read) and files it under the resource the URL names. A watch that ends normally
(its timeout) changes nothing; a refused connection, a 5xx, or a stream cut
mid-way marks that resource out of sync until a request succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from apimachinery.kinds import ENDPOINTSLICE, NAMESPACE, SERVICE, Kind
from client.backoff import Backoff
from client.config import ClientConfig
from client.http import AsyncClient, tls_verify
from client.informer import Informer
from componentbase.tasks import cancel_and_wait
from dnsd.index import Index

log = logging.getLogger(__name__)

KINDS: tuple[Kind, ...] = (SERVICE, ENDPOINTSLICE, NAMESPACE)

# Reconnect fast: DNS answers go stale while the watch is down. 0.1 s doubling to
# 5 s keeps a restarted API server's outage under a second or two for dnsd and
# costs an unreachable one about 12 requests a minute per resource.
BACKOFF = Backoff(base=0.1, cap=5.0)
REQUEST_TIMEOUT = 10.0  # seconds for a list page; watches get their own read timeout


class ConnectionTracker:
    """Per-resource 'last request succeeded' flags, fed by ``TrackingTransport``."""

    def __init__(self, plurals: tuple[str, ...]) -> None:
        self.ok: dict[str, bool] = dict.fromkeys(plurals, False)
        self.last_error: dict[str, str] = {}

    def resource_of(self, url: httpx.URL) -> str | None:
        parts = url.path.rstrip("/").split("/")
        for plural in self.ok:
            if plural in parts:
                return plural
        return None

    def succeeded(self, resource: str | None) -> None:
        if resource is not None and not self.ok[resource]:
            self.ok[resource] = True
            if resource in self.last_error:
                log.info("%s: connected to the API server again", resource)
                del self.last_error[resource]

    def failed(self, resource: str | None, why: str) -> None:
        if resource is not None:
            if self.ok[resource]:
                log.warning("%s: lost the API server (%s); answering from the cache",
                            resource, why)
            self.ok[resource] = False
            self.last_error[resource] = why

    def problems(self) -> list[str]:
        return [f"{r}: {self.last_error.get(r, 'not connected yet')}"
                for r, ok in self.ok.items() if not ok]


class _TrackedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, tracker: ConnectionTracker,
                 resource: str | None) -> None:
        self.inner = inner
        self.tracker = tracker
        self.resource = resource

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except Exception as exc:
            self.tracker.failed(self.resource, type(exc).__name__)
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


class TrackingTransport(httpx.AsyncHTTPTransport):
    """An ordinary transport that reports each request's fate to a tracker."""

    def __init__(self, tracker: ConnectionTracker, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tracker = tracker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resource = self.tracker.resource_of(request.url)
        try:
            response = await super().handle_async_request(request)
        except Exception as exc:
            self.tracker.failed(resource, str(exc) or type(exc).__name__)
            raise
        if response.status_code >= 500:
            self.tracker.failed(resource, f"HTTP {response.status_code}")
        else:
            self.tracker.succeeded(resource)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TrackedStream(response.stream, self.tracker, resource)
        return response


class Syncer:
    """Runs the informers into an ``Index`` and answers 'are we in sync?'."""

    def __init__(self, config: ClientConfig, index: Index, *,
                 backoff: Backoff = BACKOFF) -> None:
        self.index = index
        self.tracker = ConnectionTracker(tuple(k.plural for k in KINDS))
        # a custom transport ignores the client's TLS settings unless given them
        transport = TrackingTransport(self.tracker, verify=tls_verify(config))
        self.client = AsyncClient(config, timeout=REQUEST_TIMEOUT, transport=transport)
        self.informers = [Informer(self.client, kind, backoff=backoff) for kind in KINDS]
        services, slices, namespaces = self.informers
        services.add_handler(index.service_added, index.service_updated, index.service_deleted)
        slices.add_handler(index.slice_added, index.slice_updated, index.slice_deleted)
        namespaces.add_handler(index.namespace_added, index.namespace_updated,
                               index.namespace_deleted)
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Start the informers, go live once all have synced, then run until cancelled."""
        self._tasks = [asyncio.create_task(i.run(), name=f"informer-{i.kind.plural}")
                       for i in self.informers]
        synced: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(i.wait_synced() for i in self.informers)))
        try:
            # An informer only ends by a bug; then stop instead of waiting forever.
            await asyncio.wait({synced, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
            if synced.done():
                self.index.go_live()
                await asyncio.gather(*self._tasks)
            for task in self._tasks:
                if task.done():
                    task.result()  # raises what ended it
            raise RuntimeError("an informer stopped")
        finally:
            await cancel_and_wait([synced, *self._tasks])
            await self.client.aclose()

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not): synced once, and every watch currently connected."""
        if not self.index.live:
            waiting = [i.kind.plural for i in self.informers if not i.has_synced]
            return False, "initial sync of " + ", ".join(waiting or ["the index"])
        problems = self.tracker.problems()
        return (not problems), "; ".join(problems)
