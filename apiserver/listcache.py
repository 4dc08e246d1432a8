"""The watch cache's list side: the latest state of each resource, kept in memory.

A list that accepts any recent state (``resourceVersion=0``, or not older than a
given revision) is answered from here instead of a database read, as
kube-apiserver's watch cache does; a consistent list (no resourceVersion), a
paged one and an exact one still read storage (``serves``).

A resource's view is loaded on its first such list: it starts recording the
events the follower publishes, reads storage at revision P, then applies the
recorded events after P. From then on every committed event of the resource is
applied in revision order (``publish`` is a follower sink, like the hub), so the
view is the state at ``max(P, hub.last_rv)``. When the follower had to skip
revisions (compaction), views are dropped and reload on the next list.

The encoded items of an unfiltered list are built once per state and namespace and
shared by every request that asks meanwhile: fifty concurrent lists of the same
collection cost one join.

A load runs in a task the cache owns, which every list that needs the view awaits
through ``asyncio.shield``: a request cancelled while waiting (its deadline, a
client gone) leaves the load running for the others, and a load that fails is
reported to its waiters as a 500 and retried by the next list.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from typing import Any

import anyio
import orjson

from apiserver.errors import APIError, InternalError
from apiserver.listopts import ListOptions
from apiserver.storage.backend import Backend, Event, Page

Key = tuple[str, str]  # (namespace, name)
log = logging.getLogger(__name__)


def serves(opts: ListOptions) -> bool:
    """Whether a list may come from the cache: kube-apiserver's ``shouldDelegateList``
    negated. A resourceVersion is given, no continue token, no exact match, and no
    limit unless the resourceVersion is "0" (where the limit is ignored: the whole
    collection, without a continue token)."""
    rv = opts.resource_version
    if rv is None or opts.continue_from is not None:
        return False
    if opts.resource_version_match not in (None, "NotOlderThan"):
        return False
    return opts.limit is None or rv == "0"


class _View:
    """One resource's objects as JSON text, by key, at ``revision``."""

    def __init__(self) -> None:
        self.objects: dict[Key, str] = {}
        self.revision = 0
        self.generation = 0  # bumped on every change: what a shared body was built from
        self.backlog: list[Event] | None = []  # events while loading
        self.task: asyncio.Task[None] | None = None  # the load (ListCache._start)
        self._keys: list[Key] | None = None
        self.bodies: dict[str | None, tuple[int, asyncio.Future[bytes]]] = {}

    def load(self, page: Page) -> None:
        for data in page.items:
            meta = orjson.loads(data)["metadata"]
            self.objects[(meta.get("namespace", ""), meta["name"])] = data
        self.revision = page.revision
        backlog, self.backlog = self.backlog or [], None
        for ev in backlog:
            self.apply(ev)

    def apply(self, ev: Event) -> None:
        if self.backlog is not None:
            self.backlog.append(ev)
            return
        if ev.rv <= self.revision:
            return  # already in the state the view was loaded from
        key = (ev.namespace, ev.name)
        if ev.type == "DELETED":
            if self.objects.pop(key, None) is not None:
                self._keys = None
        else:
            if key not in self.objects:
                self._keys = None
            self.objects[key] = ev.data
        self.revision = ev.rv
        self.generation += 1
        self.bodies.clear()

    def items(self, namespace: str | None) -> list[str]:
        """Objects in (namespace, name) order, as a storage list returns them."""
        if self._keys is None:
            self._keys = sorted(self.objects)
        keys = self._keys
        if namespace is not None:
            lo = bisect.bisect_left(keys, (namespace, ""))
            hi = bisect.bisect_left(keys, (namespace + "\0", ""))
            keys = keys[lo:hi]
        objects = self.objects
        return [objects[k] for k in keys]


class ListCache:
    def __init__(self, store: Backend, head: Callable[[], int]) -> None:
        self._store = store
        self._head = head  # the newest revision published to watchers
        self._views: dict[str, _View] = {}
        self._loads: set[asyncio.Task[None]] = set()  # running loads (the loop keeps none)

    # -- follower sink --

    def publish(self, events: list[Event]) -> None:
        views = self._views
        for ev in events:
            view = views.get(ev.resource)
            if view is not None:
                view.apply(ev)

    def skip_to(self, revision: int) -> None:
        """Events up to ``revision`` will never arrive: no view can be trusted."""
        self._views.clear()

    # -- reads --

    async def page(self, resource: str, namespace: str | None,
                   keep: Callable[[dict], bool] | None = None) -> Page:
        """The collection now (all of it: no limit), filtered by ``keep``."""
        view = await self._view(resource)
        items = view.items(namespace)
        revision = self._revision(view)
        if keep is not None:
            items = await anyio.to_thread.run_sync(
                lambda: [d for d in items if keep(orjson.loads(d))])
        return Page(revision, items, None)

    async def joined(self, resource: str, namespace: str | None) -> tuple[int, bytes]:
        """The revision and the comma-joined items of an unfiltered list, built once per
        state and shared by the requests that ask meanwhile."""
        view = await self._view(resource)
        revision = self._revision(view)
        built = view.bodies.get(namespace)
        if built is None or built[0] != view.generation:
            items = view.items(namespace)
            fut: asyncio.Future[bytes] = asyncio.ensure_future(
                anyio.to_thread.run_sync(lambda: ",".join(items).encode()))
            built = view.bodies[namespace] = (view.generation, fut)
        return revision, await asyncio.shield(built[1])

    def _revision(self, view: _View) -> int:
        return max(view.revision, self._head())

    async def _view(self, resource: str) -> _View:
        """The resource's loaded view, loading it if no list has yet (or the last load
        failed). Cancelling the caller never cancels the load others wait for."""
        while True:
            view = self._views.get(resource)
            if view is None:
                view = self._start(resource)
            if view.backlog is not None:
                assert view.task is not None
                await asyncio.shield(view.task)
            if self._views.get(resource) is view:
                return view
            # dropped while loading (skip_to): its state misses events; use the next load

    def _start(self, resource: str) -> _View:
        view = self._views[resource] = _View()
        view.task = task = asyncio.get_running_loop().create_task(
            self._load(resource, view), name=f"list cache: load {resource}")
        self._loads.add(task)
        task.add_done_callback(self._finished)
        return view

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._loads.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its waiters are told, none left logs it again

    async def _load(self, resource: str, view: _View) -> None:
        try:
            page = await anyio.to_thread.run_sync(lambda: self._store.list(resource, None))
            view.load(page)
        except BaseException as exc:
            if self._views.get(resource) is view:
                del self._views[resource]  # the next list tries again
            if isinstance(exc, Exception) and not isinstance(exc, APIError):
                log.error("loading the list cache of %s failed", resource, exc_info=exc)
                raise InternalError(f"reading {resource} from storage failed: {exc}") from exc
            raise

    async def close(self) -> None:
        """At shutdown: loads still reading storage are cancelled and waited for (a
        worker thread already reading finishes on its own)."""
        loads = list(self._loads)
        for task in loads:
            task.cancel()
        await asyncio.gather(*loads, return_exceptions=True)
        self._views.clear()

    @property
    def resources(self) -> dict[str, Any]:
        """Objects cached per resource (for metrics and tests)."""
        return {r: len(v.objects) for r, v in self._views.items() if v.backlog is None}
