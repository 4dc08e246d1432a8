"""dnsd.upstream: which servers are tried first."""

from __future__ import annotations

from dnsd.upstream import DOWN_FOR, Server, Upstream

A, B, C = Server("192.0.2.1", 53), Server("192.0.2.2", 53), Server("192.0.2.3", 53)


def test_a_server_that_failed_lately_is_tried_last_then_in_its_place_again() -> None:
    up = Upstream([A, B, C])
    assert up.order(100.0) == [A, B, C]
    up.failed_at = {A: 100.0}
    assert up.order(102.0) == [B, C, A]
    up.failed_at[C] = 101.0
    assert up.order(102.0) == [B, A, C]  # the failed ones keep their configured order
    assert up.order(100.5 + DOWN_FOR) == [A, B, C]  # A is back; C (failed at 101) last
    assert up.order(101.0 + DOWN_FOR) == [A, B, C]
