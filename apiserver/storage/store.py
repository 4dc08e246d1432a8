"""Durable storage: one writer thread with group commit, and snapshot reads.

Writes are closures that run on the single writer thread. The thread takes every
write waiting in its queue, runs each in its own SAVEPOINT inside one transaction,
and commits once (group commit): a rejected write rolls back to its savepoint and
changes nothing, while its neighbours still land. Only after the commit are the
callers answered and the events handed to ``on_commit`` (the watch hub), so an
acknowledged write is durable and every published event is committed.

Reads run on any thread in their own read transaction, which in SQLite's WAL mode
is a consistent snapshot that never waits for the writer.

The global revision is kept in memory by the writer (it is the only writer) and
persisted in the ``bookkeeping`` table in the same transaction as the events.
Running several API servers on one PostgreSQL database needs the revision taken
from the database instead; that is noted in the README as not done yet.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from apiserver.errors import APIError, Gone, InternalError
from apiserver.storage.schema import metadata

Cursor = Any  # a DB-API cursor (sqlite3 or psycopg)

log = logging.getLogger(__name__)

# How many queued writes share one transaction. Large enough to amortise the commit
# under load, small enough that one batch never holds the write lock for long.
MAX_BATCH = 256


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


@dataclass
class Event:
    """One committed change, as stored in the event log."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    name: str
    data: str
    prev: str | None = None
    _obj: dict | None = field(default=None, repr=False)
    _prev_obj: dict | None = field(default=None, repr=False)

    @property
    def obj(self) -> dict:
        if self._obj is None:
            self._obj = orjson.loads(self.data)
        return self._obj

    @property
    def prev_obj(self) -> dict | None:
        if self.prev is None:
            return None
        if self._prev_obj is None:
            self._prev_obj = orjson.loads(self.prev)
        return self._prev_obj


@dataclass
class Page:
    """A list read: the revision it reflects, the items as JSON text, and where to go on."""

    revision: int
    items: list[str]
    next_key: tuple[str, str] | None  # (namespace, name) of the last item when more remain


class Txn:
    """What a write closure may do inside the shared transaction."""

    def __init__(self, cur: Cursor, store: Store) -> None:
        self._cur = cur
        self._store = store
        self.events: list[Event] = []
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self._start_revision = store._revision

    def _exec(self, name: str, params: dict[str, Any] | None = None) -> Cursor:
        self._cur.execute(self._store._sql[name], params or {})
        return self._cur

    # -- reads inside the transaction (they see earlier writes of the same batch) --

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        row = self._exec("get", {"resource": resource, "namespace": namespace,
                                 "name": name}).fetchone()
        return orjson.loads(row[0]) if row else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            rows = self._exec("list_all", {"resource": resource}).fetchall()
        else:
            rows = self._exec("list_ns", {"resource": resource, "namespace": namespace}).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def resources_in_namespace(self, namespace: str) -> builtins.list[tuple[str, str]]:
        """(resource, name) of every object stored in ``namespace``."""
        return [(r[0], r[1]) for r in self._exec("in_namespace", {"namespace": namespace})]

    # -- writes --

    def put(self, resource: str, namespace: str, name: str, obj: dict, prev: dict | None) -> dict:
        """Store ``obj`` at the next revision (ADDED when ``prev`` is None, else MODIFIED)."""
        rv = self._next_revision()
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        data = dumps(obj)
        prev_data = dumps(prev) if prev is not None else None
        self._exec("upsert", {"resource": resource, "namespace": namespace, "name": name,
                              "rv": rv, "data": data})
        kind = "ADDED" if prev is None else "MODIFIED"
        self._append(Event(rv, kind, resource, namespace, name, data, prev_data, obj, prev))
        return obj

    def remove(self, resource: str, namespace: str, name: str, obj: dict) -> dict:
        """Delete the object; the DELETED event carries its last state at the new revision."""
        prev_data = dumps(obj)
        rv = self._next_revision()
        final = {**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(rv)}}
        data = dumps(final)
        self._exec("delete", {"resource": resource, "namespace": namespace, "name": name})
        self._append(Event(rv, "DELETED", resource, namespace, name, data, prev_data, final, obj))
        return final

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
        self._exec("append", {"rv": ev.rv, "resource": ev.resource, "namespace": ev.namespace,
                              "name": ev.name, "type": ev.type, "data": ev.data,
                              "prev": ev.prev})
        self.events.append(ev)

    def _rollback(self) -> None:
        self._store._revision = self._start_revision
        for fn in reversed(self._undo):
            fn()
        self.events.clear()
        self._after.clear()


@dataclass
class _Write:
    fn: Callable[[Txn], Any]
    future: Future
    dry_run: bool = False


_SQL_TEXT = {
    "get": "SELECT data FROM objects WHERE resource=:resource AND namespace=:namespace "
           "AND name=:name",
    "list_all": "SELECT data FROM objects WHERE resource=:resource ORDER BY namespace, name",
    "list_ns": "SELECT data FROM objects WHERE resource=:resource AND namespace=:namespace "
               "ORDER BY name",
    "in_namespace": "SELECT resource, name FROM objects WHERE namespace=:namespace",
    "upsert": "INSERT INTO objects (resource, namespace, name, rv, data) "
              "VALUES (:resource, :namespace, :name, :rv, :data) "
              "ON CONFLICT (resource, namespace, name) DO UPDATE "
              "SET rv=excluded.rv, data=excluded.data",
    "delete": "DELETE FROM objects WHERE resource=:resource AND namespace=:namespace "
              "AND name=:name",
    "append": "INSERT INTO events (rv, resource, namespace, name, type, data, prev) "
              "VALUES (:rv, :resource, :namespace, :name, :type, :data, :prev)",
    "set": "INSERT INTO bookkeeping (key, value) VALUES (:key, :value) "
           "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
    "get_all_meta": "SELECT key, value FROM bookkeeping",
    "max_rv": "SELECT MAX(rv) FROM events",
    "max_obj_rv": "SELECT MAX(rv) FROM objects",
    "compact": "DELETE FROM events WHERE rv <= :rv",
}


def _adapt(sql: str, dialect: str) -> str:
    """Named parameters: sqlite3 takes ``:name``; psycopg takes ``%(name)s``."""
    if dialect == "sqlite":
        return sql
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


def _make_engine(url: str, *, writer: bool) -> Engine:
    size = {"pool_size": 1, "max_overflow": 0} if writer else {"pool_size": 8, "max_overflow": 32}
    if not url.startswith("sqlite"):
        return create_engine(url, **size)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **size)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Transactions are begun explicitly (BEGIN IMMEDIATE for the writer, a deferred
        # BEGIN for a read snapshot); WAL + synchronous=NORMAL survives a killed process.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


class Store:
    """Objects and their event log behind one writer thread.

    SQLAlchemy owns the engines, pools and schema; the hot paths run their few
    statements on the DB-API cursor of a pooled connection, because the per-call
    overhead of the expression layer would otherwise cost more than SQLite itself.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._writer_engine = _make_engine(url, writer=True)
        self._read_engine = _make_engine(url, writer=False)
        self._dialect = self._writer_engine.dialect.name
        self._sql = {k: _adapt(v, self._dialect) for k, v in _SQL_TEXT.items()}
        self._begin_write = "BEGIN IMMEDIATE" if self._dialect == "sqlite" else "BEGIN"
        metadata.create_all(self._writer_engine)
        self._revision, self._compacted = self._load_bookkeeping()
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.on_commit: Callable[[list[Event]], object] = lambda events: None
        self.on_batch_failure: Callable[[], None] = lambda: None
        self.batches = 0
        self.writes = 0

    # -- lifecycle --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_writer, name="store-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._writer_engine.dispose()
        self._read_engine.dispose()

    @property
    def revision(self) -> int:
        """Last committed revision as seen by the writer (may lead published events)."""
        return self._revision

    # -- writes --

    def submit(self, fn: Callable[[Txn], Any], *, dry_run: bool = False) -> Future:
        """Queue a write; the future resolves after commit with ``fn``'s result or error.

        With ``dry_run`` the write runs in full and is then rolled back.
        """
        fut: Future = Future()
        self._queue.put(_Write(fn, fut, dry_run))
        return fut

    def _run_writer(self) -> None:
        with self._writer_engine.connect() as conn:
            raw = conn.connection.driver_connection
            if self._dialect != "sqlite":
                raw.autocommit = True  # type: ignore[union-attr]
            cur = raw.cursor()  # type: ignore[union-attr]
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
                self._commit_batch(cur, batch)
                if stop:
                    return

    def _commit_batch(self, cur: Cursor, batch: list[_Write]) -> None:
        start = self._revision
        outcomes: list[tuple[_Write, Any, BaseException | None]] = []
        events: list[Event] = []
        after: list[Callable[[], None]] = []
        done: list[Txn] = []
        try:
            cur.execute(self._begin_write)
            try:
                for write in batch:
                    txn = Txn(cur, self)
                    cur.execute("SAVEPOINT w")
                    try:
                        result = write.fn(txn)
                    except BaseException as exc:  # noqa: BLE001 - every write gets an answer
                        cur.execute("ROLLBACK TO SAVEPOINT w")
                        cur.execute("RELEASE SAVEPOINT w")
                        txn._rollback()
                        if not isinstance(exc, APIError):
                            log.exception("write failed")
                            exc = InternalError(f"internal error: {exc}")
                        outcomes.append((write, None, exc))
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
                    cur.execute(self._sql["set"], {"key": "revision", "value": self._revision})
                cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
        except Exception as exc:  # the whole transaction failed (disk full, I/O error)
            log.exception("commit of %d writes failed", len(batch))
            self._revision = start
            for txn in reversed(done):
                txn._rollback()
            self.on_batch_failure()
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(InternalError(f"storage error: {exc}"))
            return
        self.batches += 1
        self.writes += len(events)
        for fn in after:
            try:
                fn()
            except Exception:  # noqa: BLE001 - bookkeeping must not fail a committed write
                log.exception("after-commit hook failed")
        if events:
            self.on_commit(events)
        for write, result, error in outcomes:
            if error is not None:
                write.future.set_exception(error)
            else:
                write.future.set_result(result)

    # -- reads --

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Cursor]:
        """A read transaction: every statement in it sees the same committed state."""
        with self._read_engine.connect() as conn:
            raw = conn.connection.driver_connection
            cur = raw.cursor()  # type: ignore[union-attr]
            if self._dialect == "sqlite":
                cur.execute("BEGIN")
            else:
                raw.autocommit = False  # type: ignore[union-attr]
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            try:
                yield cur
            finally:
                with contextlib.suppress(Exception):
                    if self._dialect == "sqlite":
                        cur.execute("ROLLBACK")
                    else:
                        raw.rollback()  # type: ignore[union-attr]
                cur.close()

    def _load_bookkeeping(self) -> tuple[int, int]:
        with self._snapshot() as cur:
            values = self._fetch_meta(cur)
            cur.execute(self._sql["max_rv"])
            max_event = cur.fetchone()[0] or 0
            cur.execute(self._sql["max_obj_rv"])
            max_obj = cur.fetchone()[0] or 0
        revision = max(values.get("revision", 0), max_event, max_obj)
        return revision, values.get("compacted", 0)

    def _fetch_meta(self, cur: Cursor) -> dict[str, int]:
        cur.execute(self._sql["get_all_meta"])
        return dict(cur.fetchall())

    def get(self, resource: str, namespace: str, name: str) -> str | None:
        with self._snapshot() as cur:
            cur.execute(self._sql["get"], {"resource": resource, "namespace": namespace,
                                           "name": name})
            row = cur.fetchone()
        return row[0] if row else None

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
            meta = self._fetch_meta(cur)
            current, compacted = meta.get("revision", 0), meta.get("compacted", 0)
            if revision is None or revision >= current:
                rows = self._current_rows(cur, resource, namespace, after)
                at = current
            else:
                if revision < compacted:
                    raise Gone(f"too old resource version: {revision} ({compacted + 1})")
                rows = self._rows_at(cur, resource, namespace, after, revision)
                at = revision
            return _page(rows, at, limit, keep)

    def _current_rows(self, cur: Cursor, resource: str, namespace: str | None,
                      after: tuple[str, str] | None) -> Iterator[tuple[str, str, str]]:
        sql = "SELECT namespace, name, data FROM objects WHERE resource=:resource"
        params: dict[str, Any] = {"resource": resource}
        if namespace is not None:
            sql += " AND namespace=:namespace"
            params["namespace"] = namespace
        if after is not None:
            sql += " AND (namespace > :ans OR (namespace = :ans AND name > :aname))"
            params["ans"], params["aname"] = after
        sql += " ORDER BY namespace, name"
        cur.execute(_adapt(sql, self._dialect), params)
        while batch := cur.fetchmany(1000):
            yield from batch

    def _rows_at(self, cur: Cursor, resource: str, namespace: str | None,
                 after: tuple[str, str] | None, revision: int) -> Iterator[tuple[str, str, str]]:
        """The collection as it was at ``revision``.

        Rows untouched since then are current; for a key changed later, its state at
        ``revision`` is the ``prev`` of its first later event (None: it did not exist).
        """
        sql = ("SELECT namespace, name, data FROM objects WHERE resource=:resource "
               "AND rv <= :rv")
        esql = ("SELECT namespace, name, prev FROM events WHERE resource=:resource "
                "AND rv > :rv")
        params: dict[str, Any] = {"resource": resource, "rv": revision}
        if namespace is not None:
            sql += " AND namespace=:namespace"
            esql += " AND namespace=:namespace"
            params["namespace"] = namespace
        sql += " ORDER BY namespace, name"
        esql += " ORDER BY rv"
        earliest: dict[tuple[str, str], str | None] = {}
        cur.execute(_adapt(esql, self._dialect), params)
        for ns, name, prev in cur.fetchall():
            earliest.setdefault((ns, name), prev)
        changed = sorted((k[0], k[1], v) for k, v in earliest.items() if v is not None)
        cur.execute(_adapt(sql, self._dialect), params)
        untouched = [row for row in cur.fetchall() if (row[0], row[1]) not in earliest]
        for row in heapq.merge(untouched, changed):
            if after is None or (row[0], row[1]) > after:
                yield row

    def events_after(self, revision: int, resource: str,
                     namespace: str | None = None) -> builtins.list[Event]:
        """Logged events after ``revision``; 410 Gone if some were compacted away."""
        with self._snapshot() as cur:
            compacted = self._fetch_meta(cur).get("compacted", 0)
            if revision < compacted:
                raise Gone(f"too old resource version: {revision} ({compacted + 1})")
            sql = ("SELECT rv, type, resource, namespace, name, data, prev FROM events "
                   "WHERE rv > :rv AND resource=:resource")
            params: dict[str, Any] = {"rv": revision, "resource": resource}
            if namespace is not None:
                sql += " AND namespace=:namespace"
                params["namespace"] = namespace
            sql += " ORDER BY rv"
            cur.execute(_adapt(sql, self._dialect), params)
            return [Event(*row) for row in cur.fetchall()]

    def compacted(self) -> int:
        with self._snapshot() as cur:
            return self._fetch_meta(cur).get("compacted", 0)

    def compact(self, keep: int) -> Future:
        """Trim the event log to the newest ``keep`` revisions (runs on the writer)."""

        def trim(txn: Txn) -> int:
            target = self._revision - keep
            if target <= self._compacted:
                return self._compacted
            txn._exec("compact", {"rv": target})
            txn._exec("set", {"key": "compacted", "value": target})

            def moved() -> None:
                self._compacted = target

            txn.after_commit(moved)
            return target

        return self.submit(trim)

    def all_objects(self, resource: str) -> builtins.list[dict]:
        """Every stored object of a resource (start-up rebuilds of allocators)."""
        with self._snapshot() as cur:
            cur.execute(self._sql["list_all"], {"resource": resource})
            return [orjson.loads(r[0]) for r in cur.fetchall()]


def _page(rows: Iterable[tuple[str, str, str]], revision: int, limit: int | None,
          keep: Callable[[dict], bool] | None) -> Page:
    items: list[str] = []
    last: tuple[str, str] | None = None
    for ns, name, data in rows:
        if limit is not None and len(items) >= limit:
            return Page(revision, items, last)
        if keep is not None and not keep(orjson.loads(data)):
            continue
        items.append(data)
        last = (ns, name)
    return Page(revision, items, None)
