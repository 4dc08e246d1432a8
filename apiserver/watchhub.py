"""Fan-out of committed events to watch streams.

The process's ``LogFollower`` hands events to ``publish`` on the event loop, in
revision order and each once, as it reads them from the committed log. Every subscriber has its own bounded buffer: publishing never waits for a reader,
and a subscriber that falls more than ``buffer`` events behind is closed instead of
stalling writers or other watchers. Its client then resumes from the last
resourceVersion it saw, which the event log can replay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from apiserver.storage.backend import Event

# Events a watcher may lag behind before its stream is cut. A relist of a few
# thousand objects is cheaper than holding an unbounded queue for a stuck client.
DEFAULT_BUFFER = 10_000


class Subscriber:
    """One watch stream's view of the live feed."""

    def __init__(self, resource: str, namespace: str | None, start_rv: int, buffer: int) -> None:
        self.resource = resource
        self.namespace = namespace
        self.start_rv = start_rv  # every event after this arrives through the buffer
        self.closed = False
        self.overflowed = False  # closed because it fell behind, not because we stop
        self._buffer = buffer
        self._pending: deque[Event] = deque()
        self._wakeup = asyncio.Event()

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        if self.namespace is not None and event.namespace != self.namespace:
            return
        if len(self._pending) >= self._buffer:
            self.overflowed = True
            self.close()
            return
        self._pending.append(event)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._wakeup.set()

    @property
    def idle(self) -> bool:
        """Nothing waiting: everything published so far has been taken."""
        return not self._pending

    def drain(self) -> list[Event]:
        events = list(self._pending)
        self._pending.clear()
        if not self.closed:
            self._wakeup.clear()
        return events

    async def wait(self, timeout: float) -> None:
        """Return when events are pending, the stream is closed, or ``timeout`` passes."""
        if self._pending or self.closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)


class WatchHub:
    def __init__(self, last_rv: int = 0, buffer: int = DEFAULT_BUFFER) -> None:
        self.last_rv = last_rv
        self._buffer = buffer
        self._by_resource: dict[str, set[Subscriber]] = {}
        self._progress = asyncio.Condition()
        self.closed = False

    def subscribe(self, resource: str, namespace: str | None) -> Subscriber:
        sub = Subscriber(resource, namespace, self.last_rv, self._buffer)
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

    @property
    def watchers(self) -> int:
        return sum(len(s) for s in self._by_resource.values())

    def publish(self, events: list[Event]) -> None:
        for event in events:
            for sub in tuple(self._by_resource.get(event.resource, ())):
                sub.offer(event)
        if events:
            self.last_rv = max(self.last_rv, events[-1].rv)
            asyncio.get_running_loop().create_task(self._notify_progress())

    async def _notify_progress(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def wait_for_revision(self, rv: int, timeout: float) -> bool:
        """Wait until events up to ``rv`` were published (a client ahead of us after a race)."""
        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(lambda: self.last_rv >= rv), timeout)
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
