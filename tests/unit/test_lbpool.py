"""The LoadBalancer pool and the choice of a Service's ingress address (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from componentbase.addresspool import PoolError, parse_pool
from controllers.lbpool import LEAVE, Decision, decide

POOL = parse_pool("10.250.0.200-10.250.0.202")


def lb(name: str = "web", ingress: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "metadata": {"namespace": "demo", "name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec}}
    if ingress is not None:
        service["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return service


def ips(decision: Decision) -> list[str] | None:
    return None if decision.ingress is None else [e["ip"] for e in decision.ingress]


def test_parse_pool_ranges_cidrs_and_addresses() -> None:
    pool = parse_pool(" 10.250.0.200-10.250.0.203, 10.250.0.208/30,10.250.0.250 ")
    assert len(pool) == 4 + 4 + 1
    assert list(pool)[:2] == ["10.250.0.200", "10.250.0.201"]
    assert "10.250.0.210" in pool and "10.250.0.204" not in pool and "bogus" not in pool
    assert pool.cidrs() == ["10.250.0.200/30", "10.250.0.208/30", "10.250.0.250/32"]
    assert str(parse_pool("10.0.0.1-10.0.0.2")) == "10.0.0.1-10.0.0.2"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("10.0.0.5-10.0.0.1", "ends before it starts"),
    ("10.0.0.0/24,10.0.0.128-10.0.0.130", "overlaps"),
    ("10.0.0.1/24", "not an IPv4 range"),
    ("10.0.0.1-fe80::1", "not an IPv4 range"),
    ("10.0.0.256", "not an IPv4 range"),
])
def test_bad_pools_are_refused_with_the_part_named(text: str, message: str) -> None:
    with pytest.raises(PoolError, match=message):
        parse_pool(text)


def test_first_free_address_and_keeping_it() -> None:
    assert ips(decide(lb(), POOL, set())) == ["10.250.0.200"]
    assert ips(decide(lb(), POOL, {"10.250.0.200"})) == ["10.250.0.201"]
    assert decide(lb(ingress=["10.250.0.201"]), POOL, {"10.250.0.200"}) == LEAVE
    assert decide(lb(), POOL, {"10.250.0.200"}).ingress == [
        {"ip": "10.250.0.201", "ipMode": "VIP"}]


def test_an_address_another_service_holds_is_given_up() -> None:
    assert ips(decide(lb(ingress=["10.250.0.200"]), POOL, {"10.250.0.200"})) == \
        ["10.250.0.201"]


def test_exhausted_pool_reports_and_assigns_nothing() -> None:
    full = {"10.250.0.200", "10.250.0.201", "10.250.0.202"}
    decision = decide(lb(), POOL, full)
    assert decision.ingress is None and "no free address" in decision.problem


def test_load_balancer_ip_is_honoured_when_free_and_in_the_pool() -> None:
    assert ips(decide(lb(loadBalancerIP="10.250.0.202"), POOL, set())) == ["10.250.0.202"]
    # moving to the asked-for address
    assert ips(decide(lb(ingress=["10.250.0.200"], loadBalancerIP="10.250.0.202"), POOL,
                      set())) == ["10.250.0.202"]
    taken = decide(lb(loadBalancerIP="10.250.0.202"), POOL, {"10.250.0.202"})
    assert taken.ingress is None and "held by another Service" in taken.problem
    outside = decide(lb(ingress=["10.250.0.200"], loadBalancerIP="192.0.2.1"), POOL, set())
    assert outside.ingress == [] and "not in the pool" in outside.problem  # released


def test_other_classes_are_left_alone() -> None:
    other = lb(loadBalancerClass="example.com/metal")
    assert decide(other, POOL, set()) == LEAVE
    assert decide(lb(ingress=["10.250.0.200"], loadBalancerClass="x.io/y"), POOL, set()) == LEAVE


def test_a_service_that_is_no_longer_a_load_balancer_releases_its_address() -> None:
    changed = lb(ingress=["10.250.0.200"])
    changed["spec"]["type"] = "ClusterIP"
    assert decide(changed, POOL, set()).ingress == []
    # an address not from the pool is someone else's: left alone
    foreign = lb(ingress=["192.0.2.7"])
    foreign["spec"]["type"] = "NodePort"
    assert decide(foreign, POOL, set()) == LEAVE
    assert decide({"metadata": {"name": "x"}, "spec": {}}, POOL, set()) == LEAVE
