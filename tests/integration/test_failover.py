"""Clients with several API servers: the next one answers when one dies.

Real mp-apiserver processes that share the test run's CA, so one credential
reaches all of them. Two servers on one database at once need PostgreSQL (not
this slice); so either each server has its own database (the informer then
relists when it moves: the versions differ) or the second server starts on the
first one's database after ``kill -9`` (versions carry on: the watch resumes).

``FaultServer`` fakes the faults a real server can't be made to show on cue: a
connection dropped after the request arrived, a TLS handshake cut short, a 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import orjson
import pytest

from apimachinery.kinds import NAMESPACE, SERVICE
from client.errors import ConnectionFailed, NotFound, ServerError
from client.http import AsyncClient, Client
from componentbase import pki
from tests.conftest import BIN, ApiServer, admin_config, free_port, session_pki, wait_until
from tests.integration.test_informer import Running, converged, service
from tests.integration.test_mpctl import env, mpctl

# -- a server that fails on purpose ---------------------------------------------------------


class FaultServer:
    """A TLS listener on loopback that fails every connection one way.

    ``drop``: read the whole request, then close without answering (the request
    may have been applied, as far as the client can tell). ``eof``: close before
    the TLS handshake (nothing was sent). ``503``/``503-retry``: answer 503, the
    second with ``Retry-After``. ``requests`` records each request line received.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[str] = []
        directory = session_pki().directory
        ca = pki.ensure_ca(directory)
        pki.ensure_cert(directory, "fault", ca,
                        pki.server_identity("fault", [], ["127.0.0.1"]))
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(directory / "fault.crt", directory / "fault.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                if self.mode == "eof":
                    continue
                conn.settimeout(5)
                try:
                    with self.tls.wrap_socket(conn, server_side=True) as tls:
                        self.requests.append(self._read_request(tls))
                        if self.mode.startswith("503"):
                            tls.sendall(self._unavailable())
                except (OSError, ssl.SSLError):
                    continue

    @staticmethod
    def _read_request(tls: ssl.SSLSocket) -> str:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                       if k.strip().lower() == "content-length"), 0)
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            body += chunk
        return lines[0]

    def _unavailable(self) -> bytes:
        status = orjson.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "ServiceUnavailable", "code": 503,
                               "message": "the server is not ready"})
        headers = ["HTTP/1.1 503 Service Unavailable", "Content-Type: application/json",
                   f"Content-Length: {len(status)}", "Connection: close"]
        if self.mode == "503-retry":
            headers.append("Retry-After: 1")
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + status

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def fault() -> Iterator:
    made: list[FaultServer] = []

    def make(mode: str) -> FaultServer:
        made.append(FaultServer(mode))
        return made[-1]

    yield make
    for server in made:
        server.close()


def dead_url() -> str:
    return f"https://127.0.0.1:{free_port()}"


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def names(client: Client) -> set[str]:
    return {o["metadata"]["name"] for o in client.list(NAMESPACE)["items"]}


@pytest.fixture
def start_informer() -> Iterator:
    running: list[Running] = []

    def start(url: str, **options) -> Running:
        running.append(Running(url, SERVICE, **options))
        return running[-1]

    yield start
    for r in running:
        r.stop()


# -- requests ---------------------------------------------------------------------------------


def test_requests_move_to_the_next_server_when_one_dies(make_apiserver):
    a, b = make_apiserver(), make_apiserver()
    with b.client() as on_b:
        on_b.create(NAMESPACE, namespace("only-on-b"))
    with Client(admin_config(f"{a.url},{b.url}")) as both:
        assert "only-on-b" not in names(both)  # A answers while it lives
        a.kill()
        assert "only-on-b" in names(both)
        assert both.servers.current == b.url
        both.create(NAMESPACE, namespace("made-after"))  # and stays on B
    with b.client() as on_b:
        on_b.get(NAMESPACE, "made-after")


def test_any_request_moves_on_when_nothing_was_sent(apiserver, fault):
    eof = fault("eof")  # the TLS handshake ends at once
    with Client(admin_config(f"{dead_url()},{eof.url},{apiserver.url}")) as client:
        client.create(NAMESPACE, namespace("never-sent-twice"))
    assert eof.requests == []
    with apiserver.client() as direct:
        direct.get(NAMESPACE, "never-sent-twice")


class HangingServer:
    """A port whose connects hang: a listener that never accepts, its queue full (the
    kernel drops further SYNs), as a server whose host is gone looks to a client."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.queued: list[socket.socket] = []
        while True:  # fill the queue until a connect no longer completes
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(self.listener.getsockname())
            except TimeoutError:
                probe.close()
                return
            self.queued.append(probe)
            assert len(self.queued) < 64, "the accept queue never filled"

    def close(self) -> None:
        for sock in (*self.queued, self.listener):
            sock.close()


def test_a_server_whose_connects_hang_is_left_within_a_leaders_renew_deadline(apiserver):
    """A leader must renew within 10 s: a hung connect may not take all of it."""
    hanging = HangingServer()
    try:
        async def renew_like() -> dict:
            async with AsyncClient(admin_config(f"{hanging.url},{apiserver.url}")) as client:
                async with asyncio.timeout(10):  # mp-controllers' --leader-elect-renew-deadline
                    got = await client.get(NAMESPACE, "default")
                assert client.servers.current == apiserver.url
                return got
        assert asyncio.run(renew_like())["metadata"]["name"] == "default"
    finally:
        hanging.close()


def test_a_write_that_may_have_arrived_is_not_sent_again(apiserver, fault):
    drop = fault("drop")
    with Client(admin_config(f"{drop.url},{apiserver.url}")) as client:
        with pytest.raises(ConnectionFailed) as info:
            client.create(NAMESPACE, namespace("maybe"))
        assert drop.requests == ["POST /api/v1/namespaces HTTP/1.1"]
        assert "it may have been applied, so it is not sent to another server" in \
            info.value.message
        assert [server for server, _ in info.value.attempts] == [drop.url]
        with apiserver.client() as direct, pytest.raises(NotFound):
            direct.get(NAMESPACE, "maybe")
        # the next request goes to the live server
        assert client.servers.current == apiserver.url
        client.create(NAMESPACE, namespace("maybe"))


def test_a_read_whose_connection_dropped_is_sent_again(apiserver, fault):
    drop = fault("drop")
    with Client(admin_config(f"{drop.url},{apiserver.url}")) as client:
        assert "default" in names(client)
    assert drop.requests == ["GET /api/v1/namespaces HTTP/1.1"]


def test_a_503_moves_reads_and_only_writes_it_promised_not_to_process(apiserver, fault):
    unavailable, later = fault("503"), fault("503-retry")
    with Client(admin_config(f"{unavailable.url},{apiserver.url}")) as client:
        assert "default" in names(client)  # a read moves on
    with Client(admin_config(f"{unavailable.url},{apiserver.url}")) as client:
        with pytest.raises(ServerError) as info:
            client.create(NAMESPACE, namespace("not-promised"))
        assert (info.value.code, info.value.message) == (503, "the server is not ready")
    with Client(admin_config(f"{later.url},{apiserver.url}")) as client:
        client.create(NAMESPACE, namespace("promised"))
    with apiserver.client() as direct:
        assert {"promised"} <= names(direct) and "not-promised" not in names(direct)
    assert len(unavailable.requests) == 2 and len(later.requests) == 1


# -- informers --------------------------------------------------------------------------------


def test_informer_moves_and_relists_on_a_server_with_other_data(make_apiserver,
                                                                 start_informer, caplog):
    caplog.set_level(logging.INFO, logger="client")
    a, b = make_apiserver(), make_apiserver()
    ns = "fo"
    with a.client() as on_a, b.client() as on_b:
        for c in (on_a, on_b):
            c.create(NAMESPACE, namespace(ns))
        on_b.create(SERVICE, service("both"), ns)
        on_b.create(SERVICE, service("only-b"), ns)
        on_a.create(SERVICE, service("only-a"), ns)
        for i in range(30):  # A's versions run well ahead of B's
            on_a.patch(SERVICE, "only-a", {"metadata": {"labels": {"n": str(i)}}}, namespace=ns)
        on_a.create(SERVICE, service("both"), ns)
        rv = {name: int(c.list(SERVICE, ns)["metadata"]["resourceVersion"])
              for name, c in (("a", on_a), ("b", on_b))}
        assert rv["a"] > rv["b"] + 10, rv

        inf = start_informer(f"{a.url},{b.url}", namespace=ns)
        wait_until(lambda: converged(inf, on_a, ns), what="first sync on A")
        synced = len(inf.calls)
        a.kill()
        # B is behind A's version: it answers "too large" (after waiting 3 s), so relist
        wait_until(lambda: converged(inf, on_b, ns), timeout=20, what="relist on B")
        moved = sorted((handler, key) for handler, key, _ in inf.calls[synced:])
        assert moved == [("add", f"{ns}/only-b"), ("delete", f"{ns}/only-a"),
                         ("update", f"{ns}/both")]

        on_b.create(SERVICE, service("new"), ns)
        on_b.patch(SERVICE, "only-b", {"metadata": {"labels": {"x": "1"}}}, namespace=ns)
        on_b.delete(SERVICE, "both", ns)
        wait_until(lambda: converged(inf, on_b, ns), what="events from B")
        assert [(h, k) for h, k, _ in inf.calls[synced + 3:]] == [
            ("add", f"{ns}/new"), ("update", f"{ns}/only-b"), ("delete", f"{ns}/both")]
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"resuming on {b.url}" in m for m in messages), messages
    assert any("is unknown to the server" in m and "relisting" in m for m in messages)


def test_informer_resumes_on_the_next_server_without_gap_or_repeat(tmp_path, start_informer,
                                                                   caplog):
    """B takes over A's database after ``kill -9`` (one writer at a time, as SQLite
    needs): the versions carry on, so the watch resumes and nothing is relisted."""
    caplog.set_level(logging.INFO, logger="client")
    a = ApiServer(db_path=tmp_path / "state.db", log_path=tmp_path / "a.log")
    b = ApiServer(db_path=tmp_path / "state.db", log_path=tmp_path / "b.log",
                  cert_dir=tmp_path / "state.pki")
    try:
        a.start()
        ns = "resume"
        with a.client() as on_a:
            on_a.create(NAMESPACE, namespace(ns))
            for name in ("one", "two"):
                on_a.create(SERVICE, service(name), ns)
            inf = start_informer(f"{a.url},{b.url}", namespace=ns)
            wait_until(lambda: converged(inf, on_a, ns), what="first sync on A")
            # the informer may or may not see these before A dies: it must see them once
            on_a.patch(SERVICE, "one", {"metadata": {"labels": {"v": "2"}}}, namespace=ns)
            on_a.create(SERVICE, service("three"), ns)
        a.kill()
        b.start()
        with b.client() as on_b:
            on_b.delete(SERVICE, "two", ns)
            on_b.create(SERVICE, service("four"), ns)
            wait_until(lambda: converged(inf, on_b, ns), timeout=20, what="resume on B")
        assert [(h, k.split("/")[1]) for h, k, _ in inf.calls] == [
            ("add", "one"), ("add", "two"), ("update", "one"), ("add", "three"),
            ("delete", "two"), ("add", "four")]
        versions = [int(v) for _, _, v in inf.calls[2:]]
        assert versions == sorted(versions)
        messages = [r.getMessage() for r in caplog.records]
        assert not any("relisted" in m for m in messages), messages
    finally:
        b.stop()
        a.stop()


# -- mpctl and the components ----------------------------------------------------------------


def test_mpctl_uses_the_live_server_quietly(apiserver):
    dead = dead_url()
    quiet = mpctl(f"{dead},{apiserver.url}", "get", "ns", "-o", "name")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "namespace/default" in quiet.stdout.split()
    loud = mpctl(f"{dead},{apiserver.url}", "-v", "get", "ns", "-o", "name")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert f"API server {dead}: " in loud.stderr and f"trying {apiserver.url}" in loud.stderr


def test_mpctl_with_every_server_dead_names_them_in_one_line():
    first, second = dead_url(), dead_url()
    result = mpctl(f"{first},{second}", "get", "ns")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: cannot reach any API server: {first}: ")
    assert f"; {second}: " in result.stderr


def test_mpctl_refuses_a_bad_url_in_the_list_with_exit_2():
    result = mpctl("https://127.0.0.1:1,127.0.0.1:2", "get", "ns")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("error: --server: server URL must start with http:// or "
                             "https://, got '127.0.0.1:2'\n")
    environment = {**env(), "MINIPLANE_SERVER": "https://127.0.0.1:1,,https://127.0.0.1:2"}
    result = subprocess.run([str(BIN / "mpctl"), "get", "ns"], capture_output=True, text=True,
                            timeout=60, env=environment)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: MINIPLANE_SERVER: empty URL in the server list")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["mp-controllers", "mp-dnsd", "mp-nodeagent"])
def test_every_component_takes_the_list_through_the_shared_code(command):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MINIPLANE_SERVER", "KUBECONFIG")}
    result = subprocess.run([str(BIN / command), "--server", "https://127.0.0.1:1,ftp://b"],
                            capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 2
    assert result.stderr == (f"{command}: error: --server: server URL must start with "
                             "http:// or https://, got 'ftp://b'\n")
    helped = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True,
                            timeout=60, env=environment)
    assert "several of one cluster separated by commas" in " ".join(helped.stdout.split())

