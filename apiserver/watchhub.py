"""Fan-out of committed events to watch streams.

The process's ``LogFollower`` hands events to ``publish`` on the event loop, in
revision order and each once, as it reads them from the committed log. Every
subscriber has its own bounded buffer: publishing never waits for a reader, and a
subscriber that falls more than ``buffer`` events behind is closed (``cut``)
instead of stalling writers or other watchers. Its client then resumes from the
last resourceVersion it saw, which the event log can replay. The buffer holds
references to the shared ``Event`` objects, so its memory is the events', once.

Waking watchers is what costs under load (each wake is a task step and a TLS
write), so publishing only appends to buffers; wakes are paced: at most one round
per ``coalesce`` window while events keep coming (the first event after a quiet
spell wakes at once), and a round wakes ``WAKE_SLICE`` subscribers per loop
iteration so request handling (the writes) runs in between. A watcher then writes
everything it has in one send: the cost per watcher is per round, not per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from apiserver.storage.backend import Event

# Events a watcher may lag behind before its stream is cut. A relist of a few
# thousand objects is cheaper than holding an unbounded queue for a stuck client.
DEFAULT_BUFFER = 10_000
# Under load, wakes are paced to about this many per second in all (each is a
# task step and a TLS write, ~50 us): 500 watchers wake at most every 100 ms,
# 10 every 2 ms; never waiting longer than MAX_COALESCE.
WAKES_PER_SECOND = 5000
MAX_COALESCE = 0.25
# Subscribers woken per event-loop iteration: other ready I/O runs between slices.
WAKE_SLICE = 64


class Batch:
    """Events of one publish for one (resource, namespace) view, in revision order.

    Every subscriber of that view gets the same object, so what is derived from it
    (the watch lines of an unfiltered JSON watcher, ``shared``) is built once.
    """

    __slots__ = ("events", "_shared")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self._shared: dict[str, bytes] = {}

    @property
    def first_rv(self) -> int:
        return self.events[0].rv

    @property
    def last_rv(self) -> int:
        return self.events[-1].rv

    def shared(self, key: str, build: Callable[[list[Event]], bytes]) -> bytes:
        """``build(events)``, computed by the first subscriber that asks for ``key``."""
        value = self._shared.get(key)
        if value is None:
            value = self._shared[key] = build(self.events)
        return value


class Subscriber:
    """One watch stream's view of the live feed."""

    def __init__(self, resource: str, namespace: str | None, start_rv: int, buffer: int,
                 hub: WatchHub | None = None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.start_rv = start_rv  # every event after this arrives through the buffer
        self.closed = False
        self.overflowed = False  # closed because it fell behind, not because we stop
        self._buffer = buffer
        self._hub = hub
        self._pending: list[Batch] = []
        self._count = 0  # events in _pending
        self._waiter: asyncio.Future[None] | None = None
        # resolved when the stream is closed, so a response stuck writing to a
        # client that does not read can be cut without waiting for the write
        self.cut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer_batch(self, batch: Batch) -> None:
        """Buffer ``batch`` (already this subscriber's resource and namespace)."""
        if self.closed:
            return
        self._pending.append(batch)
        self._count += len(batch.events)
        if self._count > self._buffer:
            self.overflowed = True
            self.close()
            return
        if self._hub is None:
            self.wake()
        else:
            self._hub.schedule_wake(self)

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._count = 0
        self.wake()
        if not self.cut.done():
            self.cut.set_result(None)

    @property
    def idle(self) -> bool:
        """Nothing waiting: everything published so far has been taken."""
        return not self._pending

    def drain(self) -> list[Batch]:
        batches, self._pending = self._pending, []
        self._count = 0
        return batches

    async def wait(self, timeout: float) -> None:
        """Return when events are pending, the stream is closed, or ``timeout`` passes."""
        if self._pending or self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class WatchHub:
    def __init__(self, last_rv: int = 0, buffer: int = DEFAULT_BUFFER) -> None:
        self.last_rv = last_rv
        self._buffer = buffer
        self._by_resource: dict[str, set[Subscriber]] = {}
        self._progress = asyncio.Condition()
        self.closed = False
        self.cut = 0  # streams closed for falling behind (metrics)
        self._due: dict[Subscriber, None] = {}  # to wake at the next round, in order
        self._round: asyncio.Handle | None = None
        self._last_round = 0.0

    def subscribe(self, resource: str, namespace: str | None) -> Subscriber:
        sub = Subscriber(resource, namespace, self.last_rv, self._buffer, self)
        if self.closed:
            sub.close()  # stopping: a watch that arrives now ends at once
            return sub
        self._by_resource.setdefault(resource, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._by_resource.get(sub.resource)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_resource[sub.resource]
        self._due.pop(sub, None)

    @property
    def watchers(self) -> int:
        return sum(len(s) for s in self._by_resource.values())

    def publish(self, events: list[Event]) -> None:
        for resource, by_ns, every in _grouped(events):
            for sub in tuple(self._by_resource.get(resource, ())):
                mine = every if sub.namespace is None else by_ns.get(sub.namespace)
                if mine is not None:
                    sub.offer_batch(mine)
                    if sub.overflowed and sub.closed:
                        self.cut += 1
                        self.unsubscribe(sub)
        if events:
            self.last_rv = max(self.last_rv, events[-1].rv)
            asyncio.get_running_loop().create_task(self._notify_progress())

    def schedule_wake(self, sub: Subscriber) -> None:
        """Wake ``sub`` at the next round: now if the last was a window ago, else then."""
        self._due[sub] = None
        if self._round is not None:
            return
        loop = asyncio.get_running_loop()
        window = min(MAX_COALESCE, self.watchers / WAKES_PER_SECOND)
        at = self._last_round + window
        if at <= loop.time():
            self._round = loop.call_soon(self._wake_round)
        else:
            self._round = loop.call_at(at, self._wake_round)

    def _wake_round(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_round = loop.time()
        self._round = None
        self._wake_slice(list(self._due))
        self._due.clear()

    def _wake_slice(self, subs: list[Subscriber]) -> None:
        for sub in subs[:WAKE_SLICE]:
            sub.wake()
        if len(subs) > WAKE_SLICE:
            asyncio.get_running_loop().call_soon(self._wake_slice, subs[WAKE_SLICE:])

    async def _notify_progress(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def wait_for_revision(self, rv: int, timeout: float) -> bool:
        """Wait until events up to ``rv`` were published (a client ahead of us after a race)."""
        async with self._progress:
            try:
                async with asyncio.timeout(timeout):
                    await self._progress.wait_for(lambda: self.last_rv >= rv)
            except TimeoutError:
                return False
        return True

    def skip_to(self, revision: int) -> None:
        """Events up to ``revision`` will never arrive (compacted before we read them).

        Every stream is cut as if it fell behind: its client resumes from the last
        resourceVersion it saw, gets 410 Gone, and relists.
        """
        for subs in self._by_resource.values():
            for sub in subs:
                sub.overflowed = True
                sub.close()
        self.last_rv = max(self.last_rv, revision)

    def close_all(self) -> None:
        self.closed = True
        for subs in self._by_resource.values():
            for sub in subs:
                sub.close()


def _grouped(events: list[Event]) -> Iterable[tuple[str, dict[str, Batch], Batch]]:
    """Per resource: a batch of its events per namespace, and one of all of them."""
    by_resource: dict[str, tuple[dict[str, list[Event]], list[Event]]] = {}
    for ev in events:
        entry = by_resource.get(ev.resource)
        if entry is None:
            entry = by_resource[ev.resource] = ({}, [])
        entry[0].setdefault(ev.namespace, []).append(ev)
        entry[1].append(ev)
    for resource, (by_ns, every) in by_resource.items():
        yield resource, {ns: Batch(evs) for ns, evs in by_ns.items()}, Batch(every)
