"""A throwaway PostgreSQL server for tests (``componentbase.postgres``, as ``mpctl
cluster up --storage postgresql`` makes one) in a temp dir, without fsync, stopped by
its pid. ``skip_reason`` says why it cannot run here, or None.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from componentbase import postgres


def skip_reason() -> str | None:
    return postgres.unavailable()


@contextmanager
def server(*, timeout: float = 30.0) -> Iterator[str]:
    """Start a server; yields an admin URL (``postgresql+psycopg://postgres@/postgres?host=…``)."""
    root = Path(tempfile.mkdtemp(prefix="mp-pg-"))
    proc: subprocess.Popen | None = None
    try:
        postgres.prepare(root)
        with open(root / "log", "wb") as server_log:  # the child keeps its copy
            proc = subprocess.Popen(postgres.server_argv(root, durable=False),
                                    stdout=subprocess.DEVNULL, stderr=server_log,
                                    **postgres.as_postgres(root))  # type: ignore[call-overload]
        try:
            postgres.wait_ready(root, lambda: proc is not None and proc.poll() is None,
                                timeout)
        except postgres.PostgresError as exc:
            raise RuntimeError(f"{exc}: {(root / 'log').read_text()[-2000:]}") from None
        yield postgres.url(root)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: end sessions, then exit
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def create_database(admin_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    return postgres.create_database(Path(make_url(admin_url).query["host"]), name)
