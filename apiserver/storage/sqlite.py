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
)
