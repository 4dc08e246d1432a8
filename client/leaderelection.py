"""Leader election on a Lease, with client-go's semantics (``tools/leaderelection``).

Candidates share one ``coordination.k8s.io/v1`` Lease. Three durations rule it:

- ``lease_duration``: a candidate may take the Lease from its holder only after it
  has seen the Lease *unchanged* for this long, measured on its own clock from when
  it saw the last change (not from ``renewTime``: no clock sync is assumed);
- ``renew_deadline``: the leader stops acting when it has not renewed for this long;
- ``retry_period``: the pause between attempts (acquiring, renewing).

Why the leader stops first: it stops at (the start of its last successful renewal)
+ ``renew_deadline``; another candidate can take over at the earliest at (when it
saw that renewal, which is after it was written, so after it started) +
``lease_duration``, and ``renew_deadline < lease_duration``. As in client-go this
holds while clocks run at about the same *rate*; the ratio of the two durations is
the tolerated rate difference.

Writes are optimistic: a renewal or a takeover is a PUT carrying the
``resourceVersion`` last read, so of two candidates racing for an expired Lease one
gets 409 Conflict. A change of holder counts in ``leaseTransitions``; a clean stop
releases the Lease (``holderIdentity`` "", ``leaseDurationSeconds`` 1: client-go's
``ReleaseOnCancel``) so a standby takes over at its next attempt.

A candidate that lost may run again (``mp-controllers`` does, rather than exit as
kube-controller-manager): ``run`` returns only once the leading work has ended, and
the candidate forgets its own claim (``after_loss``), so it reports not leading and
re-reads the Lease before it competes again.

Where this differs from client-go, on the safe side: the renew deadline is counted
from the last successful renewal (client-go counts from the start of each retry
round, so a leader may act up to one retry period longer); a leader that finds
another holder stops at once instead of retrying to its deadline; a waiting
candidate also tries at the instant the Lease it watches expires.

The decisions (``observe``, ``decide``, ``renewal``, ``released``, ``after_loss``,
``deadline``) are pure functions of the Lease read and a clock; ``LeaderElector`` is
the I/O around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apimachinery.kinds import LEASE
from apimachinery.timestamps import format_micro_time
from client.errors import ApiError, NotFound
from client.http import AsyncClient

log = logging.getLogger(__name__)
T = TypeVar("T")

# client-go's JitterFactor: the renew deadline must exceed this many retry periods.
JITTER_FACTOR = 1.2
# A waiting candidate's pause is retry_period × (1 + up to this), so candidates spread.
RETRY_JITTER = 0.2


# ---------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """kube-controller-manager's defaults: 15 s, 10 s, 2 s."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        problem = timing_problem(self.lease_duration, self.renew_deadline, self.retry_period)
        if problem:
            raise ValueError(problem)


def timing_problem(lease_duration: float, renew_deadline: float, retry_period: float, *,
                   names: tuple[str, str, str] = ("lease duration", "renew deadline",
                                                  "retry period")) -> str | None:
    """Why these durations cannot elect safely (client-go's checks), or None.

    The Lease holds whole seconds, so the lease duration must be one; ``names`` are
    what the message calls the three (a command's flags)."""
    lease, renew, retry = names
    if retry_period <= 0:
        return f"{retry} must be greater than zero"
    if renew_deadline <= 0:
        return f"{renew} must be greater than zero"
    if lease_duration < 1 or lease_duration != int(lease_duration):
        return f"{lease} must be a whole number of seconds, at least 1 (the Lease holds seconds)"
    if lease_duration <= renew_deadline:
        return f"{lease} ({lease_duration:g}s) must be greater than {renew} ({renew_deadline:g}s)"
    if renew_deadline <= JITTER_FACTOR * retry_period:
        return (f"{renew} ({renew_deadline:g}s) must be greater than {JITTER_FACTOR:g} × "
                f"{retry} ({retry_period:g}s)")
    return None


def default_identity() -> str:
    """kube-controller-manager's: the host name and a fresh UUID, so two processes on
    one host (or one restarted) are different candidates."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


# ---------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Observed:
    """The Lease spec a candidate last saw, and when it first saw it (its monotonic clock)."""

    spec: Mapping[str, Any]
    at: float

    @property
    def holder(self) -> str:
        holder = self.spec.get("holderIdentity")
        return holder if isinstance(holder, str) else ""

    @property
    def expires(self) -> float:
        """When a candidate that saw no change since ``at`` may take the Lease."""
        seconds = self.spec.get("leaseDurationSeconds")
        return self.at + (seconds if isinstance(seconds, int) else 0)

    def transitions(self) -> int:
        count = self.spec.get("leaseTransitions")
        return count if isinstance(count, int) and count >= 0 else 0


def observe(previous: Observed | None, spec: Mapping[str, Any], now: float) -> Observed:
    """The new observation after reading ``spec`` at ``now``: time restarts only when
    the spec changed (any renewal changes ``renewTime``)."""
    if previous is not None and dict(previous.spec) == dict(spec):
        return previous
    return Observed(dict(spec), now)


@dataclass(frozen=True)
class Take:
    """Write this spec: create the Lease if there was none, else update what was read."""

    spec: dict[str, Any]


@dataclass(frozen=True)
class Wait:
    """Another candidate holds the Lease; it expires for us at ``until`` (monotonic)."""

    holder: str
    until: float


def _record(identity: str, timing: Timing, acquired: str, renewed: str,
            transitions: int) -> dict[str, Any]:
    return {"holderIdentity": identity, "leaseDurationSeconds": int(timing.lease_duration),
            "acquireTime": acquired, "renewTime": renewed, "leaseTransitions": transitions}


def decide(identity: str, timing: Timing, observed: Observed | None, now: float,
           wall: float) -> Take | Wait:
    """client-go's ``tryAcquireOrRenew`` after its read: ``observed`` is the Lease just
    read (None: there is none), ``now`` our monotonic clock, ``wall`` the time written."""
    stamp = format_micro_time(wall)
    if observed is None:
        return Take(_record(identity, timing, stamp, stamp, 0))
    holder = observed.holder
    if holder == identity:
        return Take(renewal(identity, timing, observed, wall))
    if holder and now < observed.expires:
        return Wait(holder, observed.expires)
    return Take(_record(identity, timing, stamp, stamp, observed.transitions() + 1))


def renewal(identity: str, timing: Timing, observed: Observed, wall: float) -> dict[str, Any]:
    """The holder's renewal: a new ``renewTime``; acquisition time and count kept."""
    acquired = observed.spec.get("acquireTime")
    stamp = format_micro_time(wall)
    return _record(identity, timing, acquired if isinstance(acquired, str) else stamp, stamp,
                   observed.transitions())


def released(observed: Observed, wall: float) -> dict[str, Any]:
    """client-go's release: no holder, a one-second lease, the count kept."""
    stamp = format_micro_time(wall)
    return {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": stamp,
            "renewTime": stamp, "leaseTransitions": observed.transitions()}


def after_loss(observed: Observed | None, identity: str) -> Observed | None:
    """What a leader that lost still knows of the Lease: a holder it read stays known
    (a standby that knows the leader); a record naming itself is forgotten, since it
    no longer leads and who does is unknown until its next read. A later read then
    starts a fresh observation, so a record still naming it is taken back at once
    (nobody else took it: client-go's rule for its own identity) and another
    holder's is waited for a full lease duration from that read."""
    if observed is not None and observed.holder == identity:
        return None
    return observed


def deadline(renewed_at: float, timing: Timing) -> float:
    """When a leader whose last successful renewal started at ``renewed_at`` must have
    stopped acting."""
    return renewed_at + timing.renew_deadline


# ---------------------------------------------------------------------------- the loop


class Outcome(enum.Enum):
    STOPPED = "stopped"    # asked to stop (the Lease was released if held)
    LOST = "lost"          # could not renew before the deadline, or another took it
    FINISHED = "finished"  # the leading work ended by itself (the Lease was released)


@dataclass(frozen=True)
class Clock:
    """Monotonic time for durations, wall time for what is written in the Lease."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


@dataclass
class LeaderElector:
    """Run for the Lease ``namespace/name`` as ``identity``; lead while holding it.

    ``on_started_leading`` is started as a task on acquiring and cancelled (and
    awaited) when leadership ends; ``on_stopped_leading`` is then called, before the
    Lease is released and, when renewal failed, before any other candidate could
    take it. ``on_new_leader`` hears each holder seen ("" for none).

    ``run`` may be called again after it returned ``LOST``: the candidate then
    competes afresh (``after_loss``), and ``on_started_leading`` starts a new task
    if it wins.
    """

    client: AsyncClient
    namespace: str
    name: str
    identity: str
    on_started_leading: Callable[[], Coroutine[Any, Any, Any]]
    timing: Timing = field(default_factory=Timing)
    on_stopped_leading: Callable[[], None] | None = None
    on_new_leader: Callable[[str], None] | None = None
    release_on_cancel: bool = True
    clock: Clock = field(default_factory=Clock)
    _observed: Observed | None = field(default=None, init=False)
    _lease: dict[str, Any] | None = field(default=None, init=False)
    _renewed_at: float = field(default=0.0, init=False)
    _reported: str | None = field(default=None, init=False)

    @property
    def leader(self) -> str:
        """The holder last seen ("" when none or not yet known)."""
        return self._observed.holder if self._observed else ""

    def is_leader(self) -> bool:
        return self.leader == self.identity

    async def run(self, stop: asyncio.Event) -> Outcome:
        """Acquire, lead, and return when leadership (or the wait for it) ends."""
        if not await self._acquire(stop):
            return Outcome.STOPPED
        log.info("%s: leading with lease %s/%s", self.identity, self.namespace, self.name)
        work = asyncio.create_task(self.on_started_leading(), name="leading")
        try:
            outcome = await self._renew(stop, work)
            if outcome is Outcome.LOST:  # not leading from now on, for is_leader() too
                self._forget()
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            if self.on_stopped_leading is not None:
                self.on_stopped_leading()
        if outcome is Outcome.LOST:
            log.error("%s: lost lease %s/%s", self.identity, self.namespace, self.name)
        elif self.release_on_cancel:
            await self._release()
        if outcome is Outcome.FINISHED and not work.cancelled() and work.exception():
            raise work.exception()  # type: ignore[misc]
        return outcome

    # -- phases

    async def _acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            result = await _unless(stop, self._attempt(self.timing.renew_deadline))
            if result is True:
                return True
            pause = self.timing.retry_period * (1 + RETRY_JITTER * random.random())
            if isinstance(result, Wait):  # try the moment it expires for us
                pause = min(pause, max(0.0, result.until - self.clock.monotonic()))
            await _wait(stop, pause)
        return False

    async def _renew(self, stop: asyncio.Event, work: asyncio.Task[Any]) -> Outcome:
        while True:
            if await _wait(stop, self.timing.retry_period, work):
                return Outcome.STOPPED if stop.is_set() else Outcome.FINISHED
            while True:  # until renewed, or the deadline
                remaining = deadline(self._renewed_at, self.timing) - self.clock.monotonic()
                if remaining <= 0:
                    return Outcome.LOST
                result = await self._attempt(remaining)
                if result is True:
                    break
                if isinstance(result, Wait):
                    return Outcome.LOST
                pause = min(self.timing.retry_period,
                            deadline(self._renewed_at, self.timing) - self.clock.monotonic())
                if await _wait(stop, max(0.0, pause), work):
                    return Outcome.STOPPED if stop.is_set() else Outcome.FINISHED

    # -- one attempt

    async def _attempt(self, limit: float) -> bool | Wait | None:
        """client-go's ``tryAcquireOrRenew`` within ``limit`` seconds: True when we hold
        the Lease, Wait when another does, None on an error (logged)."""
        try:
            async with asyncio.timeout(limit):
                return await self._try()
        except TimeoutError:
            log.warning("%s: lease %s/%s: no answer within %.1fs (will retry)", self.identity,
                        self.namespace, self.name, limit)
        except ApiError as exc:
            log.warning("%s: lease %s/%s: %s (will retry)", self.identity, self.namespace,
                        self.name, exc)
        return None

    async def _try(self) -> bool | Wait:
        started = self.clock.monotonic()
        observed = self._observed
        if (self.is_leader() and self._lease is not None and observed is not None
                and started < observed.expires):
            spec = renewal(self.identity, self.timing, observed, self.clock.wall())
            try:  # the fast path: over the Lease we last wrote, no read
                self._wrote(await self.client.replace(LEASE, {**self._lease, "spec": spec},
                                                      self.namespace), started)
                return True
            except ApiError as exc:
                log.info("%s: renewing without a read failed (%s); reading", self.identity, exc)
        try:
            lease: dict[str, Any] | None = await self.client.get(LEASE, self.name,
                                                                 self.namespace)
        except NotFound:
            lease = None
        if lease is not None:
            self._lease = lease
            self._observed = observe(self._observed, lease.get("spec") or {},
                                     self.clock.monotonic())
            self._report()
        decision = decide(self.identity, self.timing, self._observed if lease else None,
                          self.clock.monotonic(), self.clock.wall())
        if isinstance(decision, Wait):
            return decision
        if lease is None:
            body = {"apiVersion": LEASE.api_version, "kind": LEASE.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": decision.spec}
            stored = await self.client.create(LEASE, body, self.namespace)
        else:
            stored = await self.client.replace(LEASE, {**lease, "spec": decision.spec},
                                               self.namespace)
        self._wrote(stored, started)
        return True

    def _wrote(self, stored: dict[str, Any], started: float) -> None:
        self._lease = stored
        self._observed = Observed(dict(stored.get("spec") or {}), self.clock.monotonic())
        self._renewed_at = started
        self._report()

    def _report(self) -> None:
        holder = self.leader
        if holder != self._reported:
            self._reported = holder
            log.info("lease %s/%s: holder is %s", self.namespace, self.name, holder or "nobody")
            if self.on_new_leader is not None:
                self.on_new_leader(holder)

    def _forget(self) -> None:
        self._observed = after_loss(self._observed, self.identity)
        if self._observed is None:
            self._lease = None
            self._reported = None  # the next holder read is reported, even if it is us

    async def _release(self) -> None:
        if not self.is_leader() or self._lease is None or self._observed is None:
            return
        spec = released(self._observed, self.clock.wall())
        try:
            async with asyncio.timeout(self.timing.renew_deadline):
                stored = await self.client.replace(LEASE, {**self._lease, "spec": spec},
                                                   self.namespace)
        except (TimeoutError, ApiError) as exc:
            log.warning("%s: could not release lease %s/%s: %s", self.identity,
                        self.namespace, self.name, exc)
            return
        self._lease = stored
        self._observed = Observed(dict(stored.get("spec") or {}), self.clock.monotonic())
        self._report()


async def _wait(stop: asyncio.Event, seconds: float,
                work: asyncio.Future[Any] | None = None) -> bool:
    """Sleep ``seconds``; True as soon as ``stop`` is set or ``work`` has ended."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if work is not None:
        waiters.append(work)
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiters[0].cancel()
    return bool(done)


async def _unless(stop: asyncio.Event, attempt: Coroutine[Any, Any, T]) -> T | None:
    """``attempt``'s result, or None as soon as ``stop`` is set (it is then cancelled)."""
    task = asyncio.ensure_future(attempt)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()
