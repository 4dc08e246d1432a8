"""dnsd.rrl: the per-prefix token bucket, on an injected clock (no sleeps, exact counts)."""

from __future__ import annotations

import pytest

from dnsd.rrl import RateLimiter, Verdict

SEND, DROP, SLIP = Verdict.SEND, Verdict.DROP, Verdict.SLIP


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_prefix_gets_its_rate_then_drops_and_slips() -> None:
    clock = Clock()
    rrl = RateLimiter(5, slip=2, clock=clock)
    assert [rrl.check("192.0.2.10") for _ in range(5)] == [SEND] * 5  # one second's credit
    assert [rrl.check("192.0.2.10") for _ in range(6)] == [DROP, SLIP] * 3
    clock.now += 0.2  # a fifth of a second refills one token
    assert rrl.check("192.0.2.10") is SEND
    assert rrl.check("192.0.2.10") is DROP
    clock.now += 60  # credit never exceeds one second's worth
    assert [rrl.check("192.0.2.10") for _ in range(6)] == [SEND] * 5 + [SLIP]


def test_one_bucket_per_ipv4_24_and_ipv6_56() -> None:
    clock = Clock()
    rrl = RateLimiter(2, slip=0, clock=clock)
    assert [rrl.check(f"192.0.2.{i}") for i in range(1, 4)] == [SEND, SEND, DROP]  # one /24
    assert rrl.check("192.0.3.1") is SEND  # the next /24 has its own
    assert rrl.check("::ffff:192.0.2.77") is DROP  # IPv4-mapped: the same IPv4 client
    assert [rrl.check(f"2001:db8:0:ff{i:02x}::1") for i in range(3)] == [SEND, SEND, DROP]
    assert rrl.check("2001:db8:0:100::1") is SEND  # another /56
    assert rrl.check("fe80::1%eth0") is SEND  # a scoped address parses


def test_slip_zero_drops_everything_and_slip_one_slips_everything() -> None:
    clock = Clock()
    never = RateLimiter(1, slip=0, clock=clock)
    always = RateLimiter(1, slip=1, clock=clock)
    never.check("10.0.0.1")
    always.check("10.0.0.1")
    assert [never.check("10.0.0.1") for _ in range(4)] == [DROP] * 4
    assert [always.check("10.0.0.1") for _ in range(4)] == [SLIP] * 4


def test_the_table_is_bounded_keeping_busy_prefixes() -> None:
    clock = Clock()
    rrl = RateLimiter(1, slip=0, max_prefixes=10, clock=clock)
    rrl.check("10.0.0.1")
    assert rrl.check("10.0.0.1") is DROP  # the busy prefix, out of tokens
    for i in range(1, 10):
        rrl.check(f"10.0.{i}.1")
    assert len(rrl) == 10
    clock.now += 5  # every other bucket has refilled: forgetting it changes nothing
    assert rrl.check("10.0.0.1") is SEND  # refilled too, and now empty again
    rrl.check("10.0.10.1")  # an 11th prefix: the table is pruned first
    assert len(rrl) == 2
    assert rrl.check("10.0.0.1") is DROP  # its empty bucket was kept
    for i in range(10, 1000):  # a flood of fresh prefixes: still bounded
        rrl.check(f"10.{i // 256}.{i % 256}.1")
        assert len(rrl) <= 10


def test_a_rate_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        RateLimiter(0)
