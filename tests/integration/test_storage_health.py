"""Honest health on real SQLite files: /readyz when storage stops taking writes, one-line
refusals at start, ``--check-storage``, and a bad row that does not stop the server.

The tests run as root, where file modes stop nobody; an immutable file (``chattr +i``,
ext4/xfs/btrfs, CAP_LINUX_IMMUTABLE) refuses every write, through descriptors opened
before too, so it makes a database really unwritable under a running server. It is
always cleared again, on failure too.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, ApiServer, session_pki, wait_until
from tests.integration.callers import client_cert


def _chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True,
                          check=False)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``paths`` refuse every write (root too) until the block ends."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr missing (e2fsprogs)")
    made = _chattr("+i", *paths)
    if made.returncode != 0:
        pytest.skip(f"cannot make files immutable here: {made.stderr.strip()}")
    try:
        yield
    finally:
        _chattr("-i", *paths)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database a server made and closed cleanly (its WAL folded in): copy it."""
    workdir = tmp_path_factory.mktemp("template")
    server = ApiServer(db_path=workdir / "state.db", log_path=workdir / "apiserver.log")
    try:
        server.start()
    finally:
        assert server.stop() == 0
    return server.db_path


@pytest.fixture
def db_copy(template_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    shutil.copy2(template_db, path)
    session_pki().seed(path.with_name("state.pki"))  # ApiServer's cert dir for it
    return path


def run_apiserver(db: Path, *extra: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """mp-apiserver on ``db`` as a process that is expected to exit by itself."""
    server = ApiServer(db_path=db, log_path=db.with_suffix(".log"))
    return subprocess.run([*server.command(), *extra], capture_output=True, text=True,
                          timeout=timeout)


def check_storage(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mp-apiserver"), "--check-storage", "--storage-url",
                           f"sqlite:///{db}"], capture_output=True, text=True, timeout=60)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mp-apiserver: error: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------ /readyz, /livez

def test_readyz_lists_its_checks_as_kubernetes_does(make_apiserver) -> None:
    server = make_apiserver()
    anonymous = httpx.Client(base_url=server.url, verify=session_pki().anonymous_context)
    with anonymous:
        assert anonymous.get("/readyz").text == "ok"
        verbose = anonymous.get("/readyz", params={"verbose": ""})
        assert verbose.status_code == 200
        assert verbose.text.splitlines() == [
            "[+]ping ok", "[+]storage-writer ok", "[+]log-follower ok", "[+]storage ok",
            "[+]shutdown ok", "readyz check passed"]
        live = anonymous.get("/livez?verbose&exclude=ping")
        assert live.text.splitlines() == [
            "[+]ping excluded: ok", "[+]storage-writer ok", "[+]log-follower ok",
            "livez check passed"]
        # one check's own path (and its reason) is system:monitoring's, not anonymous'
        assert anonymous.get("/readyz/storage").status_code == 401
    with server.http() as admin:
        assert admin.get("/readyz/storage").text == "ok"
        assert admin.get("/readyz/nope").status_code == 404


def test_readyz_fails_naming_storage_while_the_database_takes_no_writes(make_apiserver
                                                                         ) -> None:
    server = make_apiserver()
    db, wal = server.db_path, Path(f"{server.db_path}-wal")
    anonymous = httpx.Client(base_url=server.url, verify=session_pki().anonymous_context,
                             timeout=10)
    cert, key = client_cert("health-tina")
    tina_tls = ssl.create_default_context(cafile=session_pki().ca_file)
    tina_tls.load_cert_chain(cert, key)
    tina = httpx.Client(base_url=server.url, verify=tina_tls, timeout=10)
    with anonymous, tina, server.http(timeout=10) as admin:
        assert anonymous.get("/readyz").status_code == 200
        with immutable(db, wal):
            # no client writes: the check itself finds out
            failing = wait_until(lambda: (r := anonymous.get("/readyz")).status_code == 503
                                 and r, timeout=15, what="/readyz to fail")
            assert "[-]storage failed: reason withheld" in failing.text
            assert failing.text.rstrip().endswith("readyz check failed")
            assert "[+]ping ok" in failing.text
            # restarting would not help: liveness stays
            assert anonymous.get("/livez").status_code == 200
            one = admin.get("/readyz/storage")
            assert one.status_code == 503
            assert one.text.startswith("internal server error: ") and "disk I/O error" in one.text
            assert tina.get("/readyz/storage").status_code == 403  # not system:monitoring
            write = admin.post("/api/v1/namespaces", json={"metadata": {"name": "ro-1"}})
            assert write.status_code == 500 and write.json()["kind"] == "Status"
        wait_until(lambda: anonymous.get("/readyz").status_code == 200, timeout=15,
                   what="/readyz to pass again")
        write = admin.post("/api/v1/namespaces", json={"metadata": {"name": "ro-2"}})
        assert write.status_code == 201, write.text
    assert "storage cannot commit: OperationalError: disk I/O error" in \
        server.log_path.read_text()


# ------------------------------------------------------------------ refusing to start

@pytest.mark.parametrize("which", ["file", "directory", "-shm"])
def test_start_refuses_an_unwritable_database_in_one_line(which: str, db_copy: Path) -> None:
    shm = Path(f"{db_copy}-shm")
    shm.write_bytes(b"")  # as a start on a read-only database leaves it
    target = {"file": db_copy, "directory": db_copy.parent, "-shm": shm}[which]
    with immutable(target):
        line = one_line_error(run_apiserver(db_copy))
    assert f"{target} (immutable" in line
    assert line.endswith(f"chattr -i {target}")
    # fixed, it starts (nothing read-only was left behind)
    server = ApiServer(db_path=db_copy, log_path=db_copy.with_suffix(".log2"))
    try:
        server.start()
        with server.http() as admin:
            made = admin.post("/api/v1/namespaces", json={"metadata": {"name": "after"}})
            assert made.status_code == 201, made.text
    finally:
        server.stop()


def test_start_refuses_an_unwritable_certificate_directory_in_one_line(db_copy: Path
                                                                      ) -> None:
    cert_dir = db_copy.with_name("state.pki")  # beside the database, the default
    with immutable(cert_dir):
        line = one_line_error(run_apiserver(db_copy))
    assert line == (f"mp-apiserver: error: cannot write the certificate directory {cert_dir}: "
                    "Operation not permitted")


def _damage_objects(db: Path) -> None:
    """Overwrite the root page of the objects table with garbage."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'objects'"
                            ).fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


def test_a_damaged_database_is_one_line_and_check_storage_says_what(db_copy: Path) -> None:
    _damage_objects(db_copy)
    line = one_line_error(run_apiserver(db_copy))
    assert f"the database {db_copy} is damaged (database disk image is malformed)" in line
    assert f"run mp-apiserver --check-storage --storage-url sqlite:///{db_copy}" in line
    checked = check_storage(db_copy)
    assert checked.returncode == 1
    assert checked.stdout.strip().splitlines()[-1].startswith("storage check failed")
    assert "Traceback" not in checked.stderr


def test_the_recovery_path_gives_a_database_the_server_starts_on(db_copy: Path,
                                                                 tmp_path: Path) -> None:
    """README "Recovery": dump what reads, load it into a new file, check, start."""
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 command is missing (Debian package sqlite3)")
    _damage_objects(db_copy)
    dump = subprocess.run(["sqlite3", str(db_copy), ".dump"], capture_output=True, text=True,
                          check=False).stdout
    dump = dump.replace("ROLLBACK; -- due to errors", "COMMIT;")
    recovered = tmp_path / "recovered.db"
    subprocess.run(["sqlite3", str(recovered)], input=dump, text=True, check=True)
    checked = check_storage(recovered)
    assert checked.returncode == 0, checked.stdout
    server = ApiServer(db_path=recovered, log_path=tmp_path / "recovered.log")
    try:
        server.start()
        with server.http() as admin:
            assert admin.get("/api/v1/namespaces/default").status_code == 200  # re-made
    finally:
        server.stop()


def test_check_storage_passes_a_sound_database_and_makes_none(db_copy: Path,
                                                              tmp_path: Path) -> None:
    checked = check_storage(db_copy)
    assert checked.returncode == 0, checked.stdout
    lines = checked.stdout.strip().splitlines()
    assert lines[0] == "integrity_check: ok"
    assert lines[-1] == "storage check passed"
    missing = tmp_path / "none" / "state.db"
    checked = check_storage(missing)
    assert checked.returncode == 1
    assert checked.stdout.strip() == f"no database file at {missing}"
    assert not missing.parent.exists()


# ------------------------------------------------------------------ one bad row

def test_a_bad_row_is_skipped_with_a_log_line_and_the_rest_serves(db_copy: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_copy)) as conn, conn:
        conn.execute("UPDATE objects SET data = '{not json' "
                     "WHERE resource = 'services' AND name = 'kubernetes'")
        conn.execute("UPDATE objects SET data = '[1]' WHERE resource = "
                     "'clusterroles.rbac.authorization.k8s.io' AND name = 'view'")
    checked = check_storage(db_copy)
    assert checked.returncode == 1
    assert "bad object row services default/kubernetes: not JSON" in checked.stdout
    assert ("bad object row clusterroles.rbac.authorization.k8s.io view: not a JSON object"
            in checked.stdout)
    assert "objects: " in checked.stdout and ", 2 bad" in checked.stdout

    server = ApiServer(db_path=db_copy, log_path=db_copy.with_suffix(".log"))
    try:
        server.start()
        log = server.log_path.read_text()
        assert "skipping the stored object services default/kubernetes: not JSON" in log
        with server.http() as admin:
            services = admin.get("/api/v1/services")
            assert services.status_code == 200
            assert services.json()["items"] == []  # valid JSON, the bad row left out
            roles = admin.get("/apis/rbac.authorization.k8s.io/v1/clusterroles").json()
            names = {r["metadata"]["name"] for r in roles["items"]}
            assert "edit" in names and "view" not in names
            bad = admin.get("/api/v1/namespaces/default/services/kubernetes")
            assert bad.status_code == 500
            assert "services default/kubernetes cannot be read" in bad.json()["message"]
            svc = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
            made = admin.post("/api/v1/namespaces/default/services", json=svc)
            assert made.status_code == 201, made.text
    finally:
        server.stop()

    # README "Recovery", a bad row: with the server stopped, remove the rows named
    with contextlib.closing(sqlite3.connect(db_copy)) as conn, conn:
        conn.execute("DELETE FROM objects WHERE resource = 'services' AND namespace = "
                     "'default' AND name = 'kubernetes'")
        conn.execute("DELETE FROM objects WHERE resource = "
                     "'clusterroles.rbac.authorization.k8s.io' AND name = 'view'")
    assert check_storage(db_copy).returncode == 0
    try:
        server.start()  # and the server makes again what it owns
        with server.http() as admin:
            assert admin.get("/api/v1/namespaces/default/services/kubernetes"
                             ).status_code == 200
            assert admin.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/view"
                             ).status_code == 200
    finally:
        server.stop()
