"""Informer: a local, indexed cache of one kind kept current by list+watch, with handlers.

Guarantees (as client-go's ``SharedInformer`` states them):

- **Eventual consistency.** The store converges to the server's state for the
  watched collection: after a dropped stream it resumes from the last version it
  saw; after a 410 (its version was compacted) or a server restart it relists and
  replaces the store. Between those moments the cache may lag the server. With
  several API servers, a dropped stream resumes on the next one at once; one
  that is behind the version seen makes it relist there.
- **Per-object order.** Handlers see each object's changes in the server's order;
  no guarantee holds *across* objects.
- **Deletes carry the last known state.** ``on_delete`` gets the object as the
  server last reported it (the DELETED event's object, or the cached copy when a
  relist finds it gone), never a tombstone marker.
- **Diffs after a relist.** A relist calls ``on_add`` for new objects, ``on_update``
  for changed ones (different resourceVersion) and ``on_delete`` for vanished ones,
  so nothing missed while disconnected goes unseen. Unchanged objects get nothing.
- **Resync.** With a ``resync_period``, every cached object is passed to
  ``on_update(obj, obj)`` that often, so level-triggered controllers re-check the
  world even if they dropped work. Compare resourceVersions to skip them cheaply.
- A handler added after the first list gets ``on_add`` for every cached object.

Handlers run on the informer's event-loop task, one at a time; they must be fast
(turn the object into a key and enqueue it) and must not modify the objects they
get, which are the cached ones. An exception in a handler is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from apimachinery.keys import object_key
from apimachinery.kinds import Kind
from client.backoff import Backoff
from client.http import AsyncClient
from client.store import IndexFunc, Store
from client.watch import MIN_WATCH_TIMEOUT, PAGE_SIZE, Listed, Target, watch_forever

log = logging.getLogger(__name__)

Object = dict[str, Any]
AddHandler = Callable[[Object], None]
UpdateHandler = Callable[[Object, Object], None]
DeleteHandler = Callable[[Object], None]


@dataclass(frozen=True)
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class Informer:
    """List+watch one kind into ``store`` and tell handlers what changed.

    ``run()`` runs until cancelled. ``min_watch_timeout`` (seconds) sets the random
    watch length range ``[min, 2·min)``; ``page_size`` the list page size.
    """

    def __init__(self, client: AsyncClient, kind: Kind, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float | None = None, backoff: Backoff | None = None,
                 min_watch_timeout: float = MIN_WATCH_TIMEOUT,
                 page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.target = Target(kind, namespace, label_selector, field_selector)
        self.resync_period = resync_period
        self.backoff = backoff or Backoff()
        self.min_watch_timeout = min_watch_timeout
        self.page_size = page_size
        self.store = Store()
        self.has_synced = False
        self.last_resource_version = ""
        self._handlers: list[_Handlers] = []
        self._synced = asyncio.Event()

    @property
    def kind(self) -> Kind:
        return self.target.kind

    def add_handler(self, on_add: AddHandler | None = None,
                    on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        """Register callbacks ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)``."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if self.has_synced and on_add is not None:
            for obj in self.store.list():
                self._call(on_add, obj)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Add a store index (see ``Store.add_index``); allowed before or after ``run``."""
        self.store.add_index(name, fn)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first list to be in the store; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """List, watch, resume and relist forever; cancel the task to stop."""
        resync = (asyncio.create_task(self._resync_loop(self.resync_period))
                  if self.resync_period else None)
        try:
            await self._consume()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync  # nothing of the informer outlives run()

    # -- internals -------------------------------------------------------------------

    async def _consume(self) -> None:
        stream = watch_forever(self.client, self.target, backoff=self.backoff,
                               min_watch_timeout=self.min_watch_timeout,
                               page_size=self.page_size, rng=random.Random())
        async with aclosing(stream):
            async for item in stream:
                if isinstance(item, Listed):
                    self._replace(item)
                else:
                    self._apply(item)

    def _replace(self, listed: Listed) -> None:
        old = self.store.items()
        self.store.replace(listed.items, listed.resource_version)
        self.last_resource_version = listed.resource_version
        added = updated = deleted = 0
        for key, obj in self.store.items().items():
            before = old.pop(key, None)
            if before is None:
                added += 1
                self._emit_add(obj)
            elif _version(before) != _version(obj):
                updated += 1
                self._emit_update(before, obj)
        for obj in old.values():
            deleted += 1
            self._emit_delete(obj)
        if not self.has_synced:
            self.has_synced = True
            self._synced.set()
            log.info("%s: synced %d objects at resourceVersion %s", self.target.describe(),
                     len(self.store), listed.resource_version)
        else:
            log.info("%s: relisted at resourceVersion %s: %d added, %d updated, %d deleted",
                     self.target.describe(), listed.resource_version, added, updated, deleted)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event["type"], event["object"]
        version = _version(obj)
        if version:
            self.last_resource_version = version
            self.store.resource_version = version
        if kind == "BOOKMARK":
            return
        if kind == "DELETED":
            self.store.delete(object_key(obj))
            log.debug("%s: deleted %s at %s", self.target.describe(), object_key(obj), version)
            self._emit_delete(obj)
            return
        old = self.store.upsert(obj)
        log.debug("%s: %s %s at %s", self.target.describe(), kind.lower(), object_key(obj),
                  version)
        if old is None:
            self._emit_add(obj)
        else:
            self._emit_update(old, obj)

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in self.store.list():
                self._emit_update(obj, obj)

    def _emit_add(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Object, new: Object) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable[..., None], *args: Object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self.target.describe(), fn)


def _version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
