"""Node pod-CIDR allocation: next free subnet, release, rebuild from stored nodes."""

from __future__ import annotations

import pytest

from controllers.ipam import CidrError, CidrExhausted, CidrSet


def test_allocates_consecutive_subnets_of_the_cluster_cidr():
    cidrs = CidrSet("10.244.0.0/16")
    assert [cidrs.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24",
                                                    "10.244.2.0/24"]
    assert len(cidrs) == 3 and cidrs.capacity == 256
    assert "10.244.1.0/24" in cidrs and "10.244.9.0/24" not in cidrs


def test_released_subnet_is_reused_only_after_the_others():
    cidrs = CidrSet("10.244.0.0/22")  # four /24s
    a, b, c = cidrs.allocate(), cidrs.allocate(), cidrs.allocate()
    assert cidrs.release(b)
    assert not cidrs.release(b)  # already free
    assert cidrs.allocate() == "10.244.3.0/24"  # the never-used one first
    assert cidrs.allocate() == b  # then wrap around to the freed one
    with pytest.raises(CidrExhausted):
        cidrs.allocate()
    assert {a, c} <= {"10.244.0.0/24", "10.244.2.0/24"}


def test_rebuilt_from_stored_nodes_never_hands_out_a_taken_subnet():
    stored = ["10.244.0.0/24", "10.244.2.0/24", "10.244.5.0/24"]
    cidrs = CidrSet("10.244.0.0/16")
    assert cidrs.occupy_all(stored) == []
    fresh = [cidrs.allocate() for _ in range(4)]
    assert fresh == ["10.244.1.0/24", "10.244.3.0/24", "10.244.4.0/24", "10.244.6.0/24"]
    assert not set(fresh) & set(stored)


def test_foreign_cidrs_are_reported_not_occupied():
    cidrs = CidrSet("10.244.0.0/16")
    assert cidrs.occupy_all(["10.245.0.0/24", "10.244.0.0/25", "10.244.3.0/24", "junk",
                             "fd00::/64"]) == ["10.245.0.0/24", "10.244.0.0/25", "junk",
                                               "fd00::/64"]
    assert len(cidrs) == 1
    assert not cidrs.release("10.245.0.0/24")


def test_other_mask_sizes_and_ipv6():
    assert CidrSet("10.0.0.0/8", 16).allocate() == "10.0.0.0/16"
    v6 = CidrSet("fd00:10::/48", 64)
    assert [v6.allocate(), v6.allocate()] == ["fd00:10::/64", "fd00:10:0:1::/64"]
    single = CidrSet("10.244.7.0/24", 24)
    assert single.allocate() == "10.244.7.0/24"
    with pytest.raises(CidrExhausted):
        single.allocate()


@pytest.mark.parametrize(("cidr", "mask"), [
    ("10.244.0.0/16", 8),  # mask shorter than the cluster CIDR
    ("10.244.0.0/16", 33),
    ("10.244.1.0/16", 24),  # host bits set
    ("not-a-cidr", 24),
    ("fd00::/16", 64),  # 2^48 subnets: too many to track
])
def test_unusable_configurations_are_rejected(cidr, mask):
    with pytest.raises(CidrError):
        CidrSet(cidr, mask)
