"""Backoff: exponential growth, cap, ±jitter range, determinism with a seeded rng."""

from __future__ import annotations

import random

import pytest

from client.backoff import Backoff


@pytest.mark.parametrize(("failures", "nominal"), [
    (0, 0.0), (-3, 0.0), (1, 0.2), (2, 0.4), (3, 0.8), (8, 25.6), (9, 30.0), (50, 30.0),
    (10_000, 30.0),
])
def test_nominal_doubles_from_base_to_cap(failures, nominal):
    assert Backoff().nominal(failures) == pytest.approx(nominal)


def test_without_jitter_next_is_nominal():
    b = Backoff(base=1, cap=10, factor=3, jitter=0)
    assert [b.next(n) for n in range(5)] == [0, 1, 3, 9, 10]


@pytest.mark.parametrize("failures", [1, 2, 5, 9, 100])
def test_jitter_stays_within_plus_minus_fraction(failures):
    b = Backoff(jitter=0.2, rng=random.Random(7))
    nominal = b.nominal(failures)
    delays = [b.next(failures) for _ in range(2000)]
    assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
    # it actually spreads: clients that failed together don't retry in step
    assert max(delays) - min(delays) > 0.3 * nominal


def test_seeded_rng_gives_the_same_sequence():
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.next(n) for n in range(1, 20)] == [b.next(n) for n in range(1, 20)]
    c = Backoff(rng=random.Random(43))
    assert [a.next(n) for n in range(1, 20)] != [c.next(n) for n in range(1, 20)]


def test_no_failure_means_no_wait_even_with_jitter():
    assert Backoff(rng=random.Random(1)).next(0) == 0.0


@pytest.mark.parametrize("kwargs", [
    {"base": 0}, {"base": -1}, {"base": 5, "cap": 1}, {"factor": 0.5}, {"jitter": 1.0},
    {"jitter": -0.1},
])
def test_rejects_nonsense_parameters(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
