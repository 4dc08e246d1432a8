"""Shared fixtures: real mp-apiserver processes on free ports with temporary databases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from componentbase.polling import poll
from tests.netns import Lab

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """``poll`` that fails the test (AssertionError, which some helpers catch to add
    what they saw) when ``predicate`` is still falsy at the deadline."""
    try:
        return poll(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


class ManagedProcess:
    """Start, wait for ``/readyz``, stop: a real miniplane process, handled by its pid.

    Subclasses are dataclasses with ``log_path`` and ``proc`` fields; they say what
    to run (``command``) and where it reports readiness (``readyz_url``).
    """

    log_path: Path
    proc: subprocess.Popen | None
    label = "process"

    def command(self) -> list[str]:
        raise NotImplementedError

    def readyz_url(self) -> str:
        raise NotImplementedError

    def start(self, *, wait_ready: bool = True):  # -> Self
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO)
        if wait_ready:
            wait_until(self._ready, timeout=20, what=f"{self.label} to be ready")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.label} exited with {self.proc.returncode}: "
                               + self.log_path.read_text()[-2000:])
        try:
            return httpx.get(self.readyz_url(), timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop it (SIGKILL after 10 s) and return its exit code; None if not running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class ApiServer(ManagedProcess):
    """One real mp-apiserver process; restartable on the same database and port."""

    db_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"apiserver on {self.url}"

    def command(self) -> list[str]:
        return [str(BIN / "mp-apiserver"), "--listen", f"127.0.0.1:{self.port}",
                "--storage-url", f"sqlite:///{self.db_path}", *self.extra_args]

    def readyz_url(self) -> str:
        return self.url + "/readyz"

    def restart(self) -> ApiServer:
        self.stop()
        return self.start()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Namespaces of one test (``tests.netns.Lab``), all removed at teardown, on failure too."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
        assert lab.leftovers() == []


@pytest.fixture
def make_apiserver(tmp_path: Path) -> Iterator:
    """Factory for apiservers; every one started is stopped at teardown, even on failure."""
    servers: list[ApiServer] = []

    def make(*extra_args: str) -> ApiServer:
        n = len(servers)
        server = ApiServer(db_path=tmp_path / f"state{n}.db", log_path=tmp_path / f"apiserver{n}.log",
                           extra_args=list(extra_args))
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def apiserver(make_apiserver) -> ApiServer:
    return make_apiserver()


@pytest.fixture
def api_url(apiserver: ApiServer) -> str:
    return apiserver.url


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One API server for the tests of a module that neither stop it nor need a
    special flag; they stay apart by using namespaces of their own."""
    workdir = tmp_path_factory.mktemp("apiserver")
    server = ApiServer(db_path=workdir / "state.db", log_path=workdir / "apiserver.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_url(shared_api: ApiServer) -> str:
    return shared_api.url


os.environ.setdefault("PYTHONUNBUFFERED", "1")
