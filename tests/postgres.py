"""A throwaway PostgreSQL server for tests: Debian's binaries in a temp dir.

It runs as the ``postgres`` user (the server refuses root), listens only on a Unix
socket in its private directory (no TCP port to race for), trusts local
connections, and is stopped by its pid. ``skip_reason`` says why it cannot run here, or None.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

USER = "postgres"


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


def skip_reason() -> str | None:
    if _bin_dir() is None:
        return "PostgreSQL binaries missing (Debian package `postgresql`)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg missing (pip install 'psycopg[binary]')"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no {USER!r} user to run the server as"
    if os.geteuid() != 0:
        return "starting a server as the postgres user needs root"
    return None


# The server listens on a Unix socket in its own temp dir, never on a TCP port, so two
# runs can't race for a port; the number only names the socket file.
SOCKET_PORT = 5432


@contextmanager
def server(*, timeout: float = 30.0) -> Iterator[str]:
    """Start a server; yields an admin URL (``postgresql+psycopg://postgres@/postgres?host=…``)."""
    import psycopg

    bindir = _bin_dir()
    assert bindir is not None
    pw = pwd.getpwnam(USER)
    root = tempfile.mkdtemp(prefix="mp-pg-")
    os.chown(root, pw.pw_uid, pw.pw_gid)
    data = os.path.join(root, "data")
    as_postgres = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": root}
    proc: subprocess.Popen | None = None
    try:
        subprocess.run([f"{bindir}/initdb", "-D", data, "-U", USER, "--auth=trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True,
                       **as_postgres)  # type: ignore[call-overload]
        with open(os.path.join(root, "log"), "wb") as server_log:  # the child keeps its copy
            proc = subprocess.Popen(
                [f"{bindir}/postgres", "-D", data, "-p", str(SOCKET_PORT), "-h", "",
                 "-k", root, "-c", "fsync=off", "-c", "max_connections=200"],
                stdout=subprocess.DEVNULL, stderr=server_log,
                **as_postgres)  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(host=root, port=SOCKET_PORT, user=USER, dbname="postgres",
                                connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(root, "log")) as f:
                        raise RuntimeError(f"postgres did not start: {f.read()[-2000:]}") from None
                time.sleep(0.05)
        yield f"postgresql+psycopg://{USER}@/postgres?host={root}&port={SOCKET_PORT}"
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
    import psycopg

    url = make_url(admin_url)
    with psycopg.connect(host=url.query["host"], port=url.query["port"], user=url.username,
                         dbname=url.database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)
