"""Work queue layers: de-duplication, processing/dirty, delays on a fake clock, rate limits."""

from __future__ import annotations

import asyncio

import pytest

from client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    FakeClock,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    Queue,
    ShutDown,
    WorkQueue,
    run_worker,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=5))


async def settle() -> None:
    """Let every ready task run until it blocks again (no wall-clock time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


# -- Queue: de-duplication and the processing/dirty sets -------------------------------


def test_add_deduplicates_waiting_keys_and_keeps_fifo_order():
    async def main():
        q: Queue[str] = Queue()
        for key in ["a", "b", "a", "c", "b"]:
            q.add(key)
        assert len(q) == 3
        assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
        assert len(q) == 0

    run(main())


def test_key_readded_while_processing_is_handed_out_again_only_after_done():
    async def main():
        q: Queue[str] = Queue()
        q.add("a")
        assert await q.get() == "a"
        q.add("a")
        q.add("a")
        assert len(q) == 0  # not queued while a worker holds it

        second = asyncio.create_task(q.get())
        await settle()
        assert not second.done()  # a second worker can't get the same key

        q.done("a")
        assert await second == "a"
        q.done("a")
        assert len(q) == 0

    run(main())


def test_done_without_readd_does_not_requeue():
    async def main():
        q: Queue[str] = Queue()
        q.add("a")
        await q.get()
        q.done("a")
        assert len(q) == 0

    run(main())


def test_waiting_worker_wakes_on_add():
    async def main():
        q: Queue[str] = Queue()
        worker = asyncio.create_task(q.get())
        await settle()
        assert not worker.done()
        q.add("x")
        assert await worker == "x"

    run(main())


def test_each_added_key_wakes_one_of_several_workers():
    async def main():
        q: Queue[str] = Queue()
        workers = [asyncio.create_task(q.get()) for _ in range(3)]
        await settle()
        q.add("a")
        q.add("b")
        await settle()
        got = sorted(w.result() for w in workers if w.done())
        assert got == ["a", "b"]
        q.add("c")
        assert sorted([*got, *(await asyncio.gather(*(w for w in workers if not w.done())))]) \
            == ["a", "b", "c"]

    run(main())


def test_cancelled_worker_passes_its_wakeup_on():
    async def main():
        q: Queue[str] = Queue()
        first = asyncio.create_task(q.get())
        second = asyncio.create_task(q.get())
        await settle()
        q.add("a")  # wakes `first` ...
        first.cancel()  # ... which is cancelled before it takes the key
        await settle()
        assert first.cancelled()
        assert await second == "a"

    run(main())


def test_shut_down_drains_queued_keys_then_raises_and_ignores_adds():
    async def main():
        q: Queue[str] = Queue()
        idle = asyncio.create_task(q.get())
        await settle()
        q.shut_down()
        with pytest.raises(ShutDown):
            await idle

        q2: Queue[str] = Queue()
        q2.add("a")
        q2.shut_down()
        q2.add("b")
        assert q2.shutting_down
        assert await q2.get() == "a"
        with pytest.raises(ShutDown):
            await q2.get()

    run(main())


def test_async_iteration_stops_at_shut_down():
    async def main():
        q: Queue[str] = Queue()
        q.add("a")
        q.add("b")
        seen = []

        async def consume():
            async for key in q:
                seen.append(key)
                q.done(key)
                if key == "b":
                    q.shut_down()

        await consume()
        assert seen == ["a", "b"]

    run(main())


# -- DelayingQueue: add_after on a fake clock -----------------------------------------


def test_add_after_hands_keys_out_in_ready_time_order():
    async def main():
        clock = FakeClock()
        q: DelayingQueue[str] = DelayingQueue(clock=clock)
        q.add_after("c", 3)
        q.add_after("a", 1)
        q.add_after("b", 2)
        assert len(q) == 0
        clock.advance(0.999)
        assert len(q) == 0
        clock.advance(0.001)
        assert len(q) == 1
        clock.advance(5)
        assert [await q.get() for _ in range(3)] == ["a", "b", "c"]

    run(main())


def test_add_after_keeps_the_earliest_time_per_key():
    async def main():
        clock = FakeClock()
        q: DelayingQueue[str] = DelayingQueue(clock=clock)
        q.add_after("x", 10)
        q.add_after("x", 2)
        q.add_after("x", 5)  # later than the pending 2 s: ignored
        clock.advance(2)
        assert len(q) == 1
        assert await q.get() == "x"
        q.done("x")
        clock.advance(20)  # the superseded 5 s and 10 s entries don't fire again
        assert len(q) == 0

    run(main())


def test_add_after_with_no_delay_adds_at_once():
    async def main():
        q: DelayingQueue[str] = DelayingQueue(clock=FakeClock())
        q.add_after("now", 0)
        q.add_after("neg", -1)
        assert len(q) == 2

    run(main())


def test_blocked_worker_wakes_when_a_delayed_key_becomes_due():
    async def main():
        clock = FakeClock()
        q: DelayingQueue[str] = DelayingQueue(clock=clock)
        worker = asyncio.create_task(q.get())
        await settle()
        q.add_after("late", 5)  # added while the worker already waits
        q.add_after("soon", 1)
        await settle()
        assert not worker.done()
        clock.advance(1)
        await settle()
        assert worker.done() and worker.result() == "soon"
        clock.advance(4)
        assert await q.get() == "late"

    run(main())


def test_shut_down_drops_delayed_keys():
    async def main():
        clock = FakeClock()
        q: DelayingQueue[str] = DelayingQueue(clock=clock)
        q.add_after("a", 1)
        q.shut_down()
        clock.advance(2)
        assert len(q) == 0
        with pytest.raises(ShutDown):
            await q.get()

    run(main())


# -- rate limiting ---------------------------------------------------------------------


def test_item_exponential_doubles_from_5ms_to_cap_per_key():
    rl: ItemExponentialRateLimiter[str] = ItemExponentialRateLimiter()
    delays = [rl.when("a") for _ in range(5)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert rl.num_requeues("a") == 5
    assert rl.when("b") == pytest.approx(0.005)  # per key
    for _ in range(40):
        last = rl.when("a")
    assert last == 1000.0
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == pytest.approx(0.005)


def test_item_exponential_is_configurable_and_survives_huge_counts():
    rl: ItemExponentialRateLimiter[str] = ItemExponentialRateLimiter(base=1, cap=10)
    assert [rl.when("k") for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    for _ in range(2000):
        rl.when("k")
    assert rl.when("k") == 10


def test_bucket_allows_a_burst_then_spaces_by_qps():
    clock = FakeClock()
    rl: BucketRateLimiter[str] = BucketRateLimiter(qps=10, burst=3, clock=clock)
    assert [rl.when(str(i)) for i in range(3)] == [0, 0, 0]
    assert rl.when("x") == pytest.approx(0.1)
    assert rl.when("y") == pytest.approx(0.2)
    clock.advance(10)  # refills, but never beyond the burst
    assert [rl.when(str(i)) for i in range(3)] == [0, 0, 0]
    assert rl.when("z") == pytest.approx(0.1)


def test_max_of_takes_the_longest_wait():
    clock = FakeClock()
    rl = MaxOfRateLimiter(ItemExponentialRateLimiter(base=1, cap=100),
                          BucketRateLimiter(qps=1, burst=1, clock=clock))
    assert rl.when("a") == 1  # exponential 1, bucket 0
    assert rl.when("a") == 2  # exponential 2, bucket 1
    assert rl.num_requeues("a") == 2
    rl.forget("a")
    assert rl.num_requeues("a") == 0


def test_add_rate_limited_requeues_after_the_limiters_delay():
    async def main():
        clock = FakeClock()
        q: WorkQueue[str] = WorkQueue(clock=clock,
                                      rate_limiter=ItemExponentialRateLimiter(base=1, cap=60))
        q.add_rate_limited("k")  # 1 s
        assert q.num_requeues("k") == 1
        clock.advance(0.5)
        assert len(q) == 0
        clock.advance(0.5)
        assert await q.get() == "k"
        q.done("k")
        q.add_rate_limited("k")  # 2 s now
        clock.advance(1.5)
        assert len(q) == 0
        clock.advance(0.5)
        assert len(q) == 1
        q.forget("k")
        assert q.num_requeues("k") == 0

    run(main())


def test_default_rate_limiter_is_client_go_per_item_exponential():
    q: WorkQueue[str] = WorkQueue()
    assert isinstance(q.rate_limiter, ItemExponentialRateLimiter)
    assert (q.rate_limiter.base, q.rate_limiter.cap) == (0.005, 1000.0)


def test_run_worker_retries_failures_rate_limited_and_forgets_on_success():
    async def main():
        clock = FakeClock()
        q: WorkQueue[str] = WorkQueue(clock=clock,
                                      rate_limiter=ItemExponentialRateLimiter(base=1, cap=60))
        calls: list[tuple[str, float]] = []

        async def sync(key: str) -> None:
            calls.append((key, clock.now()))
            if len(calls) < 3:
                raise RuntimeError("conflict")

        worker = asyncio.create_task(run_worker(q, sync, name="test"))
        q.add("k")
        await settle()
        assert calls == [("k", 0)]
        clock.advance(1)  # first retry after 1 s
        await settle()
        clock.advance(2)  # second after 2 s more
        await settle()
        assert calls == [("k", 0), ("k", 1), ("k", 3)]
        assert q.num_requeues("k") == 0  # forgotten after the success
        q.shut_down()
        await worker

    run(main())
