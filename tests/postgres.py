"""A throwaway PostgreSQL server for tests (``componentbase.postgres``, as ``mpctl
cluster up --storage postgresql`` makes one) without fsync. ``skip_reason`` says why
it cannot run here, or None.
"""

from __future__ import annotations

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
    with postgres.running(durable=False, timeout=timeout) as root:
        yield postgres.url(root)


def create_database(admin_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    return postgres.create_database(Path(make_url(admin_url).query["host"]), name)
