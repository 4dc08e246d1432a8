"""SQLite (WAL): one writer at a time, snapshot reads that never wait for it."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.dialects import sqlite

from apiserver.storage.dialects import Dialect


def _prepare(conn: Any) -> None:
    # Transactions are begun explicitly (BEGIN IMMEDIATE for the writer, a deferred
    # BEGIN for a read snapshot); WAL + synchronous=NORMAL survives a killed process.
    conn.isolation_level = None
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


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
