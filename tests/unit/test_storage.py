"""The API server's storage on real databases: write path, log reads, log follower.

Every test runs on a SQLite file and, where the Debian ``postgresql`` package and
psycopg are installed, on a throwaway PostgreSQL server (``tests/postgres.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import orjson
import pytest
import sqlalchemy

from apiserver.errors import Gone, NotFound
from apiserver.storage.backend import Event, Txn
from apiserver.storage.follower import LogFollower, in_order
from apiserver.storage.sqlite import DIALECT as sqlite_dialect
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


# Every wait in this file has a deadline: a storage bug fails its test, never hangs the run.
WAIT = 30.0


async def landed(fut: Future) -> object:
    """The result of a submitted write, awaited on the event loop."""
    return await asyncio.wait_for(asyncio.wrap_future(fut), WAIT)


async def stopped(follower: LogFollower) -> None:
    await asyncio.wait_for(follower.stop(), WAIT)


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
    # (an empty call says "read the log": on PostgreSQL, another server may have written)
    store.on_commit(lambda events: heard.append([e.rv for e in events]) if events else None)
    write(store, put("a"))
    write(store, put("b"))
    write(store, put("a"), dry_run=True)
    assert heard == [[1], [2]]


def test_two_stores_on_one_database_take_revisions_in_turn(db, store):
    """Two API servers' stores on one database (issue #16): every write, from either,
    gets the next revision from the database; none collides, none is skipped."""
    other = Store(db)
    other.start()
    try:
        write(store, put("a"))
        assert write(other, put("b"))["metadata"]["resourceVersion"] == "2"
        futures = [(store if i % 2 else other).submit(put(f"o{i % 7}", value=i))
                   for i in range(200)]
        results = [f.result(120) for f in futures]
        rvs = sorted(int(r["metadata"]["resourceVersion"]) for r in results)
        assert rvs == list(range(3, 203))
        assert [e.rv for e in store.read_log(0, limit=1000)] == list(range(1, 203))
        # what is stored is, per object, the write with the highest revision, whichever
        # store made it (each write read the other's committed rows)
        last: dict[str, tuple[int, int]] = {}
        for r in results:
            name, rv = r["metadata"]["name"], int(r["metadata"]["resourceVersion"])
            last[name] = max(last.get(name, (0, 0)), (rv, r["v"]))
        page = other.list("things", None)
        assert page.revision == 202
        stored = {orjson.loads(i)["metadata"]["name"]: orjson.loads(i) for i in page.items}
        for name, (rv, value) in last.items():
            assert (int(stored[name]["metadata"]["resourceVersion"]), stored[name]["v"]) == \
                (rv, value)
    finally:
        other.close()


def test_compaction_on_one_store_is_not_undone_by_another(db, store):
    other = Store(db)
    other.start()
    try:
        for i in range(10):
            write(store, put(f"o{i}"))
        assert store.compact(2).result(10) == 8
        assert other.compact(5).result(10) == 8  # not back to 5: it reads the database's
        assert other.compacted() == 8 and other.compacted_revision == 8
        with pytest.raises(Gone):
            other.read_log(3, limit=10)
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
        await stopped(follower)
        assert sink.rvs == list(range(1, 21))

    asyncio.run(main())


def test_follower_stops_when_woken_just_before_it_is_cancelled(store):
    """A wake-up (another server's NOTIFY) that lands in the loop turn before ``stop``
    must not eat the cancellation: Python 3.11's ``asyncio.wait_for`` returns the
    inner result instead of raising when both are ready at once, and the follower then
    polled on forever while ``stop`` waited for it (a hung test run)."""
    async def main() -> None:
        follower = LogFollower(store, Recorder(), after=0, poll_interval=3600)
        follower.start()
        for _ in range(3):  # let it park in its wait for a wake-up
            await asyncio.sleep(0)
        follower.nudge(())  # handled next turn: the wake-up completes ...
        await asyncio.sleep(0)
        # ... in the same turn as this cancellation
        await stopped(follower)
        assert not follower.alive

    asyncio.run(main())


def test_follower_polls_writes_it_was_not_nudged_about(db, store):
    """Another process's writes reach this follower by reading the log."""
    async def main() -> None:
        sink = Recorder()
        reader = Store(db)  # never writes: it only follows the log
        follower = LogFollower(reader, sink, after=reader.revision, poll_interval=0.01)
        follower.start()
        for i in range(5):
            await landed(store.submit(put(f"o{i}")))
        await sink.until(lambda: len(sink.rvs) == 5)
        await stopped(follower)
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


# -- several servers on one database ------------------------------------------------------


def test_every_store_follows_both_stores_writes_in_order(db, store):
    """A follower per server: each delivers every write of both, in revision order,
    none missing or repeated."""
    async def main() -> None:
        other = Store(db)
        other.start()
        sinks = [Recorder(), Recorder()]
        followers = [LogFollower(s, sink, after=0, poll_interval=0.05)
                     for s, sink in zip((store, other), sinks, strict=True)]
        for follower in followers:
            follower.start()
        futures = [(store if i % 3 else other).submit(put(f"o{i % 11}")) for i in range(150)]
        for fut in futures:
            await landed(fut)
        for sink in sinks:
            await sink.until(lambda sink=sink: len(sink.rvs) >= 150, timeout=60)
        for follower in followers:
            await stopped(follower)
        other.close()
        assert sinks[0].rvs == sinks[1].rvs == list(range(1, 151))

    asyncio.run(main())


def test_another_servers_commit_wakes_the_follower_on_postgresql(postgresql_server):
    """LISTEN/NOTIFY: with polling off, another store's write still arrives at once."""
    db = postgres.create_database(postgresql_server, f"t{uuid.uuid4().hex[:12]}")

    async def main() -> None:
        writer, reader = Store(db), Store(db)
        writer.start()
        sink = Recorder()
        follower = LogFollower(reader, sink, after=0, poll_interval=3600)
        follower.start()
        try:
            for n in range(1, 4):
                await landed(writer.submit(put(f"o{n}")))
                await sink.until(lambda n=n: len(sink.rvs) == n, timeout=60)
            assert sink.rvs == [1, 2, 3]
        finally:
            await stopped(follower)
            reader.close()
            writer.close()

    asyncio.run(main())


def listening_backends(url: str) -> list[int]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()")]
    finally:
        engine.dispose()


def test_the_listener_listens_again_after_losing_its_connection(postgresql_server):
    db = postgres.create_database(postgresql_server, f"t{uuid.uuid4().hex[:12]}")

    async def main() -> None:
        writer, reader = Store(db), Store(db)
        writer.start()
        sink = Recorder()
        follower = LogFollower(reader, sink, after=0, poll_interval=3600)
        follower.start()
        try:
            await landed(writer.submit(put("a")))
            await sink.until(lambda: sink.rvs == [1], timeout=60)
            [lost] = listening_backends(db)
            engine = sqlalchemy.create_engine(db)
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({lost})")
            engine.dispose()
            async with asyncio.timeout(15):
                while (again := await asyncio.to_thread(listening_backends, db)) in ([], [lost]):
                    await asyncio.sleep(0.05)
            await landed(writer.submit(put("b")))
            await sink.until(lambda: sink.rvs == [1, 2], timeout=60)
            assert again != [lost]
        finally:
            await stopped(follower)
            reader.close()
            writer.close()

    asyncio.run(main())


def test_servers_starting_together_on_an_empty_database_make_one_schema(db):
    stores: list[Store] = []
    errors: list[BaseException] = []
    together = threading.Barrier(4, timeout=30)

    def open_one() -> None:
        try:
            together.wait()
            stores.append(Store(db))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(stores) == 4
        stores[0].start()
        assert write(stores[0], put("a"))["metadata"]["resourceVersion"] == "1"
    finally:
        for s in stores:
            s.close()


def open_together(path: Path, count: int) -> tuple[list[str], list[BaseException]]:
    """``count`` connections set up as the store's at the same moment on ``path``:
    the journal mode each then sees, and the errors."""
    together = threading.Barrier(count, timeout=30)
    modes: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            together.wait()
            sqlite_dialect.prepare_connection(conn)
            modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return modes, errors


def test_connections_opening_a_new_sqlite_file_together_all_get_wal(tmp_path):
    """Switching a new file to WAL upgrades a read lock to the write lock, which SQLite
    refuses at once (no busy handler) while another connection switches: each
    connection must wait that out, not fail with "database is locked"."""
    for attempt in range(20):  # one round failed about one time in four without the wait
        modes, errors = open_together(tmp_path / f"{attempt}.db", 4)
        assert errors == [] and modes == ["wal"] * 4, f"round {attempt}"
