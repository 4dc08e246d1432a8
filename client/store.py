"""The informer's local cache: objects by key, plus secondary indexes.

An index is a function from an object to the values it should be found under
(``spec.nodeName`` → pods of a node, a Service name → its EndpointSlices); the
store keeps value → keys maps up to date on every write, so lookups never scan.

Objects handed out are the cached dicts themselves: treat them as read-only and
copy before changing (a mutated cached object would silently diverge from the
server). Writes come from one informer; a lock makes reads from other threads
(e.g. a socket helper thread) see whole updates, never half of one.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable
from typing import Any

from apimachinery.keys import object_key

IndexFunc = Callable[[dict[str, Any]], Iterable[str] | str | None]


class Store:
    """Objects keyed ``"ns/name"`` (or ``"name"``), with named indexes."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        # index name -> value -> keys of the objects with that value
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._lock = threading.RLock()
        self.resource_version = ""

    # -- indexes ---------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Register ``fn`` (object → value, values, or None) under ``name``; indexes
        what is already cached too, so it may be added at any time."""
        with self._lock:
            if name in self._index_funcs:
                raise ValueError(f"index {name!r} already exists")
            self._index_funcs[name] = fn
            self._indexes[name] = {}
            for key, obj in self._objects.items():
                self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> list[dict[str, Any]]:
        """Objects whose index ``name`` produced ``value``, sorted by key."""
        with self._lock:
            keys = self._index(name).get(value, ())
            return [self._objects[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        """Keys of the objects whose index ``name`` produced ``value``, sorted."""
        with self._lock:
            return sorted(self._index(name).get(value, ()))

    def index_values(self, name: str) -> list[str]:
        """Every value index ``name`` currently holds, sorted."""
        with self._lock:
            return sorted(self._index(name))

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(key)

    def list(self) -> list[dict[str, Any]]:
        """Every cached object, sorted by key."""
        with self._lock:
            return [self._objects[k] for k in sorted(self._objects)]

    def keys(self) -> builtins.list[str]:
        with self._lock:
            return sorted(self._objects)

    def items(self) -> dict[str, dict[str, Any]]:
        """A shallow copy of the key → object map (a snapshot to diff against)."""
        with self._lock:
            return dict(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    # -- writes ----------------------------------------------------------------------

    def upsert(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Add or replace ``obj``; return the object it replaced, if any."""
        key = object_key(obj)
        with self._lock:
            old = self._objects.get(key)
            if old is not None:
                self._unindex(key, old)
            self._objects[key] = obj
            self._index_all(key, obj)
            return old

    def delete(self, key: str) -> dict[str, Any] | None:
        """Remove the object under ``key``; return it, or None if it wasn't cached."""
        with self._lock:
            old = self._objects.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            return old

    def replace(self, items: Iterable[dict[str, Any]], resource_version: str) -> None:
        """Make the cache exactly ``items`` (a fresh list) at ``resource_version``."""
        objects = {object_key(obj): obj for obj in items}
        with self._lock:
            self._objects = objects
            self._indexes = {name: {} for name in self._index_funcs}
            for key, obj in objects.items():
                self._index_all(key, obj)
            self.resource_version = resource_version

    # -- internals -------------------------------------------------------------------

    def _index(self, name: str) -> dict[str, set[str]]:
        try:
            return self._indexes[name]
        except KeyError:
            raise KeyError(f"no index named {name!r}") from None

    def _values(self, name: str, obj: dict[str, Any]) -> builtins.list[str]:
        values = self._index_funcs[name](obj)
        if values is None:
            return []
        if isinstance(values, str):
            return [values]
        return list(values)

    def _index_one(self, name: str, key: str, obj: dict[str, Any]) -> None:
        index = self._indexes[name]
        for value in self._values(name, obj):
            index.setdefault(value, set()).add(key)

    def _index_all(self, key: str, obj: dict[str, Any]) -> None:
        for name in self._index_funcs:
            self._index_one(name, key, obj)

    def _unindex(self, key: str, obj: dict[str, Any]) -> None:
        for name in self._index_funcs:
            index = self._indexes[name]
            for value in self._values(name, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
