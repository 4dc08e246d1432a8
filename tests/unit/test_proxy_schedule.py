"""The proxy's sync schedule with a fake clock: no root, no iptables, no sleeping.

``run`` below drives ``next_action`` as ``Proxier.run`` does, with a clock that
jumps straight to each deadline or change, and records what was done when.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nodeagent.proxy.schedule import NEVER, Action, Next, Schedule, Timing, next_action

SYNC_SECONDS = 0.01  # how long each simulated sync or check takes


@dataclass
class World:
    """What the proxier would report, and what it did."""

    timing: Timing
    changes_at: list[float] = field(default_factory=list)  # when informers report changes
    failing: set[int] = field(default_factory=set)  # indexes of syncs that fail
    drift_at: float = NEVER  # someone edits the kernel's rules then (once)
    removals: bool = False  # partial syncs leave leftovers to collect
    done: list[tuple[float, Action]] = field(default_factory=list)

    def syncs(self) -> list[float]:
        return [t for t, a in self.done if a in (Action.SYNC, Action.FULL_SYNC)]

    def of(self, action: Action) -> list[float]:
        return [t for t, a in self.done if a is action]


def run(world: World, until: float) -> World:
    """Play ``world`` from time 0 to ``until`` as ``Proxier.run`` would."""
    now, schedule = 0.0, Schedule()
    pending, need_full, garbage, drifted, drift_seen = False, True, False, False, False
    arrivals = sorted(world.changes_at)
    while now < until:
        while arrivals and arrivals[0] <= now:
            arrivals.pop(0)
            pending = True
        if now >= world.drift_at and not drift_seen:
            drift_seen = drifted = True
        step = next_action(now, schedule, world.timing, changes=pending,
                           need_full=need_full, garbage=garbage)
        if step.action is Action.WAIT:
            assert step.at > now, "a wait must end in the future"
            now = min(step.at, arrivals[0] if arrivals else NEVER, until)
            continue
        world.done.append((now, step.action))
        started, now = now, now + SYNC_SECONDS
        if step.action is Action.CHECK:
            schedule = schedule.checked(at=started)
            need_full = need_full or drifted
        elif step.action is Action.COLLECT:
            garbage = False
        else:
            full = step.action is Action.FULL_SYNC
            pending = False
            if len(world.syncs()) - 1 in world.failing:
                need_full = True
                schedule = schedule.failed(started=started, finished=now, timing=world.timing)
            else:
                need_full = False
                drifted = drifted and not full
                garbage = world.removals and not full
                schedule = schedule.synced(started=started, finished=now, full=full)
    return world


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]


def churn(start: float, stop: float, every: float) -> list[float]:
    return [start + i * every for i in range(int((stop - start) / every) + 1)]


TIMING = Timing(min_sync_period=0.5, sync_period=30.0, full_sync_period=3600.0)


def decide(now: float, schedule: Schedule, timing: Timing = TIMING, *, changes: bool = False,
           need_full: bool = False, garbage: bool = False) -> Next:
    return next_action(now, schedule, timing, changes=changes, need_full=need_full,
                       garbage=garbage)


def test_first_sync_is_full_and_at_once() -> None:
    assert decide(0.0, Schedule(), need_full=True).action is Action.FULL_SYNC
    world = run(World(TIMING), until=10)
    assert world.done == [(0.0, Action.FULL_SYNC)]


def test_a_change_after_a_quiet_spell_is_synced_at_once() -> None:
    world = run(World(TIMING, changes_at=[5.0]), until=10)
    assert world.done == [(0.0, Action.FULL_SYNC), (5.0, Action.SYNC)]


def test_a_burst_is_coalesced_to_one_sync_per_min_sync_period() -> None:
    world = run(World(TIMING, changes_at=churn(5.0, 6.0, 0.01)), until=10)
    syncs = world.syncs()[1:]
    assert syncs == [5.0, 5.5, 6.0]  # 101 changes, three syncs
    assert world.of(Action.SYNC) == syncs


def test_a_change_just_after_a_sync_waits_for_its_slot() -> None:
    schedule = Schedule(last_full=9.0, last_check=9.0).synced(started=10.0, finished=10.01,
                                                              full=False)
    assert decide(10.2, schedule, TIMING, changes=True) == Next(Action.WAIT, 10.5)
    assert decide(10.5, schedule, TIMING, changes=True) == Next(Action.SYNC, 10.5)


def test_failed_syncs_retry_with_doubling_backoff_capped_at_sync_period() -> None:
    timing = Timing(min_sync_period=0.1, sync_period=3.0, full_sync_period=3600.0)
    world = run(World(timing, failing={0, 1, 2, 3, 4, 5}), until=20)
    syncs = world.syncs()
    # each retry waits 0.5, 1, 2, then 3 (the cap) after the failed sync ended
    assert gaps(syncs)[:6] == [0.51, 1.01, 2.01, 3.01, 3.01, 3.01]
    assert world.of(Action.FULL_SYNC) == syncs  # every retry is full
    assert len(syncs) == 7  # the seventh succeeded: no more syncs


def test_the_backoff_holds_under_churn() -> None:
    timing = Timing(min_sync_period=0.1, sync_period=30.0, full_sync_period=3600.0)
    world = run(World(timing, changes_at=churn(1.0, 8.0, 0.02), failing={1, 2, 3}), until=8)
    assert gaps(world.syncs()[1:5]) == [0.51, 1.01, 2.01]
    assert min(gaps(world.syncs())) >= 0.1


def test_backoff_starts_at_min_sync_period_when_longer() -> None:
    timing = Timing(min_sync_period=2.0, sync_period=30.0, full_sync_period=3600.0)
    assert [timing.retry_delay(n) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 16.0, 30.0]


def test_drift_check_still_runs_under_churn_and_repairs_in_full() -> None:
    timing = Timing(min_sync_period=0.3, sync_period=1.0, full_sync_period=3600.0)
    world = run(World(timing, changes_at=churn(0.05, 6.0, 0.05), drift_at=0.5), until=6)
    checks = world.of(Action.CHECK)
    assert checks and checks[0] == pytest.approx(1.01)  # one sync_period after the full sync
    repair = world.of(Action.FULL_SYNC)[1]
    assert checks[0] < repair <= checks[0] + timing.min_sync_period + SYNC_SECONDS
    # checks keep coming every sync_period from the last full sync, partial syncs or not
    assert all(c2 - c1 == pytest.approx(1.0, abs=0.02) for c1, c2 in zip(
        world.of(Action.CHECK)[1:], world.of(Action.CHECK)[2:], strict=False))
    assert len(world.of(Action.CHECK)) >= 4
    assert min(gaps(world.syncs())) >= 0.3  # checks never let syncs go faster


def test_a_check_falling_due_while_changes_wait_runs_the_check_not_an_early_sync() -> None:
    timing = Timing(min_sync_period=0.3, sync_period=1.0, full_sync_period=3600.0)
    schedule = Schedule(last_sync=10.0, last_full=9.2, last_check=9.2)
    step = decide(10.2, schedule, timing, changes=True)
    assert step == Next(Action.CHECK, 10.2)
    after = schedule.checked(at=10.2)
    assert decide(10.21, after, timing, changes=True) == Next(Action.WAIT, 10.3)


def test_only_a_full_sync_postpones_the_check() -> None:
    timing = Timing(min_sync_period=0.3, sync_period=1.0, full_sync_period=3600.0)
    base = Schedule(last_full=5.0, last_check=5.0)
    partial = base.synced(started=5.8, finished=5.9, full=False)
    assert decide(6.0, partial, timing).action is Action.CHECK
    full = base.synced(started=5.8, finished=5.9, full=True)
    assert decide(6.0, full, timing) == Next(Action.WAIT, 6.9)


def test_no_check_while_a_full_sync_waits_for_its_retry() -> None:
    timing = Timing(min_sync_period=0.3, sync_period=1.0, full_sync_period=3600.0)
    schedule = Schedule(last_check=0.0).failed(started=0.5, finished=0.6, timing=timing)
    assert decide(1.5, schedule, timing, need_full=True) == Next(Action.FULL_SYNC, 1.1)
    assert decide(1.0, schedule, timing, need_full=True) == Next(Action.WAIT, 1.1)


def test_periodic_full_resync_with_checks_between() -> None:
    timing = Timing(min_sync_period=0.5, sync_period=3.0, full_sync_period=10.0)
    world = run(World(timing), until=25)
    assert world.of(Action.FULL_SYNC) == pytest.approx([0.0, 10.01, 20.02])
    assert world.of(Action.SYNC) == []
    # a check every sync_period after each full sync, until the next full one
    assert world.of(Action.CHECK) == pytest.approx(
        [3.01, 6.01, 9.01, 13.02, 16.02, 19.02, 23.03])


def test_a_failing_periodic_resync_backs_off_too() -> None:
    timing = Timing(min_sync_period=0.1, sync_period=30.0, full_sync_period=10.0)
    world = run(World(timing, failing={1, 2, 3}), until=20)
    assert gaps(world.of(Action.FULL_SYNC)[1:]) == [0.51, 1.01, 2.01]


def test_the_periodic_resync_keeps_min_sync_period_after_a_sync() -> None:
    schedule = Schedule(last_sync=10.0, last_full=0.2, last_check=9.5)
    timing = Timing(min_sync_period=1.0, sync_period=30.0, full_sync_period=10.0)
    assert decide(10.3, schedule, timing) == Next(Action.WAIT, 11.0)
    assert decide(11.0, schedule, timing).action is Action.FULL_SYNC


def test_leftovers_are_collected_once_changes_are_quiet() -> None:
    world = run(World(TIMING, changes_at=[*churn(5.0, 6.0, 0.1), 7.0], removals=True),
                until=10)
    # collect_after = max(2 × 0.5, 0.5) = 1 s after the last sync's start, never
    # while a change waits
    assert world.of(Action.SYNC) == pytest.approx([5.0, 5.5, 6.0, 7.0])
    assert world.of(Action.COLLECT) == pytest.approx([8.0])


def test_nothing_to_do_waits_for_the_check_or_the_full_resync() -> None:
    schedule = Schedule(last_sync=0.0, last_full=0.01, last_check=0.01)
    assert decide(1.0, schedule, TIMING) == Next(Action.WAIT, 30.01)
    timing = Timing(min_sync_period=0.5, sync_period=30.0, full_sync_period=20.0)
    assert decide(1.0, schedule, timing) == Next(Action.WAIT, 20.01)
