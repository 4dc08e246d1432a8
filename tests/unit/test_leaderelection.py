"""Leader election's decisions (client-go's ``tryAcquireOrRenew``) on a fake clock:
given the Lease read and the time, take it, renew it, or wait — and the timing that
makes a leader stop before anyone else may take over."""

from __future__ import annotations

import pytest

from apimachinery.timestamps import format_micro_time
from client.leaderelection import (
    Observed,
    Take,
    Timing,
    Wait,
    after_loss,
    deadline,
    decide,
    observe,
    released,
    renewal,
    timing_problem,
)

T = Timing(lease_duration=15, renew_deadline=10, retry_period=2)
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def stamp(offset: float) -> str:
    return format_micro_time(WALL + offset)


def held(holder: str, *, renewed: float = 0.0, transitions: int = 3) -> dict:
    return {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": stamp(-100),
            "renewTime": stamp(renewed), "leaseTransitions": transitions}


def test_no_lease_is_created_held_by_us() -> None:
    assert decide("me", T, None, now=50.0, wall=WALL) == Take({
        "holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": stamp(0),
        "renewTime": stamp(0), "leaseTransitions": 0})


def test_a_held_lease_is_waited_for_a_full_duration_from_when_we_saw_it() -> None:
    """Time counts from the candidate's own observation, not from renewTime (an hour
    old here): no clock sync is assumed."""
    seen = observe(None, held("other", renewed=-3600), now=100.0)
    assert decide("me", T, seen, now=100.0, wall=WALL) == Wait("other", 115.0)
    assert decide("me", T, seen, now=114.999, wall=WALL) == Wait("other", 115.0)
    took = decide("me", T, seen, now=115.0, wall=WALL + 15)
    assert took == Take({"holderIdentity": "me", "leaseDurationSeconds": 15,
                         "acquireTime": stamp(15), "renewTime": stamp(15),
                         "leaseTransitions": 4})


def test_each_renewal_seen_restarts_the_wait() -> None:
    seen = observe(None, held("other", renewed=0), now=100.0)
    assert observe(seen, held("other", renewed=0), now=108.0) is seen  # nothing changed
    renewed = observe(seen, held("other", renewed=2), now=108.0)
    assert renewed.at == 108.0
    assert decide("me", T, renewed, now=116.0, wall=WALL) == Wait("other", 123.0)


def test_a_released_lease_is_taken_at_once() -> None:
    leader = observe(None, held("other"), now=100.0)
    free = observe(leader, released(leader, WALL + 1), now=101.0)
    assert free.spec == {"holderIdentity": "", "leaseDurationSeconds": 1,
                         "acquireTime": stamp(1), "renewTime": stamp(1), "leaseTransitions": 3}
    took = decide("me", T, free, now=101.0, wall=WALL + 1)
    assert isinstance(took, Take) and took.spec["leaseTransitions"] == 4


def test_the_holder_renews_keeping_acquisition_and_count() -> None:
    mine = observe(None, held("me", transitions=7), now=100.0)
    spec = renewal("me", T, mine, WALL + 2)
    assert spec == {"holderIdentity": "me", "leaseDurationSeconds": 15,
                    "acquireTime": stamp(-100), "renewTime": stamp(2), "leaseTransitions": 7}
    assert decide("me", T, mine, now=130.0, wall=WALL + 2) == Take(spec)  # even if late


def test_odd_leases_written_by_hand_are_read_safely() -> None:
    odd = observe(None, {"holderIdentity": 5, "leaseTransitions": -2}, now=10.0)
    assert odd.holder == "" and odd.transitions() == 0 and odd.expires == 10.0
    took = decide("me", T, odd, now=10.0, wall=WALL)
    assert isinstance(took, Take) and took.spec["leaseTransitions"] == 1
    # a holder with no duration has expired as soon as seen (client-go: 0 seconds)
    no_duration = observe(None, {"holderIdentity": "other"}, now=10.0)
    assert isinstance(decide("me", T, no_duration, now=10.0, wall=WALL), Take)


@pytest.mark.parametrize("seen_after", [0.0, 0.01, 1.9, 2.4, 5.0])
@pytest.mark.parametrize("timing", [T, Timing(3, 2, 0.5), Timing(2, 1.5, 1)])
def test_a_leader_stops_before_anyone_may_take_over(timing: Timing, seen_after: float) -> None:
    """The leader's last renewal started at 100 and was written after that; a
    candidate saw it ``seen_after`` later. The leader's deadline comes first."""
    stop_at = deadline(100.0, timing)
    seen = observe(None, {**held("leader"), "leaseDurationSeconds": int(timing.lease_duration)},
                   now=100.0 + seen_after)
    assert stop_at < seen.expires
    assert isinstance(decide("me", timing, seen, now=stop_at, wall=WALL), Wait)


def test_after_a_loss_the_candidate_forgets_its_own_claim_and_competes_afresh() -> None:
    """A leader past its renew deadline no longer leads, whatever the record it last
    wrote says; its next read starts a fresh observation."""
    mine = observe(None, held("me"), now=100.0)
    assert after_loss(mine, "me") is None
    # read again later: still ours (nobody took it), so it is taken back at once
    again = observe(after_loss(mine, "me"), held("me"), now=130.0)
    assert again.at == 130.0 and isinstance(decide("me", T, again, now=130.0, wall=WALL), Take)
    # another holder it saw stays known, and is waited for as before
    theirs = observe(None, held("other"), now=100.0)
    assert after_loss(theirs, "me") is theirs
    assert decide("me", T, after_loss(theirs, "me"), now=101.0, wall=WALL) == Wait("other", 115.0)
    assert after_loss(None, "me") is None


@pytest.mark.parametrize(("durations", "problem"), [
    ((15, 10, 2), None),
    ((15, 15, 2), "lease duration (15s) must be greater than renew deadline (15s)"),
    ((15, 2, 2), "renew deadline (2s) must be greater than 1.2 × retry period (2s)"),
    ((15, 10, 0), "retry period must be greater than zero"),
    ((15, 0, 2), "renew deadline must be greater than zero"),
    ((1.5, 1, 0.5), "lease duration must be a whole number of seconds, at least 1 "
                    "(the Lease holds seconds)"),
])
def test_timing_checks(durations: tuple[float, float, float], problem: str | None) -> None:
    assert timing_problem(*durations) == problem
    if problem:
        with pytest.raises(ValueError, match="must be"):
            Timing(*durations)


def test_observed_defaults_to_now_for_a_new_spec() -> None:
    assert observe(None, {}, now=3.0) == Observed({}, 3.0)
