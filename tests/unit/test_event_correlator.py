"""client-go's EventCorrelator in miniplane: de-duplication, aggregation, spam filter.

A fake clock moves time; no I/O.
"""

from __future__ import annotations

import asyncio
from typing import Any

from client.correlator import (
    COMBINED_PREFIX,
    EventCorrelator,
    EventNamer,
    Lru,
    TokenBucket,
    event_key,
)
from client.events import MAX_QUEUED, Recorder, event_body

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u-1"}}
OTHER = {"metadata": {"name": "db", "namespace": "default", "uid": "u-2"}}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ev(clock: Clock, *, obj: dict = POD, reason: str = "Unhealthy",
       message: str = "Readiness probe failed: HTTP probe failed with statuscode: 503",
       component: str = "kubelet", host: str = "node-a") -> dict[str, Any]:
    return event_body(obj, kind="Pod", api_version="v1", type_="Warning", reason=reason,
                      message=message, component=component, now=clock(), host=host,
                      field_path="spec.containers{web}")


def test_event_looks_like_the_legacy_recorders() -> None:
    clock = Clock(1_700_000_000.5)
    body = ev(clock)
    assert body["metadata"] == {"name": f"web.{int(1_700_000_000.5 * 1e9):x}",
                                "namespace": "default"}
    assert body["source"] == {"component": "kubelet", "host": "node-a"}
    assert (body["reportingComponent"], body["reportingInstance"]) == ("kubelet", "node-a")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert body["count"] == 1 and body["eventTime"] is None
    assert body["involvedObject"]["fieldPath"] == "spec.containers{web}"
    cluster_scoped = event_body({"metadata": {"name": "n1", "uid": "u"}}, kind="Node",
                                api_version="v1", type_="Normal", reason="NodeNotReady",
                                message="m", component="c", now=1.0)
    assert cluster_scoped["metadata"]["namespace"] == "default"
    assert cluster_scoped["involvedObject"]["namespace"] == ""
    assert "host" not in cluster_scoped["source"]


def test_repeats_patch_one_event_with_a_growing_count() -> None:
    clock = Clock()
    c = EventCorrelator(clock=clock)
    first = c.correlate(ev(clock))
    assert first is not None and first.patch is None and first.body["count"] == 1
    name, stamp = first.body["metadata"]["name"], first.body["firstTimestamp"]
    c.update_state(first.key, first.body)
    for n in (2, 3, 4):
        clock.now += 10
        w = c.correlate(ev(clock))
        assert w is not None and w.key == first.key
        assert w.body["metadata"]["name"] == name  # the same object
        assert w.body["firstTimestamp"] == stamp
        assert w.patch == {"count": n, "lastTimestamp": w.body["lastTimestamp"],
                           "message": w.body["message"]}
        assert w.body["lastTimestamp"] != stamp


def test_a_different_message_object_or_source_is_another_event() -> None:
    clock = Clock()
    c = EventCorrelator(clock=clock)
    keys = set()
    for body in (ev(clock), ev(clock, message="Readiness probe failed: other"),
                 ev(clock, obj=OTHER), ev(clock, host="node-b"), ev(clock, reason="BackOff")):
        w = c.correlate(body)
        assert w is not None and w.patch is None
        keys.add(w.key)
    assert len(keys) == 5


def test_server_state_wins_after_a_write() -> None:
    """The count and name the server answered are what the next patch builds on."""
    clock = Clock()
    c = EventCorrelator(clock=clock)
    w = c.correlate(ev(clock))
    assert w is not None
    c.update_state(w.key, {**w.body, "metadata": {"name": "served"}, "count": 7})
    nxt = c.correlate(ev(clock))
    assert nxt is not None and nxt.patch is not None
    assert nxt.patch["count"] == 8 and nxt.body["metadata"]["name"] == "served"


def test_repeats_counted_while_a_write_waited_are_not_forgotten() -> None:
    """The writer answers after later repeats were counted: the create's response
    (count 1) must not set the count back, or the Event ends short of the truth."""
    clock = Clock()
    c = EventCorrelator(clock=clock)
    first = c.correlate(ev(clock))
    assert first is not None
    for _ in range(4):  # counted while the create is still queued
        c.correlate(ev(clock))
    c.update_state(first.key, first.body)  # the create's answer arrives: count 1
    nxt = c.correlate(ev(clock))
    assert nxt is not None and nxt.patch is not None and nxt.patch["count"] == 6


def test_similar_events_are_combined_from_the_tenth_message_on() -> None:
    clock = Clock()
    c = EventCorrelator(clock=clock)
    writes = []
    for i in range(12):
        clock.now += 1
        w = c.correlate(ev(clock, message=f"Readiness probe failed: attempt {i}"))
        assert w is not None
        writes.append(w)
    assert all(not w.body["message"].startswith(COMBINED_PREFIX) for w in writes[:9])
    combined = writes[9:]
    assert [w.body["message"] for w in combined] == [
        COMBINED_PREFIX + f"Readiness probe failed: attempt {i}" for i in (9, 10, 11)]
    assert combined[0].patch is None  # one new combined event, then patches of it
    assert [w.patch["count"] for w in combined[1:] if w.patch] == [2, 3]
    assert len({w.body["metadata"]["name"] for w in combined}) == 1
    # another object's events are not combined with these
    w = c.correlate(ev(clock, obj=OTHER, message="attempt x"))
    assert w is not None and not w.body["message"].startswith(COMBINED_PREFIX)


def test_similar_events_spread_beyond_the_interval_are_not_combined() -> None:
    clock = Clock()
    c = EventCorrelator(clock=clock)
    for i in range(20):
        clock.now += 601
        w = c.correlate(ev(clock, message=f"m{i}"))
        assert w is not None and not w.body["message"].startswith(COMBINED_PREFIX)


def test_spam_filter_allows_a_burst_then_one_per_refill_per_source_and_object() -> None:
    clock = Clock()
    c = EventCorrelator(clock=clock)
    results = [c.correlate(ev(clock, reason=f"R{i}")) for i in range(30)]
    assert [w is not None for w in results] == [True] * 25 + [False] * 5
    assert c.correlate(ev(clock, obj=OTHER)) is not None  # another object: its own bucket
    assert c.correlate(ev(clock, host="node-b")) is not None  # another source too
    clock.now += 299
    assert c.correlate(ev(clock, reason="R99")) is None
    clock.now += 1
    assert c.correlate(ev(clock, reason="R99")) is not None
    assert c.correlate(ev(clock, reason="R99")) is None


def test_a_dropped_repeat_is_still_counted() -> None:
    """client-go observes before it filters: the write that gets through carries every
    occurrence, so `count` tells how often the probe failed."""
    clock = Clock()
    c = EventCorrelator(clock=clock, burst=2, refill=300)
    first = c.correlate(ev(clock))
    assert first is not None
    c.update_state(first.key, first.body)
    assert c.correlate(ev(clock)) is not None  # count 2
    assert c.correlate(ev(clock)) is None  # count 3, dropped
    assert c.correlate(ev(clock)) is None  # count 4, dropped
    clock.now += 300
    w = c.correlate(ev(clock))
    assert w is not None and w.patch is not None and w.patch["count"] == 5


def test_token_bucket_refills_fractionally_and_caps_at_burst() -> None:
    b = TokenBucket(burst=2, refill=10.0, tokens=2.0, last=0.0)
    assert b.take(0.0) and b.take(0.0) and not b.take(0.0)
    assert not b.take(5.0)  # half a token
    assert b.take(10.0)
    assert b.take(1000.0) and b.take(1000.0) and not b.take(1000.0)


def test_lru_forgets_the_least_recently_used() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert len(lru) == 2


def test_event_key_ignores_time_and_name() -> None:
    clock = Clock()
    a = ev(clock)
    clock.now += 5
    assert event_key(a) == event_key(ev(clock))


def test_events_in_the_same_nanosecond_get_distinct_names() -> None:
    """Otherwise the second one's create fails and its repeats patch the first."""
    namer = EventNamer()
    assert namer("web", 1.0) == f"web.{10**9:x}"
    assert namer("web", 1.0) == f"web.{10**9 + 1:x}"
    assert namer("db", 0.5) == f"db.{10**9 + 2:x}"  # never backwards either
    clock = Clock()
    c = EventCorrelator(clock=clock)
    first = c.correlate({**ev(clock), "metadata": {"name": c.namer("web", clock()),
                                                   "namespace": "default"}})
    for i in range(9):
        w = c.correlate(ev(clock, message=f"m{i}"))
    assert first is not None and w is not None
    assert w.body["message"].startswith(COMBINED_PREFIX)
    assert w.body["metadata"]["name"] != first.body["metadata"]["name"]


# -- the recorder's writer, against an API server that stalls (a fault a real one
# -- does not produce on demand)


class StalledApi:
    """Holds every create until ``release``; records what was sent."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []

    async def create(self, kind: Any, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.sent.append(("create", body["reason"]))
        self.bodies.append(body)
        await self.release.wait()
        return body

    async def patch(self, kind: Any, name: str, patch: Any, *, namespace: str
                    ) -> dict[str, Any]:
        self.sent.append(("patch", name))
        return {"metadata": {"name": name}, "count": patch["count"]}


def test_recorder_never_waits_and_sheds_events_beyond_its_queue() -> None:
    async def main() -> None:
        api = StalledApi()
        clock = Clock()
        recorder = Recorder(api, "kubelet", wall=clock, host="node-a",  # type: ignore[arg-type]
                            correlator=EventCorrelator(clock=clock, burst=10_000))
        for i in range(MAX_QUEUED + 50):
            recorder.record(POD, kind="Pod", type_="Normal", reason=f"R{i}", message="m")
        await asyncio.sleep(0.01)
        assert api.sent == [("create", "R0")]  # one in flight, in order, the rest queued
        api.release.set()
        await recorder.flush(5.0)
        # record() ran 250 times before the writer first ran: the first MAX_QUEUED
        # were queued, the rest dropped
        assert len(api.sent) == MAX_QUEUED
        assert api.sent[-1] == ("create", f"R{MAX_QUEUED - 1}")
        await recorder.close()

    asyncio.run(main())


def test_recorder_patches_a_repeat_after_its_create() -> None:
    async def main() -> None:
        api = StalledApi()
        api.release.set()
        clock = Clock()
        recorder = Recorder(api, "kubelet", wall=clock)  # type: ignore[arg-type]
        for _ in range(3):
            recorder.record(POD, kind="Pod", type_="Warning", reason="BackOff", message="m")
        await recorder.flush(5.0)
        name = f"web.{int(clock() * 1e9):x}"
        assert api.sent == [("create", "BackOff"), ("patch", name), ("patch", name)]
        await recorder.close()

    asyncio.run(main())


def test_component_views_share_one_writer_and_name_themselves() -> None:
    async def main() -> None:
        api = StalledApi()
        api.release.set()
        clock = Clock()
        recorder = Recorder(api, "mp-controllers", wall=clock)  # type: ignore[arg-type]
        scheduler = recorder.for_component("default-scheduler")
        scheduler.record(POD, kind="Pod", type_="Normal", reason="Scheduled", message="m")
        recorder.record(POD, kind="Pod", type_="Normal", reason="Other", message="m")
        assert scheduler._writer is recorder._writer
        await recorder.flush(5.0)
        assert [reason for _, reason in api.sent] == ["Scheduled", "Other"]
        assert [b["source"]["component"] for b in api.bodies] == ["default-scheduler",
                                                                 "mp-controllers"]
        await recorder.close()
        assert scheduler._writer.task is not None and scheduler._writer.task.done()

    asyncio.run(main())
