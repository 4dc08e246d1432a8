"""A private PostgreSQL server from Debian's binaries: for ``mpctl cluster up --storage
postgresql`` and the test suite's throwaway servers.

PostgreSQL refuses to run as root, so the server runs as the ``postgres`` user the
Debian package creates. It listens only on a Unix socket in a directory of its own
(no TCP port to race for, nothing reachable from outside the machine) and trusts
local connections: whoever can open that directory is the database's superuser, so
the directory is the ``postgres`` user's alone (mode 0700) and the clients are root.
The caller starts and stops the process by pid (``server_argv``); a fast shutdown is
SIGINT.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

USER = "postgres"
# The socket file's name is ``.s.PGSQL.<port>``; nothing listens on TCP.
SOCKET_PORT = 5432
DATABASE = "miniplane"


class PostgresError(RuntimeError):
    """The private server can't be made or started; the message is one line."""


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian's layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """Why a private server can't run here, or None."""
    if bin_dir() is None:
        return "the PostgreSQL server is not installed (Debian package `postgresql`)"
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        return "psycopg is not installed (pip install 'miniplane[postgres]')"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"there is no {USER!r} user to run the server as (Debian package `postgresql`)"
    if os.geteuid() != 0:
        return f"starting a server as the {USER!r} user needs root"
    return None


def as_postgres(cwd: Path) -> dict[str, Any]:
    """``subprocess`` keywords that run a command as the ``postgres`` user in ``cwd``."""
    pw = pwd.getpwnam(USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": str(cwd)}


def unreachable_ancestor(path: Path) -> Path | None:
    """The first directory above ``path`` the ``postgres`` user may not enter (it must
    reach its data directory), or None."""
    pw = pwd.getpwnam(USER)
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid == pw.pw_gid:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return parent
    return None


def prepare(root: Path) -> Path:
    """A new, empty cluster in ``root`` (made, or emptied first by the caller), owned by
    the ``postgres`` user; returns its data directory. ``root`` is also the socket's
    directory."""
    bindir = bin_dir()
    if bindir is None or (why := unavailable()) is not None:
        raise PostgresError(why or "the PostgreSQL server is not installed")
    if (blocked := unreachable_ancestor(root)) is not None:
        raise PostgresError(f"the {USER!r} user cannot enter {blocked} (mode "
                            f"{blocked.stat().st_mode & 0o777:o}), so it cannot reach {root}; "
                            f"use a --state-dir it can reach")
    pw = pwd.getpwnam(USER)
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, pw.pw_uid, pw.pw_gid)
    root.chmod(0o700)
    data = root / "data"
    done = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", USER,
                           "--auth=trust", "--no-sync", "-E", "UTF8"],
                          capture_output=True, text=True, check=False,
                          **as_postgres(root))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PostgresError(f"initdb in {data} failed: {last}")
    return data


def server_argv(root: Path, *, durable: bool = True, max_connections: int = 200) -> list[str]:
    """The server's command line for the cluster ``prepare`` made in ``root``.
    ``durable=False`` (tests) turns fsync off."""
    bindir = bin_dir()
    assert bindir is not None
    argv = [str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(SOCKET_PORT),
            "-h", "", "-k", str(root), "-c", f"max_connections={max_connections}"]
    return argv + ([] if durable else ["-c", "fsync=off"])


def url(root: Path, database: str = "postgres") -> str:
    """A SQLAlchemy URL for ``database`` on the server whose socket is in ``root``."""
    return f"postgresql+psycopg://{USER}@/{database}?host={root}&port={SOCKET_PORT}"


def accepts(root: Path) -> bool:
    """Whether the server in ``root`` takes connections now."""
    import psycopg  # noqa: PLC0415

    try:
        psycopg.connect(host=str(root), port=SOCKET_PORT, user=USER, dbname="postgres",
                        connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def wait_ready(root: Path, alive: Any, timeout: float = 30.0) -> None:
    """Until the server in ``root`` takes connections; ``alive()`` False (it exited) or
    the deadline is a ``PostgresError`` (its log says why)."""
    deadline = time.monotonic() + timeout
    while not accepts(root):
        if not alive() or time.monotonic() > deadline:
            raise PostgresError(f"PostgreSQL in {root} did not start"
                                + ("" if alive() else " (it exited)"))
        time.sleep(0.05)


def create_database(root: Path, name: str = DATABASE) -> str:
    """A new empty database on the server in ``root``; returns its URL."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(host=str(root), port=SOCKET_PORT, user=USER, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url(root, name)


@contextlib.contextmanager
def running(*, durable: bool = True, timeout: float = 30.0) -> Iterator[Path]:
    """A throwaway server in a new temp dir, for as long as the block runs (tests,
    benchmarks); yields its directory (``url(root)``). Stopped by its pid (SIGINT: a
    fast shutdown) and removed afterwards, also after a failure."""
    root = Path(tempfile.mkdtemp(prefix="mp-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        prepare(root)
        with open(root / "log", "wb") as server_log:  # the child keeps its copy
            proc = subprocess.Popen(server_argv(root, durable=durable),
                                    stdout=subprocess.DEVNULL, stderr=server_log,
                                    **as_postgres(root))
        try:
            wait_ready(root, lambda: proc is not None and proc.poll() is None, timeout)
        except PostgresError as exc:
            raise PostgresError(f"{exc}: {(root / 'log').read_text()[-2000:]}") from None
        yield root
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
