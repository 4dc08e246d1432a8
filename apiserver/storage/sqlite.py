"""SQLite (WAL): one writer at a time, snapshot reads that never wait for it."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy.dialects import sqlite

from apiserver.storage.dialects import Dialect

# How long a statement waits for another connection's lock before "database is locked".
BUSY_TIMEOUT = 30.0
# Between attempts to switch a new database to WAL while another connection does.
_WAL_RETRY = 0.01


def _prepare(conn: Any) -> None:
    # Transactions are begun explicitly (BEGIN IMMEDIATE for the writer, a deferred
    # BEGIN for a read snapshot); WAL + synchronous=NORMAL survives a killed process.
    conn.isolation_level = None
    cur = conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    _enter_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _enter_wal(cur: Any) -> None:
    """Put the database in WAL mode, waiting out another connection doing the same.

    On a new (rollback-journal) database the switch reads the header and then takes
    the write lock; SQLite refuses that upgrade from a held read lock at once, without
    the busy handler (it could deadlock), so servers opening one empty file together
    got "database is locked" whatever busy_timeout says. The other connection's switch
    is over in moments, after which this one finds WAL and changes nothing."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.fetchall()
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY)


# JSON1 finds the few rows worth decoding in Python; CASE keeps json_extract away
# from text that is not JSON (SQLite does not promise to short-circuit OR).
_SUSPECT_OBJECTS = """
SELECT resource, namespace, name, data FROM objects
WHERE CASE WHEN json_valid(data) THEN
    json_type(data) <> 'object'
    OR json_extract(data, '$.metadata.name') IS NOT name
    OR coalesce(json_extract(data, '$.metadata.namespace'), namespace) <> namespace
  ELSE 1 END
"""


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.IntegrityError)


DIALECT = Dialect(
    name="sqlite",
    sql=sqlite.dialect(paramstyle="named"),  # sqlite3 takes :name with a dict
    insert=sqlite.insert,
    begin_write="BEGIN IMMEDIATE",
    begin_read="BEGIN",  # deferred: in WAL mode, a snapshot taken at the first read
    prepare_connection=_prepare,
    writer_engine_options={"connect_args": {"check_same_thread": False}},
    reader_engine_options={"connect_args": {"check_same_thread": False}},
    is_conflict=_is_conflict,
    suspect_objects=_SUSPECT_OBJECTS,
)
