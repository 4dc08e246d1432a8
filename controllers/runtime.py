"""The level-triggered controller loop every controller here shares.

A controller turns informer events into keys (``namespace/name`` or ``name``) on its
work queue, and ``sync(key)`` reconciles one key from the informer caches:

- it returns None when the key is done, or a number of seconds after which the
  key must be looked at again (a deadline such as a node's grace period, or a
  cache that hasn't caught up with our own write yet);
- it raises to have the key retried with per-key exponential backoff (5 ms
  doubling to 1000 s), which is right for conflicts (the cache is about to move)
  and for an unreachable API server alike.

Workers are asyncio tasks; the queue never hands one key to two workers, so a
``sync`` may assume it is the only one working on its key. Every outcome is
counted (``controllers.metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from client.errors import ApiError
from client.workqueue import Clock, WorkQueue
from componentbase.tasks import cancel_and_wait
from controllers.metrics import Metrics

log = logging.getLogger(__name__)


class MeteredQueue(WorkQueue[str]):
    """A ``WorkQueue`` that counts adds (new keys only, as client-go) and retries."""

    def __init__(self, name: str, metrics: Metrics, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.name = name
        self._metrics = metrics
        metrics.queue(name, self.len)

    def add(self, key: str) -> None:
        if not self.shutting_down and not self.is_dirty(key):
            self._metrics.queue_adds[self.name] += 1
        super().add(key)

    def add_rate_limited(self, key: str) -> None:
        self._metrics.queue_retries[self.name] += 1
        super().add_rate_limited(key)


class Controller:
    """Base class: a named queue, ``workers`` tasks, and ``sync`` to override."""

    name = "controller"

    def __init__(self, metrics: Metrics, *, workers: int = 1, clock: Clock | None = None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.metrics = metrics
        self.workers = workers
        self.queue = MeteredQueue(self.name, metrics, clock=clock)
        self._timer = timer

    async def prepare(self) -> None:
        """Called once after the informers synced, before the first ``sync``."""

    async def sync(self, key: str) -> float | None:
        raise NotImplementedError

    async def run(self) -> None:
        """Run the workers until cancelled; then shut the queue down."""
        await self.prepare()
        tasks = [asyncio.create_task(self._work(), name=f"{self.name}-worker-{i}")
                 for i in range(self.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shut_down()
            await cancel_and_wait(tasks)

    async def _work(self) -> None:
        async for key in self.queue:
            started = self._timer()
            result: str | None = None  # stays None only if cancelled mid-sync
            try:
                again = await self.sync(key)
            except ApiError as exc:
                result = "error"
                self.queue.add_rate_limited(key)
                log.warning("%s: sync of %s failed (retry %d): %s", self.name, key,
                            self.queue.num_requeues(key), exc.message)
            except Exception:  # a bug: retry later, with the traceback logged once per try
                result = "error"
                self.queue.add_rate_limited(key)
                log.exception("%s: sync of %s failed (retry %d)", self.name, key,
                              self.queue.num_requeues(key))
            else:
                self.queue.forget(key)
                result = "success"
                if again is not None:
                    result = "requeue"
                    self.queue.add_after(key, max(again, 0.0))
            finally:
                self.queue.done(key)
                if result is not None:
                    self.metrics.reconciled(self.name, result, self._timer() - started)
