"""Stored rows that cannot be served: one judgement for start-up, lists and ``--check-storage``.

Every row this server writes is an object encoded by ``orjson`` under its own key. A
row that is not (a hand edit, a bad restore, a damaged page that still reads) must not
stop the server: it is skipped wherever objects are read, with a log line naming it,
and ``mp-apiserver --check-storage`` lists it. ``problem`` is the judgement; a dialect
may give SQL that finds the candidates faster (``Dialect.suspect_objects``), and
``problem`` confirms each one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (resource, namespace, name)
Cursor = Any  # a DB-API cursor

ALL_OBJECTS = "SELECT resource, namespace, name, data FROM objects"


class Unservable(ValueError):
    """A stored row that is not the object its key names; ``str()`` says why."""


def decode(key: Key, data: Any) -> dict:
    """The object stored under ``key``; ``Unservable`` if the row is not it."""
    _resource, namespace, name = key
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise Unservable(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Unservable("not a JSON object")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise Unservable("has no metadata")
    if meta.get("name") != name:
        raise Unservable(f"metadata.name {meta.get('name')!r} does not match its key {name!r}")
    if meta.get("namespace", namespace) != namespace:  # absent: the key's (cluster-scoped)
        raise Unservable(f"metadata.namespace {meta.get('namespace')!r} does not match its "
                         f"key {namespace!r}")
    return obj


def problem(key: Key, data: Any) -> str | None:
    """What is wrong with a stored object row, or None when it can be served."""
    try:
        decode(key, data)
    except Unservable as exc:
        return str(exc)
    return None


def name(key: Key) -> str:
    """``resource namespace/name`` (or ``resource name``) for log lines and reports."""
    resource, namespace, obj_name = key
    return f"{resource} {namespace}/{obj_name}" if namespace else f"{resource} {obj_name}"


def bad_objects(cur: Cursor, suspect_sql: str | None) -> Iterator[tuple[Key, str]]:
    """Every object row that cannot be served, with why; ``suspect_sql`` narrows the scan."""
    cur.execute(suspect_sql or ALL_OBJECTS)
    while batch := cur.fetchmany(1000):
        for resource, namespace, obj_name, data in batch:
            key = (resource, namespace, obj_name)
            why = problem(key, data)
            if why is not None:
                yield key, why


def skipped(key: Key, why: str) -> None:
    """The one log line for a row left out of what the server serves."""
    log.warning("skipping the stored object %s: %s (run mp-apiserver --check-storage; "
                "see README \"Recovery\")", name(key), why)
