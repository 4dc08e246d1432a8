"""apiserver.inflight: which requests count where, and what a full limit does."""

from __future__ import annotations

import asyncio
import threading

import anyio.to_thread
import pytest

from apiserver.auth.user import MASTERS, UserInfo
from apiserver.errors import BadRequest, Timeout, TooManyRequests
from apiserver.inflight import MUTATING, READ_ONLY, InFlight, is_long_running

ALICE = UserInfo("alice", ("system:authenticated",))
ADMIN = UserInfo("kubernetes-admin", (MASTERS, "system:authenticated"))


def scope(method: str = "GET", path: str = "/api/v1/pods", query: bytes = b"") -> dict:
    return {"method": method, "path": path, "query_string": query}


@pytest.mark.parametrize(("method", "query", "long"), [
    ("GET", b"watch=true", True), ("GET", b"watch=1&resourceVersion=5", True),
    ("GET", b"labelSelector=a&watch", True), ("GET", b"watch=false", False),
    ("GET", b"watch=0", False), ("GET", b"allowWatchBookmarks=true", False),
    ("POST", b"watch=true", False), ("GET", b"", False),
    # read as the handler reads it: the last value wins, percent-decoded
    ("GET", b"watch=true&watch=false", False), ("GET", b"watch=0&watch=1", True),
    ("GET", b"watch=%74rue", True), ("GET", b"w%61tch=1", True),
    ("GET", b"watch=maybe", False),  # a 400, under the limits
])
def test_only_watches_are_long_running(method: str, query: bytes, long: bool) -> None:
    assert is_long_running(scope(method, query=query)) is long


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default/pods/web", "/api/v1",
                                  "/apis/apps/v1", "/version", "/api/v1/nothings"])
def test_watch_is_long_running_only_on_a_collection(path: str) -> None:
    """Only a collection is served as a watch; a get of one object with ``?watch=1``
    is a get, and must not escape the limits."""
    assert is_long_running(scope(path=path, query=b"watch=1")) is False
    assert is_long_running(scope(path="/api/v1/namespaces/default/pods", query=b"watch=1"))


def test_a_full_kind_refuses_others_but_not_masters_watches_or_probes() -> None:
    limits = InFlight(1, 1, 60)
    held = limits.admit(scope(), ALICE)
    with pytest.raises(TooManyRequests) as info:
        limits.admit(scope(), ALICE)
    assert info.value.code == 429 and info.value.headers == {"Retry-After": "1"}
    assert info.value.status()["details"] == {"retryAfterSeconds": 1}
    write = limits.admit(scope("POST"), ALICE)  # writes have their own limit
    over = limits.admit(scope(), ADMIN)  # served, holding no slot
    watch = limits.admit(scope(query=b"watch=1"), ALICE)
    probe = limits.admit(scope(path="/readyz"), ALICE)
    assert limits.current == {READ_ONLY: 1, MUTATING: 1} and limits.long_running == 1
    assert (over.bounded, watch.bounded, probe.bounded) == (True, False, False)
    for slot in (held, write, over, watch, probe, held):  # a second release is none
        slot.release()
    assert limits.current == {READ_ONLY: 0, MUTATING: 0} and limits.long_running == 0
    assert limits.dropped == {READ_ONLY: 1, MUTATING: 0}


def test_zero_is_no_limit() -> None:
    limits = InFlight(0, 0, 60)
    for _ in range(1000):
        limits.admit(scope("DELETE"), ALICE)
    assert limits.current[MUTATING] == 1000


def test_work_over_the_timeout_is_cancelled_and_answered_504() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def run() -> None:
        limits = InFlight(1, 1, 0.01)
        assert await limits.within(asyncio.sleep(0, "done"), False) == "done"
        with pytest.raises(Timeout) as info:
            await limits.within(forever(), True)
        assert info.value.code == 504 and "may or may not have been committed" in \
            info.value.message
        await asyncio.wait_for(cancelled.wait(), 5)
        assert limits.timeouts == 1

    asyncio.run(run())


@pytest.mark.parametrize(("query", "seconds"), [
    (b"", 60.0), (b"timeout=30s", 30.0), (b"timeout=5m", 60.0), (b"timeout=0s", 60.0),
    (b"limit=5&timeout=1m30s", 60.0), (b"timeout=250ms", 0.25),
])
def test_a_client_may_shorten_its_timeout_but_not_lengthen_it(query: bytes,
                                                              seconds: float) -> None:
    assert InFlight(1, 1, 60).timeout_for(scope(query=query)) == seconds


def test_a_timeout_that_is_no_duration_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid timeout specified in the request URL"):
        InFlight(1, 1, 60).timeout_for(scope(query=b"timeout=soon"))


def test_work_abandoned_on_a_worker_thread_keeps_its_slot_until_it_ends() -> None:
    """A 504 does not stop a read already on a thread: until it ends it holds its slot,
    so clients timing out at once can't start reads past --max-requests-inflight."""
    go_on = threading.Event()

    async def slow_read() -> str:
        await anyio.to_thread.run_sync(go_on.wait)
        return "read"

    async def run() -> None:
        limits = InFlight(1, 1, 60)
        request = scope(query=b"timeout=10ms")
        slot = limits.admit(request, ALICE)
        try:
            with pytest.raises(Timeout):
                await limits.bounded(slot, request, slow_read)
        finally:
            slot.release()  # as the server does once the 504 is sent
        assert limits.current[READ_ONLY] == 1, "the slot went back while the read runs"
        with pytest.raises(TooManyRequests):
            limits.admit(scope(), ALICE)
        go_on.set()
        for _ in range(500):  # the thread ends, then its task: the slot is free
            if limits.current[READ_ONLY] == 0:
                break
            await asyncio.sleep(0.01)
        assert limits.current[READ_ONLY] == 0
        limits.admit(scope(), ALICE).release()

    try:
        asyncio.run(run())
    finally:
        go_on.set()
