"""PostgreSQL through psycopg 3 (``postgresql+psycopg://…``).

The driver is optional (``pip install '.[postgres]'``); nothing here imports it, so
SQLite-only installs work. Errors are recognised by SQLSTATE, which every psycopg
error carries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql

from apiserver.storage.dialects import Dialect

# unique_violation (two writers took one revision), serialization_failure,
# deadlock_detected: another transaction won; a retry may succeed.
_CONFLICT_STATES = frozenset({"23505", "40001", "40P01"})


# The channel other servers' commits are announced on (LISTEN/NOTIFY): a wake-up only,
# the log itself is read by revision, so a missed one just waits for the next poll.
CHANNEL = "mp_apiserver_log"
# pg_advisory_xact_lock's key for creating the schema ("mpsc"); any constant will do.
_SCHEMA_LOCK_KEY = 0x6D707363


def _prepare(conn: Any) -> None:
    # Autocommit at the driver, so BEGIN/COMMIT/ROLLBACK below are ours, as on SQLite.
    conn.autocommit = True


def _is_conflict(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _CONFLICT_STATES


DIALECT = Dialect(
    name="postgresql",
    sql=postgresql.psycopg.dialect(),  # renders %(name)s, psycopg's named style
    insert=postgresql.insert,
    begin_write="BEGIN",
    # REPEATABLE READ: every statement of a list sees the snapshot of its first one.
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ",
    prepare_connection=_prepare,
    is_conflict=_is_conflict,
    schema_lock=f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})",
    notify=f"SELECT pg_notify('{CHANNEL}', %(server)s)",
    listen=f"LISTEN {CHANNEL}",
)
