"""Can the database take a commit right now? What ``/readyz``'s ``storage`` check asks.

Reading is not enough: a read-only file, a full disk or a database in read-only
mode serve every read and fail every write. So the writer thread records how its
last commit went (a real batch of writes, or a probe), and a check that finds that
record older than ``fresh`` submits a probe: a commit of one bookkeeping row no
client sees (``Store.probe``). On SQLite a rolled-back write or ``BEGIN
IMMEDIATE`` proves nothing (an immutable or full file fails only when the commit
writes); on PostgreSQL a read-only transaction fails at the first write. A busy
server answers from its writes; an idle one commits at most one probe per
``fresh`` seconds, and only when something asks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger(__name__)

# How old the last commit's outcome may be before a check probes again.
FRESH = 1.0
# How long a check waits for its probe (Kubernetes' --etcd-healthcheck-timeout: 2 s).
TIMEOUT = 2.0


def driver_message(exc: BaseException) -> str:
    """The driver's own words for an error (SQLAlchemy wraps them), on one line."""
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class CommitHealth:
    """The last commit's outcome (written by the writer thread) and the probe behind it."""

    def __init__(self, probe: Callable[[], Future], *, alive: Callable[[], bool] = lambda: True,
                 fresh: float = FRESH, timeout: float = TIMEOUT) -> None:
        self._probe = probe
        self._alive = alive
        self._fresh = fresh
        self._timeout = timeout
        self._lock = threading.Lock()
        self._error: str | None = None
        self._at: float | None = None  # time.monotonic() of the last outcome
        self._pending: Future | None = None

    @property
    def error(self) -> str | None:
        """Why the last commit failed; None if it succeeded (or none was tried yet)."""
        return self._error

    def record(self, error: str | None) -> None:
        """On the writer thread: a commit that wrote succeeded (None) or failed (why)."""
        with self._lock:
            before, self._error, self._at = self._error, error, time.monotonic()
        if error is not None and before is None:
            log.error("storage cannot commit: %s", error)
        elif error is None and before is not None:
            log.info("storage commits again")

    async def check(self) -> str | None:
        """None when the database took a commit within ``fresh`` seconds (probing if
        nothing did); else why not."""
        if not self._alive():  # no writer takes the probe: don't wait for it, or queue it
            return "the storage writer is not running"
        at = self._at
        if at is not None and time.monotonic() - at < self._fresh:
            return self._error
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = self._probe()
            pending = self._pending
        try:
            # shield: a timed-out check must not cancel the queued probe under the writer
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(asyncio.wrap_future(pending))
        except TimeoutError:
            return f"no commit within {self._timeout:g}s"
        except Exception:  # noqa: BLE001, S110 - the writer recorded why
            pass
        return self._error
