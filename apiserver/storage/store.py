"""Durable storage: one writer thread with group commit, and snapshot reads.

Writes are closures that run on the single writer thread. The thread takes every
write waiting in its queue, runs each in its own SAVEPOINT inside one transaction,
and commits once (group commit): a rejected write rolls back to its savepoint and
changes nothing, while its neighbours still land. Only after the commit are the
commit listeners nudged with the batch's events and the callers answered, so an
acknowledged write is durable and every event a follower sees is committed.

Reads run on any thread in their own read transaction, a consistent snapshot that
never waits for the writer (SQLite in WAL mode; REPEATABLE READ on PostgreSQL).

Several API servers on one database (issue #16) share it through three things:

- **Revisions come from the database.** Every write transaction first locks the
  one ``revision`` row of ``bookkeeping`` (``SELECT … FOR UPDATE`` on PostgreSQL;
  SQLite's ``BEGIN IMMEDIATE`` already holds its only write lock), reads the
  revision there, numbers its events after it and writes the new value back before
  COMMIT. The lock is held to COMMIT, so transactions commit in revision order and
  the log has no holes: a follower reading "after N" never passes a revision that
  commits later. Why not kine's ``events.id`` sequence: sequence values are drawn
  before commit, so transactions commit out of order and a follower must wait on
  and fill holes (kine writes filler rows after a timeout), and a hole skipped too
  early is an event lost to every watcher. The row lock serialises writers, which
  costs one indexed read per *batch* (group commit puts up to ``MAX_BATCH`` writes
  behind one lock), and every server's reads and watches stay lock-free. It also
  makes each batch see every committed object, so checks inside a write (exists?
  resourceVersion matches?) hold across servers exactly as with one.
- **Allocations are claimed in the transaction** (``WriteTxn.claim``): a row per
  held ClusterIP or NodePort, unique on (kind, value). The in-memory allocators are
  only a hint for picking a candidate (``apiserver/services.py``).
- **Every server follows the log** (``follower.LogFollower``): its own writes
  nudge it; another server's reach it through its poll, woken early on
  PostgreSQL by a NOTIFY the writing transaction sends.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from apiserver.decoding import check_object_size
from apiserver.errors import APIError, InternalError
from apiserver.storage import log as eventlog
from apiserver.storage import rows
from apiserver.storage.backend import CommitListener, Event, Page, Txn
from apiserver.storage.dialects import Dialect, dialect_for
from apiserver.storage.health import CommitHealth, driver_message
from apiserver.storage.notify import Listener
from apiserver.storage.schema import metadata
from apiserver.storage.sql import Statements

__all__ = ["MAX_BATCH", "Event", "Page", "Store", "Txn", "WriteTxn"]

Cursor = Any  # a DB-API cursor (sqlite3 or psycopg)

log = logging.getLogger(__name__)

# How many queued writes share one transaction. Large enough to amortise the commit
# under load, small enough that one batch never holds the write lock for long.
MAX_BATCH = 256


class CorruptObject(InternalError):
    """A stored row under the asked key cannot be decoded as its object (``rows.problem``)."""

    def __init__(self, key: rows.Key, why: str) -> None:
        super().__init__(f"the stored object {rows.name(key)} cannot be read: {why} "
                         f"(run mp-apiserver --check-storage)")


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class WriteTxn:
    """The ``Txn`` a write closure gets: statements on the writer's cursor."""

    def __init__(self, cur: Cursor, store: Store) -> None:
        self._cur = cur
        self._store = store
        self._sql = store._sql
        self.events: list[Event] = []
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self._start_revision = store._revision

    # -- reads inside the transaction (they see earlier writes of the same batch) --

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        self._cur.execute(self._sql.get, {"resource": resource, "namespace": namespace,
                                          "name": name})
        row = self._cur.fetchone()
        return _decoded((resource, namespace, name), row[0]) if row else None

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[dict]:
        self._cur.execute(self._sql.current[namespace is not None, False],
                          {"resource": resource, "namespace": namespace})
        return _servable(resource, self._cur.fetchall(), self._store.bad)

    def resources_in_namespace(self, namespace: str) -> builtins.list[tuple[str, str]]:
        """(resource, name) of every object stored in ``namespace``."""
        self._cur.execute(self._sql.in_namespace, {"namespace": namespace})
        return [(r[0], r[1]) for r in self._cur.fetchall()]

    # -- writes --

    def put(self, resource: str, namespace: str, name: str, obj: dict, prev: dict | None) -> dict:
        """Store ``obj`` at the next revision (ADDED when ``prev`` is None, else MODIFIED)."""
        rv = self._next_revision()
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        encoded = orjson.dumps(obj)
        prev_encoded = orjson.dumps(prev) if prev is not None else b""
        # nothing larger is stored, however it was written
        check_object_size(len(encoded), len(prev_encoded))
        data = encoded.decode()
        prev_data = prev_encoded.decode() if prev is not None else None
        self._cur.execute(self._sql.upsert, {"resource": resource, "namespace": namespace,
                                             "name": name, "rv": rv, "data": data})
        kind = "ADDED" if prev is None else "MODIFIED"
        self._append(Event(rv, kind, resource, namespace, name, data, prev_data, obj, prev))
        return obj

    def remove(self, resource: str, namespace: str, name: str, obj: dict) -> dict:
        """Delete the object; the DELETED event carries its last state at the new revision."""
        prev_data = dumps(obj)
        rv = self._next_revision()
        final = {**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(rv)}}
        data = dumps(final)
        self._cur.execute(self._sql.delete, {"resource": resource, "namespace": namespace,
                                             "name": name})
        self._append(Event(rv, "DELETED", resource, namespace, name, data, prev_data, final, obj))
        return final

    def claim(self, kind: str, value: str, owner: str) -> bool:
        """Take ``value`` of ``kind`` for ``owner``; False when someone else holds it.

        Rolled back with the write; the unique key decides between servers. A claim
        ``owner`` already has is granted again (its object was removed behind the
        server's back, as README "Recovery" does, and is being made anew)."""
        self._cur.execute(self._sql.claim, {"kind": kind, "value": value, "owner": owner})
        return bool(self._cur.rowcount)

    def unclaim(self, kind: str, value: str, owner: str) -> None:
        """Give ``value`` back, if ``owner`` holds it (freed when this write commits)."""
        self._cur.execute(self._sql.unclaim, {"kind": kind, "value": value, "owner": owner})

    def claimed(self, kind: str) -> builtins.list[tuple[str, str]]:
        """(value, owner) of every value of ``kind`` held now (by any server)."""
        self._cur.execute(self._sql.claimed, {"kind": kind})
        return [(r[0], r[1]) for r in self._cur.fetchall()]

    def on_rollback(self, fn: Callable[[], None]) -> None:
        """Undo an in-memory side effect (an allocation) if this write is rolled back."""
        self._undo.append(fn)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run once the write is durable (e.g. release an IP only when the delete landed)."""
        self._after.append(fn)

    def _next_revision(self) -> int:
        self._store._revision += 1
        return self._store._revision

    def _append(self, ev: Event) -> None:
        self._cur.execute(self._sql.append, {
            "rv": ev.rv, "resource": ev.resource, "namespace": ev.namespace, "name": ev.name,
            "type": ev.type, "data": ev.data, "prev": ev.prev})
        self.events.append(ev)

    def _rollback(self) -> None:
        self._store._revision = self._start_revision
        for fn in reversed(self._undo):
            fn()
        self.events.clear()
        self._after.clear()


@dataclass
class _Write:
    fn: Callable[[WriteTxn], Any]
    future: Future
    dry_run: bool = False
    probe: bool = False  # commits even though it changes nothing a client sees


def _make_engine(url: str, dialect: Dialect, *, writer: bool) -> Engine:
    size = {"pool_size": 1, "max_overflow": 0} if writer else {"pool_size": 8, "max_overflow": 32}
    options = dialect.writer_engine_options if writer else dialect.reader_engine_options
    engine = create_engine(url, **size, **options)
    event.listen(engine, "connect", lambda dbapi_conn, _record: dialect.prepare_connection(
        dbapi_conn))
    return engine


class Store:
    """Objects and their event log behind one writer thread: the ``Backend`` in use.

    SQLAlchemy owns the engines, pools and schema; the hot paths run the statements
    of ``sql.Statements`` on the DB-API cursor of a pooled connection.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._dialect = dialect_for(url)
        self._sql = Statements.compile(self._dialect)
        self._writer_engine = _make_engine(url, self._dialect, writer=True)
        self._read_engine = _make_engine(url, self._dialect, writer=False)
        self.server_id = uuid.uuid4().hex  # tells this server's NOTIFYs from others'
        self._revision = self._create_schema()
        with self._snapshot() as cur:
            self._compacted = eventlog.bookkeeping(cur, self._sql)["compacted"]
            # rows no read may serve, found once at start (every later row is ours)
            self.bad: dict[rows.Key, str] = dict(
                rows.bad_objects(cur, self._dialect.suspect_objects))
        for key, why in self.bad.items():
            rows.skipped(key, why)
        self.health = CommitHealth(self.probe, alive=lambda: self.writer_alive)
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._listeners: list[CommitListener] = []
        self._listener: Listener | None = None  # other servers' commits (PostgreSQL)
        self.on_batch_failure: Callable[[], None] = lambda: None
        self.batches = 0
        self.writes = 0

    def _create_schema(self) -> int:
        """Create missing tables and the revision row (the write lock); returns the revision.

        One transaction under the write lock (and, on PostgreSQL, a lock of its own
        before any table exists), so servers starting together on an empty database
        make the schema once."""
        with self._writer_engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute(self._dialect.begin_write)
            try:
                if self._dialect.schema_lock is not None:
                    cur.execute(self._dialect.schema_lock)
                metadata.create_all(conn)
                cur.execute(self._sql.lock_revision)
                row = cur.fetchone()
                revision = eventlog.head(cur, self._sql)
                if row is None:
                    cur.execute(self._sql.init_meta, {"key": "revision", "value": revision})
                elif row[0] < revision:  # an older server's database: trust its log
                    cur.execute(self._sql.set_meta, {"key": "revision", "value": revision})
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return revision

    # -- lifecycle --

    def start(self) -> None:
        """Start the writer thread (once: ``main`` may have started it to probe)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run_writer, name="store-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._writer_engine.dispose()
        self._read_engine.dispose()

    @property
    def writer_alive(self) -> bool:
        """The writer thread runs: without it no write is ever answered."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def revision(self) -> int:
        """Last revision this server's writer saw committed (may lead delivered events,
        and lag another server's writes until this one writes again)."""
        return self._revision

    @property
    def compacted_revision(self) -> int:
        """Highest revision trimmed from the log, as this process last compacted or loaded it."""
        return self._compacted

    def on_commit(self, listener: CommitListener) -> None:
        """Call ``listener`` on the writer thread with each commit's events (a nudge);
        and, where the database can tell (PostgreSQL), with none when another server
        committed."""
        self._listeners.append(listener)
        if self._dialect.listen is not None and self._listener is None:
            self._listener = Listener(self.url, self._dialect, self.server_id,
                                      self._others_committed)
            self._listener.start()

    def _others_committed(self) -> None:
        for listener in self._listeners:
            try:
                listener(())
            except Exception:  # noqa: BLE001 - a listener must not stop the listening
                log.exception("commit listener failed")

    # -- writes --

    def submit(self, fn: Callable[[Txn], Any], *, dry_run: bool = False) -> Future:
        """Queue a write; the future resolves after commit with ``fn``'s result or error.

        With ``dry_run`` the write runs in full and is then rolled back.
        """
        fut: Future = Future()
        self._queue.put(_Write(fn, fut, dry_run))
        return fut

    def probe(self) -> Future:
        """Commit one bookkeeping row no client sees: does the database take writes now?"""
        def touch(txn: WriteTxn) -> None:
            txn._cur.execute(self._sql.bump_meta, {"key": "probes"})

        fut: Future = Future()
        self._queue.put(_Write(touch, fut, probe=True))
        return fut

    def _run_writer(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                conn = self._write_with(conn, batch)
                if stop:
                    return
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _survive(self, batch: list[_Write], exc: Exception) -> None:
        """A bug escaped a batch: log it, answer its writes 500, rebuild in-memory state (it
        may be half undone); the caller drops the connection, so the next batch starts
        clean. Serve on rather than die: the revision is right on every path out of
        ``_commit_batch`` (put back before a failure is handled), a dead writer would
        leave every later write hanging until its own 504, and ``/readyz`` shows this
        failure until a commit works."""
        log.error("the storage writer failed on a batch of %d writes; going on",
                  len(batch), exc_info=exc)
        self.health.record(f"storage writer error: {type(exc).__name__}: {exc}")
        err = InternalError("storage writer error")
        for write in batch:
            _answer(write.future, None, err)
        self._rebuild()

    def _write_with(self, conn: Connection | None, batch: list[_Write]) -> Connection | None:
        """Commit ``batch`` on ``conn`` (connecting first if None); returns the connection
        for the next batch, None when it was lost (a restarted PostgreSQL), so the writer
        reconnects instead of failing every later write."""
        if conn is None:
            try:
                conn = self._writer_engine.connect()
            except Exception as exc:  # noqa: BLE001 - every write gets an answer
                self._fail_batch(batch, exc, [], [])
                return None
        try:
            self._commit_batch(conn.connection.driver_connection.cursor(),  # type: ignore[union-attr]
                               batch)
        except Exception as exc:  # noqa: BLE001 - the writer must outlive any batch
            self._survive(batch, exc)
            lost = True  # in whatever state the bug left it
        else:
            lost = getattr(conn.connection.driver_connection, "closed", False)  # psycopg's flag
            if lost:
                log.warning("lost the database connection; the next write reconnects")
        if lost:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()
            return None
        return conn

    def _commit_batch(self, cur: Cursor, batch: list[_Write]) -> None:
        start = self._revision  # until the lock below tells the database's
        outcomes: list[tuple[_Write, Any, BaseException | None]] = []
        events: list[Event] = []
        after: list[Callable[[], None]] = []
        done: list[WriteTxn] = []
        ran: list[WriteTxn] = []
        try:
            cur.execute(self._dialect.begin_write)
            try:
                # the write lock: revisions go on from the database's, whoever wrote last
                cur.execute(self._sql.lock_revision)
                row = cur.fetchone()
                if row is not None:
                    self._revision = start = row[0]
                for write in batch:
                    # A caller may give up on its write (a 504, a shutdown); from here on
                    # it can't, so a write either runs and is answered or never runs.
                    if not write.future.set_running_or_notify_cancel():
                        continue
                    txn = WriteTxn(cur, self)
                    ran.append(txn)
                    cur.execute("SAVEPOINT w")
                    try:
                        result = write.fn(txn)
                    except BaseException as exc:  # noqa: BLE001 - every write gets an answer
                        cur.execute("ROLLBACK TO SAVEPOINT w")
                        cur.execute("RELEASE SAVEPOINT w")
                        txn._rollback()
                        if write.probe:  # e.g. PostgreSQL in read-only mode fails here
                            self.health.record(f"{type(exc).__name__}: {driver_message(exc)}")
                        elif not isinstance(exc, APIError):
                            log.exception("write failed")
                        outcomes.append((write, None,
                                         self._dialect.translate(exc, "internal error")))
                        continue
                    if write.dry_run:
                        cur.execute("ROLLBACK TO SAVEPOINT w")
                        txn._rollback()
                    else:
                        events.extend(txn.events)
                        after.extend(txn._after)
                        done.append(txn)
                    cur.execute("RELEASE SAVEPOINT w")
                    outcomes.append((write, result, None))
                if self._revision != start:
                    cur.execute(self._sql.set_meta, {"key": "revision", "value": self._revision})
                    if self._dialect.notify is not None:  # heard by the others at COMMIT
                        cur.execute(self._dialect.notify, {"server": self.server_id})
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
        except Exception as exc:  # the whole transaction failed (disk full, I/O error)
            self._revision = start
            self._fail_batch(batch, exc, done, ran)
            return
        self.batches += 1
        self.writes += len(events)
        if events or any(w.probe and err is None for w, _, err in outcomes):
            # (an empty COMMIT proves nothing)
            self.health.record(None)
        for fn in after:
            try:
                fn()
            except Exception:  # noqa: BLE001 - bookkeeping must not fail a committed write
                log.exception("after-commit hook failed")
        if events:
            for listener in self._listeners:
                try:
                    listener(events)
                except Exception:  # noqa: BLE001 - a listener must not fail a committed write
                    log.exception("commit listener failed")
        for write, result, error in outcomes:
            _answer(write.future, result, error)

    def _fail_batch(self, batch: list[_Write], exc: Exception, done: list[WriteTxn],
                    ran: list[WriteTxn]) -> None:
        """The whole transaction failed: undo its side effects, answer every write.

        ``ran``: the writes whose closures ran. Only one that took an allocation (it
        registered an undo) calls for the rebuild, a full read that a batch of health
        probes or a connection that never opened must not cost."""
        if not self._dialect.is_conflict(exc):
            self.health.record(f"{type(exc).__name__}: {driver_message(exc)}")
        if not all(w.probe for w in batch):  # a failed probe is health's to log
            log.warning("commit of %d writes failed: %s", len(batch), driver_message(exc))
        for txn in reversed(done):
            txn._rollback()
        if any(txn._undo for txn in ran):
            self._rebuild()
        err = self._dialect.translate(exc, "storage error")
        for write in batch:
            _answer(write.future, None, err)

    def _rebuild(self) -> None:
        try:
            self.on_batch_failure()
        except Exception:  # noqa: BLE001 - the writes still get their answer
            log.exception("could not rebuild in-memory state after a failed commit")

    # -- reads --

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Cursor]:
        """A read transaction: every statement in it sees the same committed state."""
        with self._read_engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute(self._dialect.begin_read)
            try:
                yield cur
            finally:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                cur.close()

    def get(self, resource: str, namespace: str, name: str) -> str | None:
        with self._snapshot() as cur:
            cur.execute(self._sql.get, {"resource": resource, "namespace": namespace,
                                        "name": name})
            row = cur.fetchone()
        if row is None:
            return None
        why = self.bad.get((resource, namespace, name))
        if why is not None:
            raise CorruptObject((resource, namespace, name), why)
        return row[0]

    def list(
        self,
        resource: str,
        namespace: str | None,
        *,
        revision: int | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        keep: Callable[[dict], bool] | None = None,
    ) -> Page:
        """Items of a collection, in (namespace, name) order.

        ``revision`` None reads the current state; an older revision is rebuilt from
        the event log (410 Gone when it has been compacted). ``after`` continues past
        a key; ``keep`` filters parsed objects; ``limit`` bounds the page.
        """
        with self._snapshot() as cur:
            meta = eventlog.bookkeeping(cur, self._sql)
            current = meta["revision"]
            if revision is None or revision >= current:
                found = eventlog.current_rows(cur, self._sql, resource, namespace, after)
                return _page(self._unless_bad(resource, found), current, limit, keep)
            eventlog.require_retained(revision, meta["compacted"])
            found = eventlog.rows_at(cur, self._sql, resource, namespace, after, revision)
            return _page(self._unless_bad(resource, found), revision, limit, keep)

    def _unless_bad(self, resource: str, found: Iterator[tuple[str, str, str]]
                    ) -> Iterator[tuple[str, str, str]]:
        """Rows of a list minus the known-bad ones (free while there are none)."""
        if not self.bad:
            return found
        return (r for r in found if (resource, r[0], r[1]) not in self.bad)

    def all_objects(self, resource: str) -> builtins.list[dict]:
        """Every stored object of a resource (start-up rebuilds of allocators)."""
        with self._snapshot() as cur:
            cur.execute(self._sql.current[False, False], {"resource": resource})
            return _servable(resource, cur.fetchall(), self.bad)

    # -- the log --

    def events_after(self, revision: int, resource: str,
                     namespace: str | None = None) -> builtins.list[Event]:
        """Logged events of one collection after ``revision``; 410 Gone if compacted away."""
        with self._snapshot() as cur:
            return eventlog.events_after(cur, self._sql, revision, resource, namespace)

    def read_log(self, after: int, *, limit: int) -> builtins.list[Event]:
        """Up to ``limit`` committed events of every resource after ``after`` (a follower's poll)."""
        with self._snapshot() as cur:
            return eventlog.read_after(cur, self._sql, after, limit)

    def compacted(self) -> int:
        """The compacted revision as the database has it now."""
        with self._snapshot() as cur:
            return eventlog.bookkeeping(cur, self._sql)["compacted"]

    def compact(self, keep: int) -> Future:
        """Trim the event log to the newest ``keep`` revisions (runs on the writer).

        The future resolves to the compacted revision after the trim.
        """

        def trim(txn: WriteTxn) -> int:
            # under the write lock: another server may have compacted meanwhile
            compacted = eventlog.bookkeeping(txn._cur, self._sql)["compacted"]
            target = self._revision - keep
            if target > compacted:
                eventlog.trim(txn._cur, self._sql, target)
            done = max(target, compacted)

            def moved() -> None:
                self._compacted = done

            txn.after_commit(moved)
            return done

        return self.submit(trim)  # type: ignore[arg-type]


def _answer(future: Future, result: Any, error: BaseException | None) -> None:
    """Resolve a write's future unless it already is (cancelled before it ran, or
    answered): an answer nobody waits for must never stop the writer."""
    with contextlib.suppress(InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _decoded(key: rows.Key, data: str) -> dict:
    """A stored object as a dict; ``CorruptObject`` (500, naming it) if it is not one."""
    try:
        return rows.decode(key, data)
    except rows.Unservable as exc:
        raise CorruptObject(key, str(exc)) from None


def _servable(resource: str, found: Iterable[tuple[str, str, str]],
              known_bad: dict[rows.Key, str]) -> builtins.list[dict]:
    """Rows ``(namespace, name, data)`` of one resource as objects; a bad one is skipped
    (with a log line naming it unless logged at start), so one row cannot stop a
    start-up or a rebuild."""
    out: builtins.list[dict] = []
    for namespace, name, data in found:
        if (resource, namespace, name) in known_bad:
            continue
        try:
            out.append(rows.decode((resource, namespace, name), data))
        except rows.Unservable as exc:
            rows.skipped((resource, namespace, name), str(exc))
    return out


def _page(found: Iterator[tuple[str, str, str]], revision: int, limit: int | None,
          keep: Callable[[dict], bool] | None) -> Page:
    items: list[str] = []
    last: tuple[str, str] | None = None
    for ns, name, data in found:
        if limit is not None and len(items) >= limit:
            return Page(revision, items, last)
        if keep is not None and not keep(orjson.loads(data)):
            continue
        items.append(data)
        last = (ns, name)
    return Page(revision, items, None)
