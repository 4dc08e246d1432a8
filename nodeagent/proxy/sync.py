"""Keeping the kernel's rules equal to the desired ruleset: syncs and the sync loop.

``changes.Tracker`` (fed by the informers) says which Services' inputs changed;
``schedule.next_action`` says when to sync, check or collect. This module acts:

- the first sync, any sync after a failure, after drift, and the periodic one
  are *full*: every owned chain rewritten, stale ``KUBE-*`` chains deleted
  (found with one ``iptables-save``), missing built-in jumps inserted;
- every other sync is *partial*: only the chains of Services whose inputs
  changed, plus single-rule edits of the shared chains (``plan``);
- a Service's removal leaves its rule in the big shared chains, falling through
  to an emptied chain (``plan.plan_partial`` says why); ``collect`` deletes such
  leftovers in one batch, when the schedule says so and on stop;
- ``check`` compares the kernel with what we wrote (chain set, rule counts,
  jumps); drift makes the next sync full.

``Proxier.sync`` does one sync and blocks (subprocesses); the loop runs it on a
worker thread with a snapshot of the changes taken on the loop, so the informers
keep running meanwhile. Only the sync thread touches the Proxier's rule state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from nodeagent.proxy.apply import Backend, IptablesError
from nodeagent.proxy.changes import ServiceInputs, ServiceName, Tracker
from nodeagent.proxy.conntrack import Conntrack, UdpPort, stale_flows, udp_port
from nodeagent.proxy.metrics import Metrics
from nodeagent.proxy.plan import (
    Payload,
    Written,
    drift,
    parse_save,
    plan_cleanup,
    plan_collect,
    plan_full,
    plan_partial,
)
from nodeagent.proxy.ruleset import (
    LARGE_CLUSTER_ENDPOINTS,
    TABLES,
    Context,
    Fragment,
    Ruleset,
    assemble,
    build_fragment,
    reassemble,
)
from nodeagent.proxy.schedule import Action, Schedule, Timing, next_action

log = logging.getLogger(__name__)

class SyncFailed(RuntimeError):
    """A sync did not complete; the next one is full."""


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy's knobs (flags of ``mp-nodeagent``)."""

    node_name: str
    cluster_cidr: str | None = "10.244.0.0/16"
    min_sync_period: float = 1.0  # kube-proxy's default minSyncPeriod
    sync_period: float = 30.0  # drift check and failure-retry cap, as kube-proxy's syncPeriod
    full_sync_period: float = 3600.0  # unconditional full rewrite (kube-proxy 1.33: 1 h)
    sctp: bool = True

    @property
    def timing(self) -> Timing:
        return Timing(min_sync_period=self.min_sync_period, sync_period=self.sync_period,
                      full_sync_period=self.full_sync_period)


@dataclass
class SyncReport:
    full: bool
    seconds: float
    payloads: int
    rules_written: dict[str, int]


class Proxier:
    """Owns the rule state of one namespace and syncs it."""

    def __init__(self, backend: Backend, config: ProxyConfig, *,
                 metrics: Metrics | None = None, conntrack: Conntrack | None = None,
                 other_backend: Backend | None = None,
                 on_payload: Callable[[Payload], None] | None = None) -> None:
        """``on_payload`` sees every payload once the kernel has taken it (the
        benchmarks replay them elsewhere for a floor)."""
        self.backend = backend
        self.on_payload = on_payload
        self.other_backend = other_backend
        self.config = config
        self.metrics = metrics or Metrics()
        self.conntrack = conntrack
        self.tracker = Tracker(self.metrics)
        self.ctx = Context(node_name=config.node_name, cluster_cidr=config.cluster_cidr,
                           sctp=config.sctp)
        self.inputs: dict[ServiceName, ServiceInputs] = {}
        self.endpoint_counts: dict[ServiceName, int] = {}
        self.keys_of: dict[ServiceName, tuple[str, ...]] = {}
        self.fragments: dict[str, Fragment] = {}
        self.udp: dict[str, UdpPort] = {}
        self.no_local = {"internal": 0, "external": 0}
        self.rule_totals = {"filter": 0, "nat": 0}
        self.udp_applied: dict[str, UdpPort] | None = None  # None: unknown (just started)
        self.written: Written = {}
        # Left by partial syncs for ``collect``: emptied chains, and whether rules that
        # should go are still in the shared chains (see ``plan.plan_partial``).
        self.flushed: set[tuple[str, str]] = set()
        self.garbage = False
        self.ruleset: Ruleset | None = None  # the last one fully in the kernel
        self.need_full = True
        self.synced_once = False
        self.failing_since = 0.0  # wall time of the first of the current failed syncs
        self._stop = asyncio.Event()

    # -- building ------------------------------------------------------------------------

    def update(self, changes: Mapping[ServiceName, ServiceInputs], *,
               zone: str | None = None) -> set[str]:
        """Rebuild the changed Services' fragments (all of them if the node-wide
        context changed, e.g. on entering large-cluster mode, or a new ``zone``;
        None keeps the zone). Returns the keys of fragments rebuilt or removed."""
        for name, ports in changes.items():
            if ports:
                self.inputs[name] = ports
                self.endpoint_counts[name] = sum(len(eps) for _, eps in ports)
            else:
                self.inputs.pop(name, None)
                self.endpoint_counts.pop(name, None)
        total = sum(self.endpoint_counts.values())
        # Entering rewrites every chain; so does leaving. Leave only well below the
        # threshold, so a cluster hovering at it does not rewrite everything per change.
        threshold = LARGE_CLUSTER_ENDPOINTS * (0.9 if self.ctx.large_cluster else 1.0)
        ctx = replace(self.ctx, large_cluster=total > threshold,
                      zone=self.ctx.zone if zone is None else zone)
        rebuild = set(changes)
        if ctx != self.ctx:
            if ctx.large_cluster != self.ctx.large_cluster:
                log.info("%s large-cluster mode (per-endpoint comments %s)",
                         "entering" if ctx.large_cluster else "leaving",
                         "left out" if ctx.large_cluster else "written")
            if ctx.zone != self.ctx.zone:
                log.info("zone %r: topology hints are read against it", ctx.zone)
            self.ctx = ctx
            rebuild |= set(self.keys_of) | set(self.inputs)
        touched: set[str] = set()
        for name in rebuild:
            for key in self.keys_of.pop(name, ()):
                self._count_no_local(self.fragments.pop(key, None), -1)
                self.udp.pop(key, None)
                touched.add(key)
            keys: list[str] = []
            for sp, eps in self.inputs.get(name, ()):
                fragment = self.fragments[sp.key] = build_fragment(sp, eps, ctx)
                self._count_no_local(fragment, +1)
                facts = udp_port(sp, eps, ctx.node_name, zone=ctx.zone)
                if facts is not None:
                    self.udp[sp.key] = facts
                keys.append(sp.key)
            if keys:
                self.keys_of[name] = tuple(keys)
            touched.update(keys)
        return touched

    def _count_no_local(self, fragment: Fragment | None, sign: int) -> None:
        for policy in fragment.no_local_endpoints if fragment else ():
            self.no_local[policy] += sign

    # -- syncing -------------------------------------------------------------------------

    def sync(self, changes: Mapping[ServiceName, ServiceInputs], *,
             zone: str | None = None) -> SyncReport:
        """Bring the kernel to the desired state after ``changes`` (and the node's
        ``zone``, None: unchanged). Blocking.

        Raises ``SyncFailed`` (after which the next sync is full)."""
        started = time.perf_counter()
        touched = self.update(changes, zone=zone)
        full = self.need_full or self.ruleset is None
        try:
            if full:
                new = assemble(self.fragments)
                self._clear_other_backend()
                saved = parse_save(self.backend.save())
                payloads = plan_full(new, saved, self.backend.limits)
                # A full sync writes every chain and deletes every stale one: what it
                # records is all there is, and nothing is left to collect.
                self.written = {}
                self.flushed = set()
                self.garbage = False
            else:
                assert self.ruleset is not None
                new = reassemble(self.ruleset, self.fragments, touched)
                payloads = plan_partial(self.written, self.ruleset, new, self.backend.limits,
                                        keys=touched, defer=True)
            for payload in payloads:
                self.backend.restore(payload.text)
                self._record(payload)
        except IptablesError as exc:
            self.need_full = True
            self.metrics.restore_failures += 1
            if not full:
                self.metrics.partial_restore_failures += 1
            detail = getattr(exc, "context", "")
            log.error("%s sync failed: %s%s", "full" if full else "partial", exc,
                      f"\n{detail}" if detail else "")
            raise SyncFailed(str(exc)) from exc
        if full:
            for table in TABLES:
                self.rule_totals[table] = sum(len(r) for (t, _), r in self.written.items()
                                              if t == table)
        self.ruleset = new
        self.need_full = False
        self.synced_once = True
        seconds = time.perf_counter() - started
        self._observe(full, seconds, payloads)
        self._clear_conntrack()
        written = {t: sum(p.rules_written[t] for p in payloads) for t in TABLES}
        log.log(logging.INFO if full or payloads else logging.DEBUG,
                "%s sync: %d Service(s) changed, %d payload(s), %d rules written, %.3fs",
                "full" if full else "partial", len(changes), len(payloads),
                sum(written.values()), seconds)
        return SyncReport(full=full, seconds=seconds, payloads=len(payloads),
                          rules_written=written)

    def _record(self, payload: Payload) -> None:
        if self.on_payload is not None:
            self.on_payload(payload)
        for key, rules in payload.effects:
            before = self.written.pop(key, ()) if rules is None else \
                self.written.get(key, ())
            if rules is not None:
                self.written[key] = rules
            self.rule_totals[key[0]] += len(rules or ()) - len(before)
        for key, lines in payload.appended.items():
            self.written[key] = self.written.get(key, ()) + tuple(lines)
            self.rule_totals[key[0]] += len(lines)
        self.flushed.update(payload.flushed)
        if payload.flushed or payload.deferred:
            self.garbage = True

    def _observe(self, full: bool, seconds: float, payloads: list[Payload]) -> None:
        m = self.metrics
        m.sync_duration.observe(seconds)
        (m.full_sync_duration if full else m.partial_sync_duration).observe(seconds)
        m.last_sync = time.time()
        for table in TABLES:
            m.rules_last[table] = sum(p.rules_written[table] for p in payloads)
        m.rules_total = dict(self.rule_totals)
        m.no_local_endpoints = dict(self.no_local)

    def _clear_conntrack(self) -> None:
        before, self.udp_applied = self.udp_applied, dict(self.udp)
        if self.conntrack is None or before is None:
            return  # just started: what the flows were made from is unknown
        for args in stale_flows(before, self.udp_applied):
            deleted = self.conntrack.delete(args)
            if deleted:
                self.metrics.conntrack_deleted += deleted
                log.info("conntrack: deleted %d stale UDP flow(s) (%s)", deleted,
                         " ".join(args))

    def _clear_other_backend(self) -> None:
        """Rules of the other backend still apply to packets, so a switch of
        ``--iptables-backend`` must not leave ours behind there."""
        other, self.other_backend = self.other_backend, None
        if other is None or not other.available():
            return
        try:
            payloads = plan_cleanup(parse_save(other.save()))
            if payloads:
                for payload in payloads:
                    other.restore(payload.text)
                log.info("removed this proxy's rules from the %s backend", other.kind)
        except IptablesError as exc:
            log.warning("could not clear the %s backend: %s", other.kind, exc)

    def collect(self) -> int:
        """Delete the leftovers of deferred removals (one restore). Blocking; returns
        the number of rules and chains removed. A failure leaves them for the next
        full sync, which removes them anyway."""
        if not self.garbage or self.ruleset is None or self.need_full:
            return 0
        payloads = plan_collect(self.written, self.ruleset, self.flushed, self.backend.limits)
        try:
            for payload in payloads:
                self.backend.restore(payload.text)
                self._record(payload)
        except IptablesError as exc:
            log.warning("removing leftovers failed (%s); the next full sync will", exc)
            self.need_full = True
            return 0
        removed = sum(len(p.effects) for p in payloads)
        self.flushed = set()
        self.garbage = False
        self.metrics.rules_total = dict(self.rule_totals)
        log.debug("collected %d leftover rule(s)/chain(s)", removed)
        return removed

    def check(self) -> list[str]:
        """Compare the kernel with what we wrote. Blocking. Empty: no drift."""
        return drift(self.written, parse_save(self.backend.save()))

    # -- the loop --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self.tracker.wake.set()

    def health(self) -> tuple[bool, str]:
        """kube-proxy's rule: unhealthy if a change has waited over 2 × sync period —
        queued and not yet tried, or taken by syncs that keep failing."""
        now, limit = time.time(), 2 * self.config.sync_period
        queued = self.tracker.first_queued
        if queued and now - queued > limit:
            return False, f"changes queued {now - queued:.0f}s ago are not synced"
        if self.failing_since and now - self.failing_since > limit:
            return False, f"syncs have failed for {now - self.failing_since:.0f}s"
        return True, ""

    def readiness(self) -> tuple[bool, str]:
        return (True, "") if self.synced_once else (False, "rules not synced yet")

    async def run(self, wait_synced: Callable[[], Awaitable[Any]]) -> None:
        """Sync until ``stop``: first once the informers have listed, then whenever
        ``schedule.next_action`` says; between actions, wait for its deadline or a
        change, whichever comes first."""
        await wait_synced()
        loop = asyncio.get_running_loop()
        timing = self.config.timing
        schedule = Schedule()
        first = True
        while not self._stop.is_set():
            self.tracker.wake.clear()
            now = loop.time()
            step = next_action(now, schedule, timing, changes=self.tracker.pending,
                               need_full=self.need_full, garbage=self.garbage)
            if step.action is Action.WAIT:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(step.at - now):
                        await self.tracker.wake.wait()
            elif step.action is Action.CHECK:
                schedule = schedule.checked(at=now)
                await self._check_drift()
            elif step.action is Action.COLLECT:
                await asyncio.to_thread(self.collect)
            else:
                full = step.action is Action.FULL_SYNC
                self.need_full = self.need_full or full
                changes, triggers = (self.tracker.everything(), []) if first \
                    else self.tracker.take()
                first = False
                ok = await self._sync_in_thread(changes, triggers, self.tracker.synced_zone)
                schedule = schedule.synced(started=now, finished=loop.time(), full=full) \
                    if ok else schedule.failed(started=now, finished=loop.time(), timing=timing)
        if self.garbage:
            # Leave a tidy kernel behind: a restarted agent then rewrites it unchanged.
            await asyncio.to_thread(self.collect)

    async def _sync_in_thread(self, changes: Mapping[ServiceName, ServiceInputs],
                              triggers: list[float], zone: str) -> bool:
        """``sync`` on a worker thread, with its metrics and health; False if it failed."""
        try:
            await asyncio.to_thread(self.sync, changes, zone=zone)
        except SyncFailed:
            # not programmed yet: measured when a later sync succeeds
            self.tracker.requeue_triggers(triggers)
            self.failing_since = self.failing_since or time.time()
            return False
        self.failing_since = 0.0
        finished = time.time()
        for stamp in triggers:
            self.metrics.programming.observe(max(0.0, finished - stamp))
        return True

    async def _check_drift(self) -> None:
        """``check`` on a worker thread; drift makes the next sync full."""
        try:
            problems = await asyncio.to_thread(self.check)
        except IptablesError as exc:
            log.warning("drift check failed: %s", exc)
            return
        if problems:
            self.metrics.drift_repairs += 1
            log.warning("rules drifted (%s%s); resyncing in full", "; ".join(problems[:3]),
                        f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            self.need_full = True
