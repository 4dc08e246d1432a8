"""Following the committed log: one follower per process feeds the watch hub.

kine's shape (``pkg/logstructured/sqllog/sql.go``): one loop reads log rows after
the last revision it delivered; a local writer nudges it without blocking; events
leave in revision order, each once. Two sources feed the same sequencing:

- the nudge: the writer thread hands over each commit's events right after
  COMMIT (``Backend.on_commit``). They are sequenced on the event loop at once,
  so in one process a watch event costs no database read;
- the poll: ``Backend.read_log(after=delivered)`` on a thread, every
  ``poll_interval``, whenever the nudged events do not continue the sequence, and
  whenever the backend says another API server committed (an empty nudge: on
  PostgreSQL a NOTIFY; elsewhere the poll interval bounds the delay).

Every server on one database runs one follower, and each sees every server's
writes in the one revision order. A hole in the revisions (rows after it are
committed, it is not) waits up to ``gap_wait`` for the missing row, re-reading the
log, and is then skipped with a warning. The store never leaves one: writers take
revisions under a lock held to COMMIT (``store``), so revisions commit in order
with none lost; the wait only guards against rows written behind its back (a hand
edit, a restore). A follower that finds its place
compacted away (410 from the log) cuts its subscribers, which resume by
resourceVersion and relist, and goes on from the compacted revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

import anyio

from apiserver.errors import Gone
from apiserver.storage.backend import Backend, Event
from componentbase.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Another server's writes reach this one's watchers within this (on PostgreSQL its
# NOTIFY wakes the follower sooner); this server's own writes nudge it at once.
POLL_INTERVAL = 1.0
# How long a hole in the revisions may wait for its transaction to commit. Long
# enough for a slow commit on a busy database, short next to a watch's patience.
GAP_WAIT = 2.0
# Re-read interval while waiting on a hole.
GAP_RETRY = 0.05
# Events per log read: bounds one read's memory while catching up.
READ_BATCH = 1000


class Sink(Protocol):
    """Where delivered events go (the watch hub)."""

    def publish(self, events: list[Event]) -> None: ...

    def skip_to(self, revision: int) -> None: ...


def in_order(delivered: int, events: Iterable[Event]) -> tuple[list[Event], int | None]:
    """Which of ``events`` continue the sequence after ``delivered``, and the first hole.

    Events at or below ``delivered`` are duplicates and dropped. Returns the events
    that follow on without a hole, and the missing revision if an event beyond it
    stopped the run (None when there was no hole). By revision: after 3, events
    3, 4, 5, 7 give ([4, 5], 6); after 3, event 6 alone gives ([], 4).
    """
    ready: list[Event] = []
    expected = delivered + 1
    for ev in events:
        if ev.rv < expected:
            continue
        if ev.rv > expected:
            return ready, expected
        ready.append(ev)
        expected += 1
    return ready, None


class LogFollower:
    """Delivers committed events to ``sink`` in revision order, each exactly once.

    Start it on the event loop; ``nudge`` may be called from any thread. After
    ``stop`` it delivers nothing more.
    """

    def __init__(self, backend: Backend, sink: Sink, *, after: int,
                 poll_interval: float = POLL_INTERVAL, gap_wait: float = GAP_WAIT,
                 gap_retry: float = GAP_RETRY, read_batch: int = READ_BATCH) -> None:
        self.delivered = after
        self._backend = backend
        self._sink = sink
        self._poll_interval = poll_interval
        self._gap_wait = gap_wait
        self._gap_retry = gap_retry
        self._read_batch = read_batch
        self._pushed: deque[Sequence[Event]] = deque()  # appended by the writer thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopped = False

    def start(self) -> None:
        """Begin following: take nudges from the backend's writer and poll its log."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._backend.on_commit(self.nudge)
        self._task = self._loop.create_task(self._run(), name="log-follower")

    @property
    def alive(self) -> bool:
        """Following: without it no watcher hears of a write."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    def nudge(self, events: Sequence[Event] = ()) -> None:
        """Committed events are in the log (any thread, never blocks); ``events`` are them."""
        if self._stopped or self._loop is None:
            return
        self._pushed.append(events)
        with contextlib.suppress(RuntimeError):  # the loop closed under a late commit
            self._loop.call_soon_threadsafe(self._take_pushed)

    def _take_pushed(self) -> None:
        while self._pushed:
            events = self._pushed.popleft()
            if not events:
                self._poll_now()
                continue
            if self._accept(events) is not None:
                self._poll_now()  # the log has what the nudge skipped

    def _poll_now(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _accept(self, events: Iterable[Event]) -> int | None:
        """Deliver what continues the sequence; returns the first hole, if any."""
        if self._stopped:
            return None
        ready, hole = in_order(self.delivered, events)
        if ready:
            self.delivered = ready[-1].rv
            self._sink.publish(ready)
        return hole

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopped:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the wake-up
            # instead of raising when a cancellation (``stop``) arrives in the same loop
            # turn, and this loop went on polling while ``stop`` waited for it forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:  # noqa: BLE001 - a failed poll is retried at the next one
                log.exception("reading the event log after revision %d failed", self.delivered)

    async def catch_up(self) -> None:
        """Read the log after ``delivered`` until it has nothing more that can be delivered."""
        loop = asyncio.get_running_loop()
        hole_since: float | None = None
        while not self._stopped:
            after = self.delivered
            try:
                events = await anyio.to_thread.run_sync(
                    functools.partial(self._backend.read_log, after, limit=self._read_batch))
            except Gone:
                await self._restart_from_compacted(after)
                continue
            hole = self._accept(events)
            if hole is None:
                if len(events) < self._read_batch:
                    return
                continue  # a full page: more may follow
            hole_since = hole_since if hole_since is not None else loop.time()
            if loop.time() - hole_since >= self._gap_wait:
                log.warning("revision %d never appeared in the event log; skipped", hole)
                self.delivered = hole
                hole_since = None
                continue
            await asyncio.sleep(self._gap_retry)

    async def _restart_from_compacted(self, after: int) -> None:
        compacted = await anyio.to_thread.run_sync(self._backend.compacted)
        log.warning("event log compacted past revision %d (to %d); watchers resume and relist",
                    after, compacted)
        self.delivered = max(self.delivered, compacted)
        self._sink.skip_to(self.delivered)
