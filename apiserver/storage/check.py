"""Opening storage at start, and ``mp-apiserver --check-storage``: one line, never a traceback.

``open_checked`` is what ``main`` runs before serving: for SQLite it first looks at
the files themselves (the directory, the database, its ``-wal`` and ``-shm``), so a
read-only one is named with its fix before SQLite opens it (SQLite would open a
read-only file read-only and create ``-wal``/``-shm`` with the file's own read-only
mode, which keep the next start read-only after the file is fixed); then it opens
the store and commits a probe. Any failure is ``StorageUnusable``: one line naming
the path and what to do.

``check_storage`` runs without serving: SQLite's ``PRAGMA integrity_check``, then
every object row (``rows.decode``) and every event row (valid JSON), then a summary.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from apiserver.storage import rows
from apiserver.storage.dialects import dialect_for
from apiserver.storage.health import driver_message
from apiserver.storage.store import Store

# The driver's words for a damaged SQLite file.
_DAMAGED = ("malformed", "not a database", "corrupt")
_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x10
RECOVERY = 'see README "Recovery"'


class StorageUnusable(Exception):
    """The database cannot serve: ``str()`` is the one line for stderr."""


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL; None for memory or another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def shown(url: str) -> str:
    """The URL as it may be printed (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def open_checked(url: str, *, probe_timeout: float = 30.0) -> Store:
    """The store, opened, scanned and taking writes (its writer started), or
    ``StorageUnusable``."""
    path = sqlite_path(url)
    if path is not None:
        _require_writable_files(path)
    try:
        store = Store(url)
    except Exception as exc:  # noqa: BLE001 - every driver error becomes the one line
        raise StorageUnusable(_describe(exc, url, path)) from None
    store.start()
    try:
        store.probe().result(timeout=probe_timeout)
    except Exception as exc:  # noqa: BLE001 - as above
        store.close()
        raise StorageUnusable(_describe(exc, url, path)) from None
    return store


def _require_writable_files(path: Path) -> None:
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        kind, fix = _why_not_writable(directory, "directory")
        raise StorageUnusable(f"cannot write the database's directory {directory} ({kind}; "
                              f"SQLite makes its -wal and -shm files there): {fix}")
    if path.exists() and not os.access(path, os.W_OK):
        kind, fix = _why_not_writable(path, "file")
        raise StorageUnusable(f"cannot write the database {path} ({kind}): {fix}")
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if side.exists() and not os.access(side, os.W_OK):
            kind, fix = _why_not_writable(side, "file")
            if kind.startswith("read-only file"):  # SQLite gave it the database's mode
                kind += ", likely left by a start on a read-only database"
            raise StorageUnusable(f"cannot write {side} ({kind}): {fix}")


def _why_not_writable(path: Path, what: str) -> tuple[str, str]:
    """(what is in the way, the fix) for a path this process may not write."""
    with contextlib.suppress(OSError):
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system", "remount it read-write or use another --storage-url"
    if _immutable(path):
        return f"immutable {what}", f"chattr -i {path}"
    owner = path.stat().st_uid
    if owner != os.geteuid():
        return (f"read-only {what} owned by uid {owner}",
                f"make it writable by this user (chown {os.geteuid()} {path})")
    return f"read-only {what}", f"make it writable by this user (chmod u+w {path})"


def _immutable(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0))
        return bool(struct.unpack("l", flags)[0] & _FS_IMMUTABLE_FL)
    except OSError:
        return False
    finally:
        os.close(fd)


def _describe(exc: BaseException, url: str, path: Path | None) -> str:
    """A driver error at start as the one line: damaged, unwritable, or as it came."""
    message = driver_message(exc)
    where = str(path) if path is not None else shown(url)
    if path is not None and any(word in message for word in _DAMAGED):
        return (f"the database {where} is damaged ({message}): run mp-apiserver "
                f"--check-storage --storage-url {shown(url)}; {RECOVERY}")
    return f"cannot use the database {where}: {message}"


# ------------------------------------------------------------------ --check-storage

def check_storage(url: str, say: Callable[[str], None] = print) -> int:
    """Check the database without serving; every finding on its own line. 0: sound."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        say(f"no database file at {path}")
        return 1
    problems = 0
    try:
        with _cursor(url, path) as cur:
            if path is not None:
                problems += _integrity(cur, say)
            problems += _object_rows(cur, url, say)
            problems += _event_rows(cur, say)
    except Exception as exc:  # noqa: BLE001 - a database too damaged to read is a finding
        say(f"cannot read the database: {driver_message(exc)}")
        problems += 1
    if problems:
        say(f"storage check failed: {problems} problem{'s' if problems != 1 else ''}; "
            f"{RECOVERY}")
        return 1
    say("storage check passed")
    return 0


@contextlib.contextmanager
def _cursor(url: str, path: Path | None) -> Iterator[Any]:
    """A read-only cursor: a check changes nothing (and creates no database)."""
    if path is not None:
        conn: Any = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    else:
        engine = create_engine(url)
        conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        yield cur
    finally:
        conn.close()


def _integrity(cur: Any, say: Callable[[str], None]) -> int:
    cur.execute("PRAGMA integrity_check")
    found = [r[0] for r in cur.fetchall()]
    if found == ["ok"]:
        say("integrity_check: ok")
        return 0
    for line in found:
        say(f"integrity_check: {line}")
    return len(found)


def _object_rows(cur: Any, url: str, say: Callable[[str], None]) -> int:
    cur.execute("SELECT count(*) FROM objects")
    total = cur.fetchone()[0]
    bad = list(rows.bad_objects(cur, dialect_for(url).suspect_objects))
    for key, why in bad:
        say(f"bad object row {rows.name(key)}: {why}")
    say(f"objects: {total} rows, {len(bad)} bad")
    return len(bad)


def _event_rows(cur: Any, say: Callable[[str], None]) -> int:
    cur.execute("SELECT rv, resource, namespace, name, data, prev FROM events")
    total = bad = 0
    while batch := cur.fetchmany(1000):
        for rv, resource, namespace, name, data, prev in batch:
            total += 1
            for column, text in (("data", data), ("prev", prev)):
                if text is None and column == "prev":
                    continue
                try:
                    orjson.loads(text)
                except (orjson.JSONDecodeError, TypeError) as exc:
                    bad += 1
                    say(f"bad event row {rv} ({rows.name((resource, namespace, name))}): "
                        f"{column} is not JSON ({exc})")
    say(f"events: {total} rows, {bad} bad")
    return bad
