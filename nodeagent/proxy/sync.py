"""Keeping the kernel's rules equal to the desired ruleset: change tracking and syncs.

``Tracker`` is fed by the Service and EndpointSlice informers' handlers (on the
event loop). It caches the objects and records *which Services changed*; handlers
only do that, so they stay fast.

``Proxier.run`` is the loop (kube-proxy's BoundedFrequencyRunner, simplified):

- a change after a quiet spell is synced at once; changes arriving while a sync
  runs, or within ``min_sync_period`` of the last sync's start, are coalesced into
  the next one — at most one sync per ``min_sync_period``;
- the first sync, any sync after a failure, and one every ``full_sync_period``
  are *full*: every owned chain rewritten, stale ``KUBE-*`` chains deleted
  (found with one ``iptables-save``), missing built-in jumps inserted;
- every other sync is *partial*: only the chains of Services whose Service or
  slices changed, plus single-rule edits of the shared chains (``plan``);
- a Service's removal leaves its rule in the big shared chains, falling through
  to an emptied chain (``plan.plan_partial`` says why); once changes are quiet
  for a moment, and on stop, ``collect`` deletes such leftovers in one batch;
- every ``sync_period`` the kernel is checked against what we wrote (chain set,
  rule counts, jumps); drift triggers a full sync. Only a full sync postpones the
  check (it rewrote everything); partial syncs don't, so a steady stream of
  changes can't keep a drifted kernel from being noticed. Failures retry with
  backoff, at most ``sync_period`` apart.

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
from dataclasses import dataclass, field, replace
from typing import Any

from nodeagent.proxy.apply import Backend, IptablesError
from nodeagent.proxy.conntrack import Conntrack, UdpPort, stale_flows, udp_port
from nodeagent.proxy.metrics import Metrics
from nodeagent.proxy.model import (
    Endpoint,
    InvalidObject,
    ServicePort,
    merge_endpoints,
    service_ports,
    slice_endpoints,
    slice_service,
    trigger_time,
)
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

log = logging.getLogger(__name__)

Object = Mapping[str, Any]
ServiceName = tuple[str, str]  # (namespace, name)
PortInputs = list[tuple[ServicePort, tuple[Endpoint, ...]]]


# Seconds of quiet after a sync before removals' leftovers are collected (at least
# twice the minimum sync period).
COLLECT_DELAY = 0.5


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


@dataclass
class Change:
    """The current state of one changed Service: its object (None: gone) and slices."""

    service: Object | None
    slices: list[Object] = field(default_factory=list)


def _meta(obj: Object) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name_of(obj: Object) -> ServiceName:
    meta = _meta(obj)
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


class Tracker:
    """Informer-fed cache plus the set of Services changed since the last ``take``."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.clock = clock
        self.services: dict[ServiceName, Object] = {}
        self.slices: dict[ServiceName, Object] = {}  # (namespace, slice name)
        self.owner: dict[ServiceName, ServiceName] = {}  # slice → Service
        self.by_service: dict[ServiceName, set[ServiceName]] = {}
        self.dirty: set[ServiceName] = set()
        self.triggers: dict[ServiceName, float] = {}  # slice → earliest unsynced trigger time
        self.retried: list[float] = []  # trigger times of changes whose sync failed
        self.first_queued = 0.0  # wall time of the oldest unsynced change; 0: none
        self.wake = asyncio.Event()

    @property
    def pending(self) -> bool:
        return bool(self.dirty)

    def _touch(self, name: ServiceName) -> None:
        self.dirty.add(name)
        if not self.first_queued:
            self.first_queued = self.clock()
            self.metrics.last_queued = self.first_queued
        self.wake.set()

    # Service handlers
    def service_added(self, obj: Object) -> None:
        name = _name_of(obj)
        self.services[name] = obj
        self.metrics.service_changes += 1
        self._touch(name)

    def service_updated(self, old: Object, new: Object) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion") and \
                _name_of(new) in self.services:
            return  # an informer resync: nothing changed
        self.service_added(new)

    def service_deleted(self, obj: Object) -> None:
        name = _name_of(obj)
        self.services.pop(name, None)
        self.metrics.service_changes += 1
        self._touch(name)

    # EndpointSlice handlers
    def slice_added(self, obj: Object) -> None:
        key = _name_of(obj)
        self._unlink(key)
        self.slices[key] = obj
        owner = slice_service(obj)
        if owner is not None:
            self.owner[key] = owner
            self.by_service.setdefault(owner, set()).add(key)
            self._touch(owner)
            stamp = trigger_time(obj)
            if stamp is not None:
                self.triggers[key] = min(stamp, self.triggers.get(key, stamp))
        self.metrics.endpoint_changes += 1

    def slice_updated(self, old: Object, new: Object) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion") and \
                _name_of(new) in self.slices:
            return
        self.slice_added(new)

    def slice_deleted(self, obj: Object) -> None:
        key = _name_of(obj)
        self._unlink(key)
        self.slices.pop(key, None)
        self.triggers.pop(key, None)
        self.metrics.endpoint_changes += 1

    def _unlink(self, key: ServiceName) -> None:
        owner = self.owner.pop(key, None)
        if owner is not None:
            members = self.by_service.get(owner, set())
            members.discard(key)
            if not members:
                self.by_service.pop(owner, None)
            self._touch(owner)

    def take(self) -> tuple[dict[ServiceName, Change], list[float]]:
        """The changed Services' current objects and the pending trigger times; resets."""
        changes = {name: Change(self.services.get(name),
                                [self.slices[k] for k in sorted(self.by_service.get(name, ()))])
                   for name in self.dirty}
        triggers = [*self.retried, *self.triggers.values()]
        self.dirty = set()
        self.triggers = {}
        self.retried = []
        self.first_queued = 0.0
        self.metrics.last_queued = 0.0
        return changes, triggers

    def everything(self) -> dict[ServiceName, Change]:
        """Every known Service as a change (the first sync)."""
        names = set(self.services) | set(self.by_service)
        self.dirty |= names
        return self.take()[0]


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
                 other_backend: Backend | None = None) -> None:
        self.backend = backend
        self.other_backend = other_backend
        self.config = config
        self.metrics = metrics or Metrics()
        self.conntrack = conntrack
        self.tracker = Tracker(self.metrics)
        self.ctx = Context(node_name=config.node_name, cluster_cidr=config.cluster_cidr,
                           sctp=config.sctp)
        self.inputs: dict[ServiceName, PortInputs] = {}
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
        self.failures = 0
        self.failing_since = 0.0  # wall time of the first of the current failed syncs
        self._stop = asyncio.Event()

    # -- building ------------------------------------------------------------------------

    def update(self, changes: Mapping[ServiceName, Change]) -> set[str]:
        """Parse the changed Services and rebuild their fragments (all of them if the
        node-wide context changed, e.g. on entering large-cluster mode). Returns the
        keys of fragments that were rebuilt or removed."""
        for name, change in changes.items():
            ports = self._parse(name, change)
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
        ctx = replace(self.ctx, large_cluster=total > threshold)
        rebuild = set(changes)
        if ctx != self.ctx:
            log.info("%s large-cluster mode (per-endpoint comments %s)",
                     "entering" if ctx.large_cluster else "leaving",
                     "left out" if ctx.large_cluster else "written")
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
                facts = udp_port(sp, eps, ctx.node_name)
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

    def _parse(self, name: ServiceName, change: Change) -> PortInputs:
        if change.service is None:
            return []
        try:
            ports = service_ports(change.service)
        except InvalidObject as exc:
            self.metrics.invalid_objects += 1
            log.warning("Service %s/%s gets no rules: %s", *name, exc)
            return []
        if not ports:
            return []
        per_slice = []
        for obj in change.slices:
            try:
                per_slice.append(slice_endpoints(obj))
            except InvalidObject as exc:
                self.metrics.invalid_objects += 1
                log.warning("EndpointSlice %s/%s ignored: %s", *_name_of(obj), exc)
        merged = merge_endpoints(per_slice)
        return [(sp, merged.get((sp.port_name, sp.protocol), ())) for sp in ports]

    # -- syncing -------------------------------------------------------------------------

    def sync(self, changes: Mapping[ServiceName, Change]) -> SyncReport:
        """Bring the kernel to the desired state after ``changes``. Blocking.

        Raises ``SyncFailed`` (after which the next sync is full)."""
        started = time.perf_counter()
        touched = self.update(changes)
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
        """Sync until ``stop``: first once the informers have listed, then as above."""
        await wait_synced()
        loop = asyncio.get_running_loop()
        cfg = self.config
        first = True
        last_start = last_full = last_check = -float("inf")
        retry_at = 0.0
        while not self._stop.is_set():
            self.tracker.wake.clear()
            now = loop.time()
            pending = first or self.tracker.pending or self.need_full
            sync_at = max(last_start + cfg.min_sync_period, retry_at) if pending \
                else float("inf")
            full_at = last_full + cfg.full_sync_period
            check_at = last_check + cfg.sync_period
            # Leftovers of removals go once changes have been quiet for a moment, so a
            # burst of removals costs one batch, and never delays a change.
            collect_at = last_start + max(2 * cfg.min_sync_period, COLLECT_DELAY) \
                if self.garbage and not pending else float("inf")
            deadline = min(sync_at, full_at, check_at, collect_at)
            if now < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.tracker.wake.wait(), deadline - now)
                continue
            if now >= collect_at and now < min(sync_at, full_at, check_at):
                await asyncio.to_thread(self.collect)
                continue
            if now >= full_at:
                self.need_full = True
            # Sync only when a sync is due: a check falling due while changes wait
            # (held back by min_sync_period or a retry's backoff) runs the check.
            if (pending and now >= sync_at) or now >= full_at:
                last_start = now
                changes = self.tracker.everything() if first else None
                triggers: list[float] = []
                if changes is None:
                    changes, triggers = self.tracker.take()
                first = False
                full = self.need_full
                try:
                    await asyncio.to_thread(self.sync, changes)
                except SyncFailed:
                    self.failures += 1
                    delay = min(cfg.sync_period, max(cfg.min_sync_period, 0.5)
                                * 2 ** (self.failures - 1))
                    retry_at = loop.time() + delay
                    # not programmed yet: measured when a later sync succeeds
                    self.tracker.retried.extend(triggers)
                    self.failing_since = self.failing_since or time.time()
                    continue
                self.failing_since = 0.0
                self.failures = 0
                retry_at = 0.0
                finished = time.time()
                for stamp in triggers:
                    self.metrics.programming.observe(max(0.0, finished - stamp))
                if full:  # everything was just rewritten: as good as a check
                    last_full = last_check = loop.time()
            elif now >= check_at:
                last_check = now
                try:
                    problems = await asyncio.to_thread(self.check)
                except IptablesError as exc:
                    log.warning("drift check failed: %s", exc)
                    continue
                if problems:
                    self.metrics.drift_repairs += 1
                    log.warning("rules drifted (%s%s); resyncing in full", "; ".join(problems[:3]),
                                f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
                    self.need_full = True
        if self.garbage:
            # Leave a tidy kernel behind: a restarted agent then rewrites it unchanged.
            await asyncio.to_thread(self.collect)
