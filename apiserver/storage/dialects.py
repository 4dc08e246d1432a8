"""What differs between databases, in one place per database (kine's ``Dialect``).

The storage code is written once against ``Dialect``; ``sqlite.py`` and
``postgresql.py`` each supply one instance: how a connection is set up, how the
writer and a read snapshot begin, the ``INSERT … ON CONFLICT`` construct, the
SQLAlchemy dialect that renders the statements of ``sql.py`` in the driver's
parameter style, and how driver errors map onto API errors. Adding a database
means one such module and one entry in ``dialect_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.engine import make_url

from apiserver.errors import APIError, Conflict, InternalError


@dataclass(frozen=True)
class Dialect:
    name: str
    # Renders statements in the driver's own parameter style (compiled once, at start).
    sql: SQLDialect
    # The dialect's INSERT, which has ``on_conflict_do_update`` (upserts).
    # sqlite's and postgresql's own ``insert`` (both have ``on_conflict_do_update``;
    # SQLAlchemy gives them no common type that says so)
    insert: Callable[[Any], Any]
    # Takes the write lock at once, so a batch never fails half-way on a busy database.
    begin_write: str
    # Starts a read transaction whose statements all see one committed snapshot.
    begin_read: str
    # Run on every new DB-API connection: transactions are begun explicitly.
    prepare_connection: Callable[[Any], None]
    # Pool sizes and driver arguments per engine.
    writer_engine_options: dict[str, Any] = field(default_factory=dict)
    reader_engine_options: dict[str, Any] = field(default_factory=dict)
    # Driver errors that mean "another writer got there first" (a retry may succeed).
    is_conflict: Callable[[BaseException], bool] = lambda _exc: False
    # (resource, namespace, name, data) of the object rows that may not be servable,
    # found by the database itself (``rows.problem`` confirms each); None: every row.
    suspect_objects: str | None = None
    # Taken in the transaction that creates the schema, before any table exists to
    # lock, so servers starting together on one empty database do not race on CREATE
    # TABLE (SQLite's BEGIN IMMEDIATE already does it).
    schema_lock: str | None = None
    # Sent in a write transaction that logged events: other servers on the database
    # hear of it at its COMMIT (``%(server)s`` is the sender); None: no such channel.
    notify: str | None = None
    # What a listening connection runs to hear ``notify`` (with ``notify``).
    listen: str | None = None

    def translate(self, exc: BaseException, what: str) -> APIError:
        """A driver error as the API error a client sees; ``what`` says which step failed."""
        if isinstance(exc, APIError):
            return exc
        if self.is_conflict(exc):
            return Conflict(f"{what} conflicted with a concurrent write, please retry: {exc}")
        return InternalError(f"{what}: {exc}")


def dialect_for(url: str) -> Dialect:
    """The dialect of a SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``)."""
    from apiserver.storage import postgresql, sqlite  # each imports its driver's error types

    by_backend = {"sqlite": sqlite.DIALECT, "postgresql": postgresql.DIALECT}
    backend = make_url(url).get_backend_name()
    try:
        return by_backend[backend]
    except KeyError:
        raise ValueError(f"unsupported storage backend {backend!r} "
                         f"(supported: {', '.join(sorted(by_backend))})") from None
