"""When the proxy syncs, checks and collects: a pure function of the clock.

kube-proxy's ``BoundedFrequencyRunner``, as one decision: given the time, what is
waiting, and what ``Schedule`` remembers (when the last sync started, the last
full sync and drift check ended, the failures so far), ``next_action`` says what
to do now, or until when to wait. ``Proxier.run`` only asks, waits and acts; the
rules below are all here, and ``tests/unit/test_proxy_schedule.py`` checks them
with a fake clock.

- A change after a quiet spell is synced at once; changes arriving within
  ``min_sync_period`` of the last sync's start are coalesced into the next one:
  at most one sync per ``min_sync_period``.
- A failed sync is retried after a back-off doubling from ``max(min_sync_period,
  0.5 s)`` up to ``sync_period``; syncs keep that spacing however much changes.
- The sync is *full* when the proxier needs one (first sync, after a failure,
  after drift) or ``full_sync_period`` has passed since the last full sync; the
  periodic full sync is a pending sync like any other, so it too keeps the spacing
  and the retry back-off.
- Every ``sync_period`` the kernel is checked for drift. Only a full sync
  postpones the check (it rewrote everything); partial syncs don't, so a steady
  stream of changes can't keep a drifted kernel from being noticed. A check
  falling due while changes wait for their sync slot runs the check, not an
  early sync. While a full sync is pending the check waits for it (it could
  only ask for one).
- Removals' leftovers are collected once nothing is pending and the last sync
  started ``collect_delay`` ago, so a burst of removals costs one batch and never
  delays a change.

Times are the caller's monotonic clock (``loop.time()`` in the proxier).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

NEVER = math.inf
# Seconds of quiet after a sync before removals' leftovers are collected (at least
# twice the minimum sync period, see ``Timing.collect_after``).
COLLECT_DELAY = 0.5
# The first retry after a failure waits at least this long, even with a tiny
# min_sync_period: a failing iptables-restore should not spin.
MIN_RETRY_DELAY = 0.5


class Action(enum.Enum):
    WAIT = "wait"  # until ``Next.at`` or a change, whichever is first
    SYNC = "sync"  # partial: only what changed
    FULL_SYNC = "full sync"  # every owned chain rewritten, stale ones deleted
    CHECK = "check"  # compare the kernel with what was written
    COLLECT = "collect"  # delete removals' leftovers


@dataclass(frozen=True)
class Timing:
    """The periods, in seconds (``ProxyConfig``'s flags)."""

    min_sync_period: float
    sync_period: float
    full_sync_period: float
    collect_delay: float = COLLECT_DELAY

    @property
    def collect_after(self) -> float:
        return max(2 * self.min_sync_period, self.collect_delay)

    def retry_delay(self, failures: int) -> float:
        """Back-off before retrying after ``failures`` (≥ 1) failed syncs in a row."""
        first = max(self.min_sync_period, MIN_RETRY_DELAY)
        return min(self.sync_period, first * 2 ** (failures - 1))


@dataclass(frozen=True)
class Schedule:
    """What the runner remembers between decisions. Immutable: each event returns
    the next one."""

    last_sync: float = -NEVER  # start of the last sync attempt
    last_full: float = -NEVER  # end of the last successful full sync
    last_check: float = -NEVER  # the last drift check (or full sync: as good as one)
    failures: int = 0  # failed syncs in a row
    retry_at: float = -NEVER  # no sync before this (back-off after a failure)

    def synced(self, *, started: float, finished: float, full: bool) -> Schedule:
        """After a successful sync that ran from ``started`` to ``finished``."""
        done = replace(self, last_sync=started, failures=0, retry_at=-NEVER)
        return replace(done, last_full=finished, last_check=finished) if full else done

    def failed(self, *, started: float, finished: float, timing: Timing) -> Schedule:
        """After a failed sync: retried after the back-off, counted from its end."""
        failures = self.failures + 1
        return replace(self, last_sync=started, failures=failures,
                       retry_at=finished + timing.retry_delay(failures))

    def checked(self, *, at: float) -> Schedule:
        """After a drift check that started at ``at`` (whatever it found)."""
        return replace(self, last_check=at)


@dataclass(frozen=True)
class Next:
    action: Action
    at: float  # when it is due; for WAIT the time to wake (NEVER: only on a change)


def next_action(now: float, schedule: Schedule, timing: Timing, *, changes: bool,
                need_full: bool, garbage: bool) -> Next:
    """What to do at ``now``.

    ``changes``: Services changed since the last sync; ``need_full``: the proxier
    wants a full sync (first, after a failure, after drift); ``garbage``: partial
    syncs left removals' leftovers to collect.
    """
    full_at = schedule.last_full + timing.full_sync_period
    full = need_full or now >= full_at
    pending = changes or full
    sync_at = max(schedule.last_sync + timing.min_sync_period, schedule.retry_at) \
        if pending else NEVER
    # While a full sync is pending a check could only ask for one: it waits too.
    check_at = schedule.last_check + timing.sync_period if not full else NEVER
    collect_at = schedule.last_sync + timing.collect_after if garbage and not pending \
        else NEVER
    if now >= sync_at:
        return Next(Action.FULL_SYNC if full else Action.SYNC, sync_at)
    # A check falling due while changes wait for their slot runs the check.
    if now >= check_at:
        return Next(Action.CHECK, check_at)
    if now >= collect_at:
        return Next(Action.COLLECT, collect_at)
    return Next(Action.WAIT, min(sync_at, check_at, collect_at, NEVER if full else full_at))
