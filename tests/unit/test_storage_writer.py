"""The writer thread outlives its callers: cancelled writes, failed commits, a closed store.

A request that times out (504) or a task cancelled at shutdown cancels the future of
its queued write (``asyncio.wrap_future``). Real databases (the fixtures of
``test_storage``); a write closure blocking on an event holds a write in flight.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from apiserver.errors import InternalError
from apiserver.storage.backend import Txn
from apiserver.storage.store import Store
from tests.unit.test_storage import db, postgresql_server, put, store, write  # noqa: F401
from tests.unit.test_storage_health import read_only


def held(name: str) -> tuple[Callable[[Txn], dict], threading.Event, threading.Event]:
    """A write of ``name`` that waits, once running, until its release is set."""
    running, release = threading.Event(), threading.Event()

    def run(txn: Txn) -> dict:
        running.set()
        assert release.wait(10), "never released"
        return put(name)(txn)
    return run, running, release


def timed_out(future_of_write: Callable[[], object], running: threading.Event) -> None:
    """What a 504 does to a write in flight: the request task awaiting it is cancelled."""
    async def request() -> None:
        task = asyncio.ensure_future(asyncio.wrap_future(future_of_write()))  # type: ignore[arg-type]
        assert await asyncio.to_thread(running.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(request())


def whole_commit_fails(url: str) -> None:
    """Only SQLite fails the whole commit when read-only (PostgreSQL fails the one write)."""
    if not url.startswith("sqlite"):
        pytest.skip("PostgreSQL in read-only mode fails each write, never the batch")


def stored(s: Store, name: str) -> bool:
    return s.get("things", "default", name) is not None


def test_a_write_cancelled_while_it_runs_commits_and_the_writer_goes_on(
        store: Store) -> None:  # noqa: F811
    slow, running, release = held("slow")
    timed_out(lambda: store.submit(slow), running)
    release.set()
    # the next write commits: the writer survived answering a cancelled caller
    assert write(store, put("next"))["metadata"]["resourceVersion"] == "2"  # type: ignore[index]
    assert store.writer_alive
    assert stored(store, "slow")  # it was running: it committed, as a 504 allows


def test_a_write_cancelled_while_queued_never_commits(store: Store) -> None:  # noqa: F811
    first, first_running, first_release = held("first")
    blocker = store.submit(first)
    assert first_running.wait(10)
    # queued behind the held write: taken together as the next batch
    second, second_running, second_release = held("second")
    batch = [store.submit(second), store.submit(put("cancelled")), store.submit(put("last"))]
    first_release.set()
    blocker.result(10)
    assert second_running.wait(10)
    # cancelled once its batch is taken but before its turn
    assert batch[1].cancel()
    second_release.set()
    assert batch[2].result(10)["metadata"]["resourceVersion"] == "3"
    assert batch[0].result(10)["metadata"]["resourceVersion"] == "2"
    assert batch[1].cancelled()
    assert not stored(store, "cancelled")
    assert [e.name for e in store.read_log(0, limit=10)] == ["first", "second", "last"]
    assert store.writer_alive


def allocating(name: str, undo: Callable[[], None] = lambda: None) -> Callable[[Txn], dict]:
    """A write that takes an allocation (as a Service's ClusterIP does): ``undo`` frees it."""
    def run(txn: Txn) -> dict:
        txn.on_rollback(undo)
        return put(name)(txn)
    return run


def test_a_rebuild_that_fails_still_answers_the_batch(db: str,  # noqa: F811
                                                      store: Store) -> None:  # noqa: F811
    """A failed commit rebuilds in-memory state from the database; if even that read
    fails (the database is gone), the writes still get the commit's error."""
    whole_commit_fails(db)

    def rebuild_fails() -> None:
        raise RuntimeError("cannot read the services back")
    store.on_batch_failure = rebuild_fails
    with read_only(db) as words:
        with pytest.raises(Exception, match=words):
            write(store, allocating("svc"))
        assert store.writer_alive
    assert write(store, put("after"))["metadata"]["resourceVersion"] == "1"  # type: ignore[index]


def test_the_writer_outlives_a_bug_in_a_failed_batch(db: str,  # noqa: F811
                                                     store: Store) -> None:  # noqa: F811
    """An error escaping the writer's own handling (here an undo hook that raises, a
    stand-in for a bug) answers the batch 500, shows on the storage check and leaves
    the writer serving."""
    whole_commit_fails(db)
    rebuilds: list[int] = []
    store.on_batch_failure = lambda: rebuilds.append(1)

    def broken_undo() -> None:
        raise RuntimeError("undo hook bug")
    with read_only(db):
        with pytest.raises(InternalError, match="storage writer error"):
            write(store, allocating("svc", broken_undo))
        assert store.writer_alive
        assert rebuilds == [1]
        assert "undo hook bug" in (asyncio.run(store.health.check()) or "")
    assert write(store, put("after"))["metadata"]["resourceVersion"] == "1"  # type: ignore[index]
    assert asyncio.run(store.health.check()) is None


def test_probes_that_fail_rebuild_nothing(db: str, store: Store) -> None:  # noqa: F811
    """A failed commit of health probes allocated nothing: no rebuild (a full read of the
    Services) every time ``/readyz`` asks a broken database."""
    whole_commit_fails(db)
    rebuilds: list[int] = []
    store.on_batch_failure = lambda: rebuilds.append(1)
    with read_only(db):
        with pytest.raises(Exception):  # noqa: B017, PT011
            store.probe().result(10)
        assert rebuilds == []
        with pytest.raises(Exception):  # noqa: B017, PT011
            write(store, put("plain"))  # allocates nothing either
        assert rebuilds == []
        with pytest.raises(Exception):  # noqa: B017, PT011
            write(store, allocating("svc"))
        assert rebuilds == [1]


def test_the_storage_check_fails_at_once_without_a_writer(db: str) -> None:  # noqa: F811
    s = Store(db)
    s.start()
    assert asyncio.run(s.health.check()) is None
    s.close()
    began = time.monotonic()
    why = asyncio.run(s.health.check())
    assert why is not None and "writer" in why
    assert time.monotonic() - began < 1.0  # not the probe's 2 s timeout
    assert s._queue.empty()  # no probe left behind for a writer that never comes
