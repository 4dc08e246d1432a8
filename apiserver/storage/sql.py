"""Every statement the storage runs, written once as SQLAlchemy Core and compiled per dialect.

The hot paths run these strings on a DB-API cursor (the expression layer's per-call
overhead would cost more than SQLite itself), so each is compiled once, at start,
by the dialect's own compiler: it renders the driver's parameter style (``:name``
for sqlite3, ``%(name)s`` for psycopg) and the dialect's upsert. Parameters are
always passed as a dict of the ``bindparam`` names below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, func, literal_column, or_, select
from sqlalchemy.sql import ClauseElement, ColumnElement

from apiserver.storage.dialects import Dialect
from apiserver.storage.schema import allocations, bookkeeping, events, objects

_O = objects.c
_E = events.c
_EVENT_COLUMNS = (_E.rv, _E.type, _E.resource, _E.namespace, _E.name, _E.data, _E.prev)


def _by_key() -> ColumnElement[bool]:
    return and_(_O.resource == bindparam("resource"), _O.namespace == bindparam("namespace"),
                _O.name == bindparam("name"))


def _current(*, in_namespace: bool, after: bool) -> ClauseElement:
    """A collection now: (namespace, name, data) in key order, optionally past a key."""
    q = select(_O.namespace, _O.name, _O.data).where(_O.resource == bindparam("resource"))
    if in_namespace:
        q = q.where(_O.namespace == bindparam("namespace"))
    if after:
        q = q.where(or_(_O.namespace > bindparam("ans"),
                        and_(_O.namespace == bindparam("ans"), _O.name > bindparam("aname"))))
    return q.order_by(_O.namespace, _O.name)


def _unchanged_since(*, in_namespace: bool) -> ClauseElement:
    """Objects whose current row is no newer than revision ``rv``."""
    q = select(_O.namespace, _O.name, _O.data).where(_O.resource == bindparam("resource"),
                                                     _O.rv <= bindparam("rv"))
    if in_namespace:
        q = q.where(_O.namespace == bindparam("namespace"))
    return q.order_by(_O.namespace, _O.name)


def _changed_since(*, in_namespace: bool) -> ClauseElement:
    """Each later event's key and previous state, oldest first."""
    q = select(_E.namespace, _E.name, _E.prev).where(_E.resource == bindparam("resource"),
                                                     _E.rv > bindparam("rv"))
    if in_namespace:
        q = q.where(_E.namespace == bindparam("namespace"))
    return q.order_by(_E.rv)


def _events_of(*, in_namespace: bool) -> ClauseElement:
    q = select(*_EVENT_COLUMNS).where(_E.rv > bindparam("rv"),
                                      _E.resource == bindparam("resource"))
    if in_namespace:
        q = q.where(_E.namespace == bindparam("namespace"))
    return q.order_by(_E.rv)


@dataclass(frozen=True)
class Statements:
    """SQL text for one dialect. Pairs are indexed by ``bool``: ``[namespace is not None]``."""

    get: str
    list_all: str
    list_ns: str
    in_namespace: str
    upsert: str
    delete: str
    append: str
    set_meta: str
    all_meta: str
    max_event_rv: str
    max_object_rv: str
    compact: str
    current: dict[tuple[bool, bool], str]  # (in a namespace, after a key)
    unchanged_since: tuple[str, str]
    changed_since: tuple[str, str]
    events_of: tuple[str, str]  # one resource's events after rv
    log_after: str  # every event after rv, ``limit`` from ``offset``: what a follower reads
    # adds one to a bookkeeping key (0 when new): a write no client sees, and never a
    # no-op (SQLite writes nothing for an update to the same value)
    bump_meta: str
    # the write lock: the "revision" row, locked until COMMIT (FOR UPDATE; SQLite's
    # BEGIN IMMEDIATE already holds the database's only write lock)
    lock_revision: str
    # adds a bookkeeping key with a value unless it is there already
    init_meta: str
    # takes (kind, value) for owner (again, if owner's already); no row changed:
    # someone else holds it
    claim: str
    # gives (kind, value) back, only if owner holds it
    unclaim: str
    # (value, owner) of every value of a kind claimed now
    claimed: str

    @classmethod
    def compile(cls, dialect: Dialect) -> Statements:
        def text(stmt: ClauseElement) -> str:
            return str(stmt.compile(dialect=dialect.sql))

        def pair(build: Callable[..., ClauseElement]) -> tuple[str, str]:
            return text(build(in_namespace=False)), text(build(in_namespace=True))

        upsert = dialect.insert(objects).values(
            resource=bindparam("resource"), namespace=bindparam("namespace"),
            name=bindparam("name"), rv=bindparam("rv"), data=bindparam("data"))
        upsert = upsert.on_conflict_do_update(
            index_elements=[_O.resource, _O.namespace, _O.name],
            set_={"rv": upsert.excluded.rv, "data": upsert.excluded.data})
        set_meta = dialect.insert(bookkeeping).values(key=bindparam("key"),
                                                      value=bindparam("value"))
        set_meta = set_meta.on_conflict_do_update(index_elements=[bookkeeping.c.key],
                                                  set_={"value": set_meta.excluded.value})
        bump_meta = dialect.insert(bookkeeping).values(key=bindparam("key"),
                                                       value=literal_column("0"))
        bump_meta = bump_meta.on_conflict_do_update(
            index_elements=[bookkeeping.c.key],
            set_={"value": bookkeeping.c.value + literal_column("1")})
        init_meta = dialect.insert(bookkeeping).values(key=bindparam("key"),
                                                       value=bindparam("value"))
        init_meta = init_meta.on_conflict_do_nothing(index_elements=[bookkeeping.c.key])
        _A = allocations.c
        claim = dialect.insert(allocations).values(
            kind=bindparam("kind"), value=bindparam("value"), owner=bindparam("owner"))
        claim = claim.on_conflict_do_update(index_elements=[_A.kind, _A.value],
                                            set_={"owner": claim.excluded.owner},
                                            where=_A.owner == claim.excluded.owner)
        append = events.insert().values(
            rv=bindparam("rv"), resource=bindparam("resource"), namespace=bindparam("namespace"),
            name=bindparam("name"), type=bindparam("type"), data=bindparam("data"),
            prev=bindparam("prev"))
        return cls(
            get=text(select(_O.data).where(_by_key())),
            list_all=text(select(_O.data).where(_O.resource == bindparam("resource"))
                          .order_by(_O.namespace, _O.name)),
            list_ns=text(select(_O.data).where(_O.resource == bindparam("resource"),
                                               _O.namespace == bindparam("namespace"))
                         .order_by(_O.name)),
            in_namespace=text(select(_O.resource, _O.name)
                              .where(_O.namespace == bindparam("namespace"))),
            upsert=text(upsert),
            delete=text(delete(objects).where(_by_key())),
            append=text(append),
            set_meta=text(set_meta),
            all_meta=text(select(bookkeeping.c.key, bookkeeping.c.value)),
            max_event_rv=text(select(func.max(_E.rv))),
            max_object_rv=text(select(func.max(_O.rv))),
            compact=text(delete(events).where(_E.rv <= bindparam("rv"))),
            current={(ns, after): text(_current(in_namespace=ns, after=after))
                     for ns in (False, True) for after in (False, True)},
            unchanged_since=pair(_unchanged_since),
            changed_since=pair(_changed_since),
            events_of=pair(_events_of),
            log_after=text(select(*_EVENT_COLUMNS).where(_E.rv > bindparam("rv"))
                           .order_by(_E.rv).limit(bindparam("limit"))
                           .offset(bindparam("offset"))),  # SQLite's LIMIT wants one
            bump_meta=text(bump_meta),
            lock_revision=text(select(bookkeeping.c.value)
                               .where(bookkeeping.c.key == literal_column("'revision'"))
                               .with_for_update()),
            init_meta=text(init_meta),
            claim=text(claim),
            unclaim=text(delete(allocations).where(
                _A.kind == bindparam("kind"), _A.value == bindparam("value"),
                _A.owner == bindparam("owner"))),
            claimed=text(select(_A.value, _A.owner).where(_A.kind == bindparam("kind"))),
        )
