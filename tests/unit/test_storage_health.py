"""Storage that cannot commit, and rows that cannot be served, on SQLite and PostgreSQL.

Real databases (the fixtures of ``test_storage``): SQLite made unwritable with an
immutable file (root ignores file modes), PostgreSQL switched into read-only mode
(``default_transaction_read_only``, as a hot standby or a full disk's operator would).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from apiserver.storage.check import check_storage
from apiserver.storage.store import CorruptObject, Store
from tests.conftest import wait_until
from tests.unit.test_storage import db, postgresql_server, put, store, write  # noqa: F401


@contextlib.contextmanager
def read_only(url: str) -> Iterator[str]:
    """The database refuses writes until the block ends; yields the error's words."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        files = [parsed.database, f"{parsed.database}-wal"]
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", *files], capture_output=True, check=False).returncode:
            pytest.skip("cannot make files immutable here (chattr, CAP_LINUX_IMMUTABLE)")
        try:
            yield "disk I/O error"
        finally:
            subprocess.run(["chattr", "-i", *files], check=False)
        return
    engine = sqlalchemy.create_engine(parsed.set(database="postgres"),
                                      isolation_level="AUTOCOMMIT")

    def set_mode(on: bool) -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("ALTER SYSTEM SET default_transaction_read_only = "
                                 + ("on" if on else "off"))
            conn.exec_driver_sql("SELECT pg_reload_conf()")
    try:
        set_mode(True)
        yield "read-only transaction"
    finally:
        set_mode(False)
        engine.dispose()


def check(s: Store) -> str | None:
    return asyncio.run(s.health.check())


def test_storage_check_fails_while_the_database_takes_no_writes(db: str,  # noqa: F811
                                                                store: Store) -> None:  # noqa: F811
    assert check(store) is None
    with read_only(db) as words:
        why = wait_until(lambda: check(store), timeout=15, what="the check to fail")
        assert words in why
        with pytest.raises(Exception, match=words):
            write(store, put("a"))
        assert check(store) is not None
    wait_until(lambda: check(store) is None, timeout=15, what="the check to pass again")
    write(store, put("b"))


def _spoil(url: str, name: str, data: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE objects SET data = :d WHERE name = :n"),
                     {"d": data, "n": name})
    engine.dispose()


def test_a_bad_row_is_skipped_where_objects_are_read(db: str) -> None:  # noqa: F811
    s = Store(db)
    s.start()
    for name in ("a", "b", "c"):
        write(s, put(name))
    s.close()
    _spoil(db, "b", "{not json")
    _spoil(db, "c", '{"metadata": {"name": "other"}}')

    s = Store(db)
    s.start()
    try:
        assert set(s.bad) == {("things", "default", "b"), ("things", "default", "c")}
        assert s.bad["things", "default", "c"].startswith("metadata.name 'other'")
        assert [o["metadata"]["name"] for o in s.all_objects("things")] == ["a"]
        page = s.list("things", "default")
        assert len(page.items) == 1 and '"a"' in page.items[0]
        assert len(s.list("things", None, keep=lambda _o: True).items) == 1
        with pytest.raises(CorruptObject, match="things default/b cannot be read: not JSON"):
            s.get("things", "default", "b")
        with pytest.raises(CorruptObject, match="things default/b"):
            write(s, put("b"))  # an update reads it first
        write(s, put("d"))  # the rest writes
        lines: list[str] = []
        assert check_storage(db, lines.append) == 1
        assert "bad object row things default/b: not JSON" in "\n".join(lines)
        assert lines[-1].startswith("storage check failed: 2 problems")
    finally:
        s.close()


def test_check_storage_passes_a_sound_database(db: str, store: Store) -> None:  # noqa: F811
    write(store, put("a"))
    lines: list[str] = []
    assert check_storage(db, lines.append) == 0
    assert lines[-1] == "storage check passed"
    assert "objects: 1 rows, 0 bad" in lines


def test_check_storage_on_a_missing_file_makes_none(tmp_path: Path) -> None:
    lines: list[str] = []
    assert check_storage(f"sqlite:///{tmp_path}/no/state.db", lines.append) == 1
    assert lines == [f"no database file at {tmp_path}/no/state.db"]
    assert not (tmp_path / "no").exists()


def test_the_writer_reconnects_after_losing_its_postgresql_connection(
        postgresql_server: str) -> None:  # noqa: F811
    """A restarted PostgreSQL ends every session: writes fail once, then work again
    (the writer used to keep its dead connection and fail every write until restarted)."""
    from tests import postgres  # noqa: PLC0415

    url = postgres.create_database(postgresql_server, "reconnect")
    s = Store(url)
    s.start()
    try:
        write(s, put("a"))
        admin = sqlalchemy.create_engine(make_url(url).set(database="postgres"),
                                         isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            ended = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'reconnect' AND pid <> pg_backend_pid()").fetchall()
        admin.dispose()
        assert ended
        with contextlib.suppress(Exception):
            write(s, put("b"))  # may fail: it found the connection gone
        write(s, put("c"))
        assert check(s) is None
    finally:
        s.close()


def test_a_bad_event_row_is_left_out_of_log_reads(db: str, store: Store) -> None:  # noqa: F811
    for name in ("a", "b", "c"):
        write(store, put(name))
    engine = sqlalchemy.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE events SET data = '{x' WHERE rv = 2"))
    engine.dispose()
    assert [e.rv for e in store.read_log(0, limit=10)] == [1, 3]
    assert [e.rv for e in store.events_after(0, "things")] == [1, 3]
    lines: list[str] = []
    assert check_storage(db, lines.append) == 1
    assert any(line.startswith("bad event row 2 (things default/b): data is not JSON")
               for line in lines)
