"""Tables: current objects, the append-only event log, and a little bookkeeping.

Every write appends one event and upserts (or removes) one object row in the same
transaction; the event's ``rv`` is the object's resourceVersion. The event keeps the
object's previous state too, so a watcher with a selector can tell an object that
left its selector, and a list can be served exactly as it was at an older revision.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

objects = Table(
    "objects",
    metadata,
    Column("resource", String(128), primary_key=True),  # plural[.group]
    Column("namespace", String(253), primary_key=True),  # "" when cluster-scoped
    Column("name", String(253), primary_key=True),
    Column("rv", Integer, nullable=False),
    Column("data", Text, nullable=False),
)
Index("objects_by_namespace", objects.c.namespace)

events = Table(
    "events",
    metadata,
    Column("rv", Integer, primary_key=True, autoincrement=False),
    Column("resource", String(128), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("type", String(16), nullable=False),  # ADDED | MODIFIED | DELETED
    Column("data", Text, nullable=False),
    Column("prev", Text, nullable=True),  # state before this event; NULL for ADDED
)
Index("events_by_resource", events.c.resource, events.c.rv)

# key/value integers: "revision" (last committed) and "compacted" (highest rv trimmed).
# The "revision" row is also the write lock every server takes first in its write
# transaction (``Statements.lock_revision``): revisions come from the database.
bookkeeping = Table(
    "bookkeeping",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)

# Values that only one object may hold at a time (a Service's ClusterIP, a NodePort),
# claimed in the write transaction of the object that takes them and dropped in the one
# that frees them: the primary key is what keeps two API servers from handing out one.
allocations = Table(
    "allocations",
    metadata,
    Column("kind", String(16), primary_key=True),  # ClusterIP | NodePort
    Column("value", String(64), primary_key=True),  # canonical text: "10.96.0.1", "30080"
    Column("owner", String(600), nullable=False),  # resource/namespace/name of the holder
)
