"""Work queues for level-triggered controllers (asyncio), in client-go's layers.

- ``Queue`` only de-duplicates, with a *dirty* set (keys waiting to be worked)
  and a *processing* set (keys a worker holds). A key is never handed to two
  workers at once; a key added while it is being worked is handed out again after
  its ``done()``; adding a key that is already waiting does nothing.
- ``DelayingQueue`` adds ``add_after``: a heap of (ready time, key), keeping only
  the earliest time per key; due keys are moved into the queue when a worker asks.
- ``WorkQueue`` adds rate-limited requeues (``add_rate_limited`` / ``forget`` /
  ``num_requeues``) through a ``RateLimiter`` policy; the default is per-item
  exponential backoff from 5 ms to 1000 s, as client-go's controllers use.

The clock is a field, so tests drive ``FakeClock.advance`` instead of sleeping.
All methods must be called from the event loop that runs the workers (handlers on
an informer's task qualify); ``add`` and ``done`` are plain functions, so event
handlers can enqueue without awaiting.

A worker, as sample-controller writes it (``run_worker`` does exactly this)::

    while True:
        key = await queue.get()          # raises ShutDown when shut down and empty
        try:
            await sync(key)
            queue.forget(key)            # success: reset the key's backoff
        except Exception:
            queue.add_rate_limited(key)  # failure: retry later, slower each time
        finally:
            queue.done(key)              # always, or the key is stuck forever
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
# a rate limiter only takes keys, so one for a wider key type serves a narrower one
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """``get()`` on a queue that was shut down and has nothing left to hand out."""


# -- clocks ----------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told: ``sleep`` returns once ``advance`` passes
    its deadline. For tests of anything that takes a ``Clock``."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


# -- rate limiters -----------------------------------------------------------------------


class RateLimiter(Protocol[K_contra]):
    """How long to wait before a key's next retry (client-go's three methods)."""

    def when(self, key: K_contra) -> float:
        """Seconds until ``key`` may be retried; counts as one more failure."""
        ...

    def forget(self, key: K_contra) -> None:
        """``key`` succeeded: stop tracking it."""
        ...

    def num_requeues(self, key: K_contra) -> int:
        """Failures counted for ``key`` since it was last forgotten."""
        ...


class ItemExponentialRateLimiter(Generic[K]):
    """``base · 2^failures`` per key, capped: 5 ms, 10 ms, 20 ms, … 1000 s by default.

    The small base retries a conflict almost at once; the large cap (~17 min) keeps a
    permanently failing key from costing more than a request every quarter hour.
    """

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp > 1000:  # 2**1000 already dwarfs any cap; avoid float overflow
            return self.cap
        return min(self.cap, self.base * 2.0 ** exp)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter(Generic[K]):
    """An overall token bucket (``qps`` tokens a second, up to ``burst``): bounds the
    total retry rate however many keys fail at once. Tracks no key."""

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None
                 ) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock or MonotonicClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, key: K) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: K) -> None:
        pass

    def num_requeues(self, key: K) -> int:
        return 0


class MaxOfRateLimiter(Generic[K]):
    """The longest wait any of its limiters asks for (client-go's controller default
    combines per-item exponential with a 10 qps / 100 burst bucket)."""

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        self.limiters = limiters

    def when(self, key: K) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: K) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


# -- queues ------------------------------------------------------------------------------


class Queue(Generic[K]):
    """De-duplicating FIFO with dirty and processing sets (see module docstring).

    After ``shut_down()``, ``add`` is ignored and ``get`` still hands out what is
    queued, then raises ``ShutDown`` (as client-go's queue drains); cancel the
    workers instead to stop at once.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def add(self, key: K) -> None:
        """Mark ``key`` as needing work (no-op if it already does)."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # handed out again by done()
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> K:
        """Wait for a key and mark it processing; the caller must call ``done(key)``."""
        while True:
            self._promote()
            if self._queue:
                break
            if self._shutting_down:
                raise ShutDown
            await self._wait(self._next_ready_at())
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        """Finish with ``key``; if it was added meanwhile, queue it again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shut_down(self) -> None:
        """Stop accepting keys; idle ``get()`` callers get ``ShutDown``."""
        self._shutting_down = True
        self._wake_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def is_dirty(self, key: K) -> bool:
        """Whether ``key`` is marked as needing work, i.e. an ``add`` now is a no-op."""
        return key in self._dirty

    def len(self) -> int:
        """Keys waiting to be handed out (not counting delayed or processing ones)."""
        self._promote()
        return len(self._queue)

    def __len__(self) -> int:
        return self.len()

    def __aiter__(self) -> Queue[K]:
        return self

    async def __anext__(self) -> K:
        """``async for key in queue`` until shut down; still call ``done(key)``."""
        try:
            return await self.get()
        except ShutDown:
            raise StopAsyncIteration from None

    # -- hooks for the delaying layer ------------------------------------------------

    def _promote(self) -> None:
        """Move keys whose delay has passed into the queue (none at this layer)."""

    def _next_ready_at(self) -> float | None:
        """When the next delayed key becomes due (None: no delayed keys)."""
        return None

    # -- waiting ---------------------------------------------------------------------

    async def _wait(self, ready_at: float | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(future)
        timer: asyncio.Task[None] | None = None
        try:
            if ready_at is None:
                await future
            else:
                timer = asyncio.ensure_future(
                    self.clock.sleep(max(0.0, ready_at - self.clock.now())))
                await asyncio.wait({future, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Woken for a key but cancelled before taking it: pass the wake-up on.
            if future.done() and not future.cancelled() and self._queue:
                self._wake_one(skip=future)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.cancel()
            with contextlib.suppress(ValueError):
                self._getters.remove(future)

    def _wake_one(self, skip: asyncio.Future[None] | None = None) -> None:
        while self._getters:
            future = self._getters.popleft()
            if future is not skip and not future.done():
                future.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._getters:
            future = self._getters.popleft()
            if not future.done():
                future.set_result(None)


class DelayingQueue(Queue[K]):
    """``Queue`` plus ``add_after(key, delay)``."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._seq = itertools.count()

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed; an earlier pending time for
        the same key wins. ``delay <= 0`` adds at once."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self.clock.now() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._ready_at[key] = ready_at
        heapq.heappush(self._waiting, (ready_at, next(self._seq), key))
        self._wake_all()  # idle workers recompute how long to wait

    def shut_down(self) -> None:
        self._waiting.clear()
        self._ready_at.clear()
        super().shut_down()

    def _promote(self) -> None:
        now = self.clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._waiting)
            if self._ready_at.get(key) != ready_at:
                continue  # superseded by an earlier time for the same key
            del self._ready_at[key]
            self.add(key)

    def _next_ready_at(self) -> float | None:
        return self._waiting[0][0] if self._waiting else None


class WorkQueue(DelayingQueue[K]):
    """The queue controllers use: de-duplicating, delaying, rate-limited requeues."""

    def __init__(self, *, rate_limiter: RateLimiter[K] | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.rate_limiter: RateLimiter[K] = rate_limiter or ItemExponentialRateLimiter()

    def add_rate_limited(self, key: K) -> None:
        """Requeue ``key`` after its rate limiter's delay (one more failure)."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next failure starts from the base delay again."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)


async def run_worker(queue: WorkQueue[K], sync: Callable[[K], Awaitable[None]], *,
                     name: str = "worker") -> None:
    """Take keys and ``sync`` them until the queue shuts down (see module docstring).

    A failed sync is logged in one line and requeued rate-limited; ``sync`` should
    treat "object not in cache" as "deleted, nothing to do".
    """
    async for key in queue:
        try:
            await sync(key)
        except Exception as exc:  # any failure means "retry later"; cancellation passes
            queue.add_rate_limited(key)
            log.warning("%s: sync of %s failed (retry %d): %s", name, key,
                        queue.num_requeues(key), exc)
        else:
            queue.forget(key)
        finally:
            queue.done(key)
