"""The API server's storage on real databases: write path, log reads, log follower.

Every test runs on a SQLite file and, where the Debian ``postgresql`` package and
psycopg are installed, on a throwaway PostgreSQL server (``tests/postgres.py``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy

from apiserver.errors import Conflict, Gone, NotFound
from apiserver.storage.backend import Event, Txn
from apiserver.storage.follower import LogFollower, in_order
from apiserver.storage.store import Store
from tests import postgres


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[str]:
    reason = postgres.skip_reason()
    if reason is not None:
        pytest.skip(f"PostgreSQL untested here: {reason}")
    with postgres.server() as admin_url:
        yield admin_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    admin_url = request.getfixturevalue("postgresql_server")
    return postgres.create_database(admin_url, f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = Store(db)
    s.start()
    yield s
    s.close()


def put(name: str, ns: str = "default", value: int = 0) -> Callable[[Txn], dict]:
    def run(txn: Txn) -> dict:
        prev = txn.get("things", ns, name)
        return txn.put("things", ns, name, {"metadata": {"name": name}, "v": value}, prev)
    return run


def remove(name: str, ns: str = "default") -> Callable[[Txn], dict]:
    def run(txn: Txn) -> dict:
        obj = txn.get("things", ns, name)
        if obj is None:
            raise NotFound(name)
        return txn.remove("things", ns, name, obj)
    return run


def ev(rv: int) -> Event:
    return Event(rv, "ADDED", "things", "default", f"n{rv}", "{}")


def write(store: Store, fn: Callable[[Txn], object], **kw: bool) -> object:
    return store.submit(fn, **kw).result(timeout=10)


# -- sequencing (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(("delivered", "rvs", "ready", "hole"), [
    (3, [4, 5, 6], [4, 5, 6], None),
    (3, [2, 3, 4], [4], None),  # duplicates dropped
    (3, [4, 5, 7, 8], [4, 5], 6),  # a hole stops the run
    (3, [6], [], 4),
    (3, [], [], None),
])
def test_in_order(delivered, rvs, ready, hole):
    got, missing = in_order(delivered, [ev(rv) for rv in rvs])
    assert [e.rv for e in got] == ready
    assert missing == hole


# -- the write path -------------------------------------------------------------------------


def test_a_rejected_write_rolls_back_alone_and_keeps_revisions_contiguous(store):
    futures = [store.submit(put("a")), store.submit(remove("missing")), store.submit(put("b"))]
    assert futures[0].result(10)["metadata"]["resourceVersion"] == "1"
    with pytest.raises(NotFound):
        futures[1].result(10)
    assert futures[2].result(10)["metadata"]["resourceVersion"] == "2"
    assert [e.rv for e in store.read_log(0, limit=10)] == [1, 2]


def test_dry_run_changes_nothing(store):
    obj = write(store, put("a"), dry_run=True)
    assert obj["metadata"]["resourceVersion"] == "1"
    assert store.get("things", "default", "a") is None
    assert store.revision == 0
    assert store.read_log(0, limit=10) == []


def test_list_at_an_older_revision_is_rebuilt_from_the_log(store):
    write(store, put("a", value=1))
    write(store, put("b", value=1))
    write(store, put("a", value=2))
    write(store, remove("b"))
    write(store, put("c"))
    old = store.list("things", "default", revision=2)
    assert old.revision == 2
    assert [orjson.loads(o) for o in old.items] == [thing("a", 1, rv=1), thing("b", 1, rv=2)]
    now = store.list("things", None)
    assert now.revision == 5
    assert len(now.items) == 2
    page = store.list("things", "default", limit=1)
    assert page.next_key == ("default", "a")
    rest = store.list("things", "default", after=page.next_key)
    assert '"c"' in rest.items[0]


def thing(name: str, value: int, *, rv: int) -> dict:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "v": value}


def test_compaction_answers_gone_and_survives_a_restart(db):
    s = Store(db)
    s.start()
    for i in range(5):
        write(s, put(f"o{i}"))
    assert s.compact(2).result(10) == 3
    assert s.compacted_revision == 3 == s.compacted()
    with pytest.raises(Gone):
        s.events_after(2, "things")
    with pytest.raises(Gone):
        s.read_log(1, limit=10)
    with pytest.raises(Gone):
        s.list("things", None, revision=2)
    assert [e.rv for e in s.events_after(3, "things", "default")] == [4, 5]
    s.close()
    again = Store(db)
    assert (again.revision, again.compacted_revision) == (5, 3)
    again.close()


def test_commit_listeners_hear_each_commit_in_order(store):
    heard: list[list[int]] = []
    store.on_commit(lambda events: heard.append([e.rv for e in events]))
    write(store, put("a"))
    write(store, put("b"))
    write(store, put("a"), dry_run=True)
    assert heard == [[1], [2]]


def test_a_second_writer_on_a_stale_revision_loses_with_a_conflict(db, store):
    """Two stores on one database: what issue #16 must solve; today it fails cleanly."""
    other = Store(db)
    other.start()
    try:
        write(store, put("a"))
        with pytest.raises(Conflict, match="concurrent write"):
            write(other, put("b"))
        assert store.list("things", None).items[0].startswith('{"metadata":{"name":"a"')
    finally:
        other.close()


# -- the log follower -----------------------------------------------------------------------


class Recorder:
    """A sink that keeps what it was given (the watch hub's two calls)."""

    def __init__(self) -> None:
        self.rvs: list[int] = []
        self.skipped_to: int | None = None
        self.changed = asyncio.Event()

    def publish(self, events: list[Event]) -> None:
        self.rvs.extend(e.rv for e in events)
        self.changed.set()

    def skip_to(self, revision: int) -> None:
        self.skipped_to = revision
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def test_follower_delivers_local_commits_from_the_nudge(store):
    async def main() -> None:
        sink = Recorder()
        follower = LogFollower(store, sink, after=store.revision, poll_interval=3600)
        follower.start()
        for i in range(20):
            store.submit(put(f"o{i % 3}"))
        await sink.until(lambda: len(sink.rvs) == 20)
        await follower.stop()
        assert sink.rvs == list(range(1, 21))

    asyncio.run(main())


def test_follower_polls_writes_it_was_not_nudged_about(db, store):
    """Another process's writes reach this follower by reading the log."""
    async def main() -> None:
        sink = Recorder()
        reader = Store(db)  # never writes: it only follows the log
        follower = LogFollower(reader, sink, after=reader.revision, poll_interval=0.01)
        follower.start()
        for i in range(5):
            await asyncio.wrap_future(store.submit(put(f"o{i}")))
        await sink.until(lambda: len(sink.rvs) == 5)
        await follower.stop()
        reader.close()
        assert sink.rvs == [1, 2, 3, 4, 5]

    asyncio.run(main())


def insert_event(db: str, rv: int) -> None:
    """Commit a log row behind the store's back, as another server's writer would."""
    engine = sqlalchemy.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(
            "INSERT INTO events (rv, resource, namespace, name, type, data, prev) "
            "VALUES (:rv, 'things', 'default', :name, 'ADDED', '{}', NULL)"),
            {"rv": rv, "name": f"raw{rv}"})
    engine.dispose()


class ReadCountingStore(Store):
    """A real store that says when the follower has read its log."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.read = threading.Event()

    def read_log(self, after: int, *, limit: int) -> list[Event]:
        try:
            return super().read_log(after, limit=limit)
        finally:
            self.read.set()


def test_follower_waits_for_a_hole_to_fill_then_delivers_in_order(db, store):
    async def main() -> None:
        write(store, put("a"))
        reader = ReadCountingStore(db)
        sink = Recorder()
        follower = LogFollower(reader, sink, after=1, gap_wait=60, gap_retry=0.01)
        insert_event(db, 3)  # revision 2 is still "in flight"
        catching_up = asyncio.create_task(follower.catch_up())
        assert await asyncio.to_thread(reader.read.wait, 10)
        assert sink.rvs == []  # 3 waits for 2
        insert_event(db, 2)
        await asyncio.wait_for(catching_up, 10)
        reader.close()
        assert sink.rvs == [2, 3]

    asyncio.run(main())


def test_follower_skips_a_hole_that_never_fills(db, store):
    async def main() -> None:
        write(store, put("a"))
        insert_event(db, 3)
        sink = Recorder()
        follower = LogFollower(store, sink, after=1, gap_wait=0.05, gap_retry=0.01)
        await asyncio.wait_for(follower.catch_up(), 10)
        assert sink.rvs == [3]
        assert follower.delivered == 3

    asyncio.run(main())


def test_follower_behind_compaction_cuts_its_watchers_and_goes_on(store):
    async def main() -> None:
        for i in range(6):
            write(store, put(f"o{i}"))
        store.compact(2).result(10)
        sink = Recorder()
        follower = LogFollower(store, sink, after=1)
        await asyncio.wait_for(follower.catch_up(), 10)
        assert sink.skipped_to == 4
        assert sink.rvs == [5, 6]

    asyncio.run(main())
