"""componentbase.tasks: run until the first task ends or a stop event, then tear down."""

from __future__ import annotations

import asyncio

import pytest

from componentbase.tasks import cancel_and_wait, run_until_first_done


async def _forever(cancelled: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(name)
        raise


def test_stop_event_cancels_every_task_and_waits_for_them() -> None:
    async def main() -> None:
        cancelled: list[str] = []
        stop = asyncio.Event()
        stop.set()
        ended = await run_until_first_done(
            {"a": _forever(cancelled, "a"), "b": _forever(cancelled, "b")}, stop=stop)
        assert ended is None and sorted(cancelled) == ["a", "b"]

    asyncio.run(main())


def test_first_task_to_return_ends_the_run() -> None:
    async def main() -> None:
        cancelled: list[str] = []

        async def quick() -> None:
            return None

        ended = await run_until_first_done({"quick": quick(), "b": _forever(cancelled, "b")},
                                           stop=asyncio.Event())
        assert ended == "quick" and cancelled == ["b"]

    asyncio.run(main())


def test_a_failure_is_raised_after_the_others_are_cancelled() -> None:
    async def main() -> None:
        cancelled: list[str] = []

        async def broken() -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await run_until_first_done({"broken": broken(), "b": _forever(cancelled, "b")})
        assert cancelled == ["b"]

    asyncio.run(main())


def test_cancelling_the_caller_cancels_the_tasks() -> None:
    async def main() -> None:
        cancelled: list[str] = []
        started = asyncio.Event()

        async def a() -> None:
            started.set()
            await _forever(cancelled, "a")

        runner = asyncio.create_task(run_until_first_done({"a": a()}))
        await started.wait()
        await cancel_and_wait([runner])
        assert runner.cancelled() and cancelled == ["a"]

    asyncio.run(main())
