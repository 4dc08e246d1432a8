"""Leader election against a real mp-apiserver: two candidates, one leader.

Each candidate is its own user (a client certificate of the test CA) allowed to
get, create and update Leases by a RoleBinding. Revoking the leader's binding is a
real way to make it unable to renew while it keeps running: it must stop acting
(``on_stopped_leading``) before the other starts, and the other must lead within
the lease duration plus a retry period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from client.config import ClientConfig
from client.http import AsyncClient
from client.leaderelection import LeaderElector, Outcome, Timing
from tests.conftest import ApiServer
from tests.integration.callers import client_cert

NS = "default"
LOCK = "lock"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
RBAC = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}"
# Short, but with client-go's proportions (15/10/2).
TIMING = Timing(lease_duration=3, renew_deadline=2, retry_period=0.5)


@dataclass
class Log:
    """What every candidate did, on one monotonic clock."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    seen: dict[str, list[str]] = field(default_factory=dict)  # on_new_leader's calls

    def add(self, who: str, what: str) -> None:
        self.events.append((time.monotonic(), who, what))

    def first(self, who: str, what: str) -> float:
        return next(t for t, w, e in self.events if (w, e) == (who, what))

    def leaders_over_time(self) -> list[int]:
        """How many led after each event: never more than one."""
        leading: set[str] = set()
        counts = []
        for _, who, what in self.events:
            if what == "started":
                leading.add(who)
            elif what == "stopped":
                leading.discard(who)
            counts.append(len(leading))
        return counts


@pytest.fixture
def server(apiserver: ApiServer) -> Iterator[ApiServer]:
    with apiserver.http() as admin:
        role = {"metadata": {"name": "elect"}, "rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "create", "update"]}]}
        assert admin.post(f"{RBAC}/roles", json=role).status_code == 201
        for who in ("a", "b"):
            binding = {"metadata": {"name": who},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                   "name": "elect"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                     "name": f"cand-{who}"}]}
            assert admin.post(f"{RBAC}/rolebindings", json=binding).status_code == 201
    yield apiserver


def candidate(server: ApiServer, who: str, log: Log) -> tuple[LeaderElector, AsyncClient]:
    cert, key = client_cert(f"cand-{who}")
    client = AsyncClient(ClientConfig(server=server.url, ca_file=server.ca_file,
                                      client_cert=cert, client_key=key), timeout=5)

    async def lead() -> None:
        log.add(who, "started")
        await asyncio.Event().wait()  # act until cancelled

    elector = LeaderElector(client, NS, LOCK, f"cand-{who}", lead, TIMING,
                            on_stopped_leading=lambda: log.add(who, "stopped"),
                            on_new_leader=log.seen.setdefault(who, []).append)
    return elector, client


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def lease(server: ApiServer) -> dict:
    with server.http() as admin:
        return admin.get(f"{LEASES}/{LOCK}").json()


def test_one_leads_and_the_other_takes_over_when_it_cannot_renew(server: ApiServer) -> None:
    log = Log()

    async def scenario() -> tuple[Outcome, float]:
        (a, ca), (b, cb) = candidate(server, "a", log), candidate(server, "b", log)
        stop = asyncio.Event()
        started = time.monotonic()
        run_a = asyncio.create_task(a.run(stop))
        await until(lambda: a.is_leader(), 1.0, "the first candidate to lead at once")
        assert time.monotonic() - started < 1.0
        run_b = asyncio.create_task(b.run(stop))
        await asyncio.sleep(TIMING.lease_duration + 1)  # b waits, however long a renews
        assert [who for _, who, what in log.events if what == "started"] == ["a"]
        assert b.leader == "cand-a" and not b.is_leader()

        with server.http() as admin:  # a can no longer renew (nor read)
            assert admin.delete(f"{RBAC}/rolebindings/a").status_code == 200
        revoked = time.monotonic()
        outcome_a = await asyncio.wait_for(run_a, TIMING.lease_duration + 5)
        await until(lambda: b.is_leader(), TIMING.lease_duration + 5, "b to lead")
        stop.set()
        assert await asyncio.wait_for(run_b, 5) is Outcome.STOPPED
        await ca.aclose()
        await cb.aclose()
        return outcome_a, revoked

    outcome_a, revoked = asyncio.run(scenario())
    assert outcome_a is Outcome.LOST
    assert [(w, e) for _, w, e in log.events] == [
        ("a", "started"), ("a", "stopped"), ("b", "started"), ("b", "stopped")]
    assert max(log.leaders_over_time()) == 1
    assert log.seen["b"] == ["cand-a", "cand-b", ""]  # "": its own release at the end
    a_stopped, b_started = log.first("a", "stopped"), log.first("b", "started")
    # a stops by its renew deadline; b leads only after the lease duration
    assert a_stopped - revoked <= TIMING.renew_deadline + 0.5
    takeover = b_started - revoked
    print(f"takeover {takeover:.2f}s after the leader stopped renewing; "
          f"the leader stopped acting {b_started - a_stopped:.2f}s before")
    assert takeover <= TIMING.lease_duration + TIMING.retry_period * 1.2 + 1.0
    # b's clean stop released the Lease; the holder changed twice
    spec = lease(server)["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)
    assert spec["leaseTransitions"] == 1


def test_a_clean_stop_releases_and_the_standby_takes_over_at_once(server: ApiServer) -> None:
    log = Log()

    async def scenario() -> float:
        (a, ca), (b, cb) = candidate(server, "a", log), candidate(server, "b", log)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        run_a = asyncio.create_task(a.run(stop_a))
        await until(lambda: a.is_leader(), 1.0, "a to lead")
        run_b = asyncio.create_task(b.run(stop_b))
        await until(lambda: b.leader == "cand-a", 2.0, "b to see a lead")
        stop_a.set()
        stopped = time.monotonic()
        assert await run_a is Outcome.STOPPED
        await until(lambda: b.is_leader(), TIMING.lease_duration, "b to lead")
        took = time.monotonic() - stopped
        spec = lease(server)["spec"]
        assert spec["holderIdentity"] == "cand-b" and spec["leaseTransitions"] == 1
        stop_b.set()
        await run_b
        await ca.aclose()
        await cb.aclose()
        return took

    took = asyncio.run(scenario())
    # released: no waiting out the 3 s lease, one (jittered) retry period at most
    assert took < TIMING.retry_period * 1.2 + 0.5
    assert [(w, e) for _, w, e in log.events] == [
        ("a", "started"), ("a", "stopped"), ("b", "started"), ("b", "stopped")]


def test_a_candidate_that_lost_competes_again_and_leads_after_the_other(
        server: ApiServer) -> None:
    """After ``LOST`` the candidate does not claim to lead (its last record named
    itself), stands by while the other leads, and runs again as a new term when the
    other releases: never two leading at once."""
    log = Log()

    async def scenario() -> None:
        (a, ca), (b, cb) = candidate(server, "a", log), candidate(server, "b", log)
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        run_a = asyncio.create_task(a.run(stop_a))
        await until(lambda: a.is_leader(), 1.0, "a to lead")
        run_b = asyncio.create_task(b.run(stop_b))
        await until(lambda: b.leader == "cand-a", 2.0, "b to see a lead")
        with server.http() as admin:  # a can no longer renew (nor read)
            binding = admin.get(f"{RBAC}/rolebindings/a").json()
            assert admin.delete(f"{RBAC}/rolebindings/a").status_code == 200
        assert await asyncio.wait_for(run_a, TIMING.lease_duration + 5) is Outcome.LOST
        assert not a.is_leader() and a.leader == ""  # its own claim is forgotten
        await until(lambda: b.is_leader(), TIMING.lease_duration + 5, "b to lead")

        with server.http() as admin:  # a may read and write Leases again
            binding = {"metadata": {"name": "a"}, "roleRef": binding["roleRef"],
                       "subjects": binding["subjects"]}
            assert admin.post(f"{RBAC}/rolebindings", json=binding).status_code == 201
        run_a = asyncio.create_task(a.run(stop_a))
        await until(lambda: a.leader == "cand-b", TIMING.lease_duration, "a to see b lead")
        assert not a.is_leader() and not run_a.done()

        stop_b.set()  # b releases; a leads again at its next attempt
        assert await run_b is Outcome.STOPPED
        await until(lambda: a.is_leader(), TIMING.retry_period * 1.2 + 1.0, "a to lead again")
        stop_a.set()
        assert await run_a is Outcome.STOPPED
        await ca.aclose()
        await cb.aclose()

    asyncio.run(scenario())
    assert [(w, e) for _, w, e in log.events] == [
        ("a", "started"), ("a", "stopped"), ("b", "started"), ("b", "stopped"),
        ("a", "started"), ("a", "stopped")]
    assert max(log.leaders_over_time()) == 1
    assert log.seen["a"] == ["cand-a", "cand-b", "", "cand-a", ""]
    assert lease(server)["spec"]["leaseTransitions"] == 2
