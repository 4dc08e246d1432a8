"""One way for a component to run its tasks and tear them down.

``run_until_first_done`` is what every long-running part does: start some loops, run
until one of them ends (a loop ending is a failure or a finished job) or a stop event
is set, then cancel the others and wait for them, so nothing outlives its owner.
``cancel_and_wait`` is the teardown half, for tasks started elsewhere (informers
started before a sync wait, fire-and-forget writes).

``asyncio.TaskGroup`` does not fit on its own: it waits for every task when one
returns normally and has no stop event; the helper is a few lines over ``asyncio.wait``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended; their errors are dropped (the
    owner is stopping, and each task logs what it must)."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def run_until_first_done(coros: Mapping[str, Coroutine[Any, Any, Any]], *,
                               stop: asyncio.Event | None = None) -> str | None:
    """Run each coroutine as a task named by its key until the first ends or ``stop``
    is set; then cancel the rest and wait for them.

    Returns the name of the task that ended (None when ``stop`` ended the run), or
    raises that task's exception. Cancelling the caller cancels every task first.
    """
    tasks = {asyncio.create_task(coro, name=name): name for name, coro in coros.items()}
    waiter = asyncio.create_task(stop.wait()) if stop is not None else None
    try:
        done, _ = await asyncio.wait([*tasks, *([waiter] if waiter else [])],
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait([*tasks, *([waiter] if waiter else [])])
    ended = next((t for t in tasks if t in done), None)
    if ended is None:
        return None
    if not ended.cancelled() and ended.exception() is not None:
        raise ended.exception()  # type: ignore[misc]
    return tasks[ended]
