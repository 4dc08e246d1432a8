"""Hearing other API servers' commits at once: PostgreSQL LISTEN on a thread of its own.

A writing transaction that logged events sends a NOTIFY (``Dialect.notify``, carrying
the sender's id); PostgreSQL delivers it to every listener when that transaction
commits. This thread waits for them on a dedicated connection and wakes the log
follower (``wake()``), which then reads the log by revision. A notification is only a
wake-up: one missed while the connection was down only delays events until the
follower's next poll, and after every (re)connect the follower is woken once anyway.
A server ignores its own notifications: its writer already nudged its follower.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.pool import NullPool

from apiserver.storage.dialects import Dialect

log = logging.getLogger(__name__)

# How often the thread looks up from waiting to see whether it should stop.
STOP_CHECK = 0.5
# Wait before reconnecting after the connection failed.
RECONNECT_WAIT = 1.0


class Listener:
    """LISTENs for other servers' commits; ``wake`` runs on this thread for each one."""

    def __init__(self, url: str, dialect: Dialect, me: str, wake: Callable[[], None]) -> None:
        assert dialect.listen is not None
        self._listen = dialect.listen
        self._me = me
        self._wake = wake
        self._engine = create_engine(url, poolclass=NullPool)
        event.listen(self._engine, "connect",
                     lambda dbapi_conn, _record: dialect.prepare_connection(dbapi_conn))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_CHECK * 4)
        self._engine.dispose()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen_once()
            except Exception as exc:  # noqa: BLE001 - the poll still finds every event
                log.warning("listening for other servers' commits failed (%s); retrying", exc)
                self._stopping.wait(RECONNECT_WAIT)

    def _listen_once(self) -> None:
        raw = self._engine.raw_connection()
        try:
            conn: Any = raw.driver_connection
            conn.execute(self._listen)
            self._wake()  # what committed while nobody listened
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=STOP_CHECK):
                    if note.payload != self._me:
                        self._wake()
        finally:
            with contextlib.suppress(Exception):
                raw.close()
