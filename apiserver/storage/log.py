"""Reading the committed event log: after a revision, as of a revision, and trimming it.

Every function takes a cursor inside a transaction the caller opened (a read
snapshot, or the writer's transaction for ``trim``), so a caller that needs two
reads to agree runs them in one snapshot. A revision at or before the compacted
one can no longer be replayed: that is 410 Gone, and the client relists.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from apiserver.errors import Gone
from apiserver.storage.backend import Event
from apiserver.storage.sql import Statements

Cursor = Any  # a DB-API cursor (sqlite3 or psycopg)
Row = tuple[str, str, str]  # (namespace, name, data)

log = logging.getLogger(__name__)


def bookkeeping(cur: Cursor, sql: Statements) -> dict[str, int]:
    """``revision`` (last committed) and ``compacted`` (highest trimmed), 0 when unset."""
    cur.execute(sql.all_meta)
    values = dict(cur.fetchall())
    return {"revision": values.get("revision", 0), "compacted": values.get("compacted", 0)}


def head(cur: Cursor, sql: Statements) -> int:
    """The newest revision anywhere in the database (bookkeeping, log or objects)."""
    cur.execute(sql.max_event_rv)
    max_event = cur.fetchone()[0] or 0
    cur.execute(sql.max_object_rv)
    max_object = cur.fetchone()[0] or 0
    return max(bookkeeping(cur, sql)["revision"], max_event, max_object)


def require_retained(revision: int, compacted: int) -> None:
    """410 Gone when events after ``revision`` were compacted away."""
    if revision < compacted:
        raise Gone(f"too old resource version: {revision} ({compacted + 1})")


def events_after(cur: Cursor, sql: Statements, revision: int, resource: str,
                 namespace: str | None) -> list[Event]:
    """One collection's events after ``revision``, oldest first (a watch's replay)."""
    require_retained(revision, bookkeeping(cur, sql)["compacted"])
    params: dict[str, Any] = {"rv": revision, "resource": resource, "namespace": namespace}
    cur.execute(sql.events_of[namespace is not None], params)
    return _readable(cur.fetchall())


def read_after(cur: Cursor, sql: Statements, revision: int, limit: int) -> list[Event]:
    """Up to ``limit`` events of every resource after ``revision``, in revision order.

    This is what a log follower polls. Revisions need not be contiguous in what it
    returns: a hole is a transaction that has not committed yet or never will, and
    the follower decides how long to wait for it.
    """
    require_retained(revision, bookkeeping(cur, sql)["compacted"])
    cur.execute(sql.log_after, {"rv": revision, "limit": limit, "offset": 0})
    return _readable(cur.fetchall())


def _readable(found: Iterable[tuple]) -> list[Event]:
    """Events whose object (and previous object) decode; a bad row is left out with a
    log line, so one cannot wedge the follower or a watch (a follower skips the hole
    it leaves after its gap wait)."""
    out: list[Event] = []
    for row in found:
        ev = Event(*row)
        try:
            _ = ev.obj, ev.prev_obj
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("skipping the logged event at revision %d (%s %s/%s): not JSON (%s) "
                        "(run mp-apiserver --check-storage)", ev.rv, ev.resource,
                        ev.namespace, ev.name, exc)
            continue
        out.append(ev)
    return out


def current_rows(cur: Cursor, sql: Statements, resource: str, namespace: str | None,
                 after: tuple[str, str] | None) -> Iterator[Row]:
    """A collection as it is now, in key order, past ``after``; fetched in slices."""
    params: dict[str, Any] = {"resource": resource, "namespace": namespace}
    if after is not None:
        params["ans"], params["aname"] = after
    cur.execute(sql.current[namespace is not None, after is not None], params)
    while batch := cur.fetchmany(1000):
        yield from batch


def rows_at(cur: Cursor, sql: Statements, resource: str, namespace: str | None,
            after: tuple[str, str] | None, revision: int) -> Iterator[Row]:
    """The collection as it was at ``revision``, in key order, past ``after``.

    Rows untouched since then are current; for a key changed later, its state at
    ``revision`` is the ``prev`` of its first later event (None: it did not exist).
    """
    params: dict[str, Any] = {"resource": resource, "rv": revision, "namespace": namespace}
    earliest: dict[tuple[str, str], str | None] = {}
    cur.execute(sql.changed_since[namespace is not None], params)
    for ns, name, prev in cur.fetchall():
        earliest.setdefault((ns, name), prev)
    changed = sorted((k[0], k[1], v) for k, v in earliest.items() if v is not None)
    cur.execute(sql.unchanged_since[namespace is not None], params)
    untouched = [row for row in cur.fetchall() if (row[0], row[1]) not in earliest]
    for row in heapq.merge(untouched, changed):
        if after is None or (row[0], row[1]) > after:
            yield row


def trim(cur: Cursor, sql: Statements, target: int) -> None:
    """Drop events up to ``target`` and record it, inside the writer's transaction."""
    cur.execute(sql.compact, {"rv": target})
    cur.execute(sql.set_meta, {"key": "compacted", "value": target})
