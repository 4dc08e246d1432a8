"""The storage interface the rest of the API server uses, and the values it passes.

``Backend`` names every call the handlers, the watch streams, the log follower and
the application make; nothing outside ``apiserver/storage`` touches SQL, a cursor or
a dialect. ``Txn`` is what a write closure may do inside the shared transaction.

The data flow (as kine's ``docs/flow.md`` draws it)::

    handler ──submit(fn)──▶ writer thread: BEGIN; SAVEPOINT per write; COMMIT
                                 │ appends one event per change to the log
                                 ▼ nudge (committed events, non-blocking)
    LogFollower (one per process) ──read_log(after N)──▶ the committed log
                                 │ in revision order, each event once
                                 ▼
    WatchHub ──bounded buffer per subscriber──▶ watch streams

A follower learns about writes only through ``read_log`` and ``on_commit``. Every
API server on one database runs its own follower: its own writes nudge it with their
events, another server's reach it through ``read_log`` (on PostgreSQL the listener
nudges it, without events, when another server commits; see ``store``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    from apiserver.storage.health import CommitHealth


@dataclass
class Event:
    """One committed change, as stored in the event log; ``rv`` is its revision."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    name: str
    data: str
    prev: str | None = None
    _obj: dict | None = field(default=None, repr=False)
    _prev_obj: dict | None = field(default=None, repr=False)
    # watch lines encoded from this event, shared by every watcher (apiserver.watch)
    lines: dict = field(default_factory=dict, repr=False, compare=False)

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


# Called on the writer thread right after a commit with that commit's events, in
# revision order; or with none, from another thread, when another server committed
# (read the log). It must not block: it hands the events on and returns.
CommitListener = Callable[[Sequence[Event]], None]


class Txn(Protocol):
    """What a write closure may do inside the shared transaction.

    Reads see earlier writes of the same batch, and every other server's committed
    writes (the transaction holds the write lock). ``claim`` takes a value only one
    object may hold (a ClusterIP), ``unclaim`` gives it back. A closure that raises is rolled
    back to its savepoint, with its ``on_rollback`` hooks run; ``after_commit``
    hooks run once the batch is durable.
    """

    def get(self, resource: str, namespace: str, name: str) -> dict | None: ...

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[dict]: ...

    def resources_in_namespace(self, namespace: str) -> builtins.list[tuple[str, str]]: ...

    def put(self, resource: str, namespace: str, name: str, obj: dict,
            prev: dict | None) -> dict: ...

    def remove(self, resource: str, namespace: str, name: str, obj: dict) -> dict: ...

    def claim(self, kind: str, value: str, owner: str) -> bool: ...

    def unclaim(self, kind: str, value: str, owner: str) -> None: ...

    def claimed(self, kind: str) -> builtins.list[tuple[str, str]]: ...

    def on_rollback(self, fn: Callable[[], None]) -> None: ...

    def after_commit(self, fn: Callable[[], None]) -> None: ...


class Backend(Protocol):
    """Objects, their committed event log, and one transactional write path.

    Reads run in their own snapshot and never wait for the writer. ``revision`` and
    ``compacted_revision`` are this process's view (what its writer last saw);
    ``compacted`` asks the database.
    """

    batches: int  # committed transactions (metrics)
    writes: int  # committed changes (metrics)
    on_batch_failure: Callable[[], None]  # a whole transaction failed: rebuild in-memory state
    health: CommitHealth  # can the database take a commit now (/readyz's storage check)

    @property
    def writer_alive(self) -> bool: ...  # the writer thread runs (/livez)

    @property
    def revision(self) -> int: ...

    @property
    def compacted_revision(self) -> int: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def submit(self, fn: Callable[[Txn], Any], *, dry_run: bool = False) -> Future: ...

    def get(self, resource: str, namespace: str, name: str) -> str | None: ...

    def list(self, resource: str, namespace: str | None, *, revision: int | None = None,
             after: tuple[str, str] | None = None, limit: int | None = None,
             keep: Callable[[dict], bool] | None = None) -> Page: ...

    def all_objects(self, resource: str) -> builtins.list[dict]: ...

    def events_after(self, revision: int, resource: str,
                     namespace: str | None = None) -> builtins.list[Event]: ...

    def read_log(self, after: int, *, limit: int) -> builtins.list[Event]: ...

    def on_commit(self, listener: CommitListener) -> None: ...

    def compacted(self) -> int: ...

    def compact(self, keep: int) -> Future: ...
