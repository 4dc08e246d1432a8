"""Load shedding and connection limits of a real mp-apiserver, over real TLS sockets.

In-flight limits answer 429 with Retry-After (system:masters and probes still
served), ``--request-timeout`` answers 504 (watches exempt), a client that never
finishes its headers (or its TLS handshake) is closed, headers over 1 MiB get 431,
1,100 stalled sockets under a 1,024-file limit leave ``/readyz`` answering, and an
HTTP/1.0 client gets no chunked encoding.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import resource
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import REPO, ApiServer, admin_tls, session_pki, wait_until
from tests.integration.callers import Callers, token_file

CLOSED = 'apiserver_connections_closed_total{{reason="{}"}}'
MUTATING_NOW = 'apiserver_current_inflight_requests{request_kind="mutating"}'
TOKENS = {"alice": "alice-token-5e1d7c2b"}
SERVICE_ACCOUNTS = "/api/v1/namespaces/default/serviceaccounts"


# -- helpers ------------------------------------------------------------------------------


def tls_socket(server: ApiServer, *, admin: bool = False) -> ssl.SSLSocket:
    """A TLS connection to ``server`` (cluster-admin's certificate when ``admin``)."""
    ctx = admin_tls() if admin else session_pki().anonymous_context
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server ends the connection (EOF or reset) before the socket's own
    timeout; False if it is still waiting for us."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def far_future_rv(client: httpx.Client) -> str:
    """A resourceVersion the server won't reach: a list at it waits (3 s) for it, a real
    request that takes long."""
    listed = client.get(SERVICE_ACCOUNTS)
    assert listed.status_code == 200, listed.text
    return str(int(listed.json()["metadata"]["resourceVersion"]) + 1_000_000)


def metric(admin: httpx.Client, line_prefix: str) -> float:
    text = admin.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_prefix} not in /metrics:\n{text}")


def bind_cluster_admin(admin: httpx.Client, user: str) -> None:
    """``user`` may do anything through RBAC, but is not in system:masters."""
    made = admin.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json={
        "metadata": {"name": f"{user}-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                      "name": user}]})
    assert made.status_code == 201, made.text


# -- in-flight limits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("inflight")
    tokens = token_file(work / "tokens.csv", TOKENS)
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log",
                    extra_args=["--token-auth-file", str(tokens),
                                "--max-requests-inflight", "2",
                                "--max-mutating-requests-inflight", "1"])
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture
def callers(limited: ApiServer) -> Iterator[Callers]:
    callers = Callers(limited)
    try:
        yield callers
    finally:
        callers.close()


@pytest.fixture
def alice(limited: ApiServer, callers: Callers) -> httpx.Client:
    admin = callers.admin()
    if admin.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/alice-admin"
                 ).status_code == 404:
        bind_cluster_admin(admin, "alice")
    client = callers.token(TOKENS["alice"])
    wait_until(lambda: client.get(SERVICE_ACCOUNTS).status_code == 200, what="alice may list")
    return client


def test_reads_over_the_limit_get_429_while_masters_and_probes_are_served(
        limited: ApiServer, callers: Callers, alice: httpx.Client) -> None:
    admin = callers.admin()
    rv = far_future_rv(admin)
    # six connections, each opened (TLS done) before the six slow reads go at once
    clients = [callers.token(TOKENS["alice"]) for _ in range(6)]
    for client in clients:
        assert client.get("/readyz").status_code == 200
    start = threading.Barrier(len(clients))

    def slow_list(client: httpx.Client) -> httpx.Response:
        start.wait()
        return client.get(SERVICE_ACCOUNTS, params={"resourceVersion": rv})

    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(slow_list, c) for c in clients]
        refused = []
        for future in concurrent.futures.as_completed(futures, timeout=20):
            refused.append(future.result())
            if len(refused) == 4:
                break
        # two hold the slots (waiting for that revision); the other four were refused
        assert [r.status_code for r in refused] == [429] * 4, [r.text for r in refused]
        assert sum(not f.done() for f in futures) == 2
        answer = refused[0]
        assert answer.headers["Retry-After"] == "1"
        status = answer.json()
        assert status["kind"] == "Status" and status["reason"] == "TooManyRequests"
        assert status["code"] == 429 and status["details"]["retryAfterSeconds"] == 1
        # meanwhile: cluster-admin (system:masters) is served, and so are the probes
        assert admin.get(SERVICE_ACCOUNTS).status_code == 200
        assert callers.anonymous().get("/readyz").status_code == 200
        assert callers.anonymous().get("/livez").status_code == 200
        assert alice.get(SERVICE_ACCOUNTS).status_code == 429
        assert sum(not f.done() for f in futures) == 2, "the flood ended too soon"
        codes = sorted(f.result(timeout=20).status_code for f in futures)
    # the two admitted waited their 3 s for the revision (504 "Too large resource version")
    assert codes == [429] * 4 + [504] * 2
    assert metric(admin, 'apiserver_dropped_requests_total{request_kind="readOnly"}') >= 5
    # the slots are free again
    assert alice.get(SERVICE_ACCOUNTS).status_code == 200


def test_writes_over_the_mutating_limit_get_429(limited: ApiServer, callers: Callers,
                                                alice: httpx.Client) -> None:
    # a create whose body is still on its way holds the one mutating slot
    sock = tls_socket(limited)
    body = orjson.dumps({"metadata": {"name": "uploaded"}, "automountServiceAccountToken": False})
    sock.sendall(f"POST {SERVICE_ACCOUNTS} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {TOKENS['alice']}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body[:10])

    def probe() -> httpx.Response:  # an invalid create: 400 when admitted
        return alice.post(SERVICE_ACCOUNTS, content=b"{", headers={"Content-Type": "application/json"})

    admin = callers.admin()
    wait_until(lambda: metric(admin, MUTATING_NOW) == 1, what="the upload to hold the slot")
    refused = probe()
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["reason"] == "TooManyRequests"
    # reads have their own limit
    assert alice.get(SERVICE_ACCOUNTS).status_code == 200
    sock.sendall(body[10:])
    answer = read_until_body(sock)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    sock.close()
    assert probe().status_code == 400  # the slot is free again
    assert callers.admin().get(f"{SERVICE_ACCOUNTS}/uploaded").status_code == 200


def test_watch_is_told_apart_as_the_handler_reads_it(limited: ApiServer, callers: Callers,
                                                   alice: httpx.Client) -> None:
    """``?watch`` is read once, as the handler reads it (the last value wins, decoded):
    a list can't pass for a watch to escape the limits and the timeout, and a real
    watch can't take a read-only slot for its half hour."""
    admin = callers.admin()
    rv = far_future_rv(admin)
    # served as a list (the last watch is false): its ?timeout= holds, not the 3 s wait
    listed = alice.get(f"{SERVICE_ACCOUNTS}?watch=true&watch=false&resourceVersion={rv}"
                       "&timeout=300ms")
    assert listed.status_code == 504, listed.text
    assert "within the allotted timeout of 0.3s" in listed.json()["message"]
    # two watches spelled %74rue: served as watches, they leave both read slots free
    start = admin.get(SERVICE_ACCOUNTS).json()["metadata"]["resourceVersion"]
    with contextlib.ExitStack() as stack:
        for _ in range(2):
            watcher = callers.token(TOKENS["alice"])
            stack.enter_context(watcher.stream(
                "GET", f"{SERVICE_ACCOUNTS}?watch=%74rue&resourceVersion={start}"
                       "&timeoutSeconds=60"))
        assert metric(admin, "apiserver_longrunning_requests") == 2
        assert alice.get(SERVICE_ACCOUNTS).status_code == 200


def read_until_body(sock: socket.socket) -> bytes:
    """A response's head and (Content-Length) body on a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


# -- the request timeout -------------------------------------------------------------------


def test_a_request_over_the_timeout_is_answered_504_but_a_watch_lives_on(
        make_apiserver) -> None:
    server = make_apiserver("--request-timeout", "500ms")
    with server.http(timeout=15) as admin:
        rv = far_future_rv(admin)
        with admin.stream("GET", SERVICE_ACCOUNTS, params={"watch": "1", "resourceVersion":
                                                     admin.get(SERVICE_ACCOUNTS).json()[
                                                         "metadata"]["resourceVersion"]}
                          ) as watch:
            # a list waiting for a revision (3 s) is cut at the timeout
            slow = admin.get(SERVICE_ACCOUNTS, params={"resourceVersion": rv})
            assert slow.status_code == 504, slow.text
            status = slow.json()
            assert status["kind"] == "Status" and status["reason"] == "Timeout"
            assert "did not complete within the allotted timeout" in status["message"]
            # the watch, open longer than the timeout by now, still delivers
            made = admin.post(SERVICE_ACCOUNTS, json={"metadata": {"name": "after-timeout"}})
            assert made.status_code == 201, made.text
            event = orjson.loads(next(watch.iter_lines()))
            assert event["type"] == "ADDED"
            assert event["object"]["metadata"]["name"] == "after-timeout"

    # a write whose body never completes: 504, the outcome said to be unknown
    sock = tls_socket(server, admin=True)
    sock.sendall(f"POST {SERVICE_ACCOUNTS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 f"\r\nContent-Length: 100\r\n\r\n{{\"metadata\"".encode())
    answer = read_until_body(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 504"), answer[:300]
    status = orjson.loads(answer.partition(b"\r\n\r\n")[2])
    assert status["reason"] == "Timeout"
    assert "may or may not have been committed" in status["message"]


def test_a_client_may_ask_for_a_shorter_timeout(apiserver: ApiServer) -> None:
    """client-go sends its own timeout as ``?timeout=``; the server keeps to it."""
    with apiserver.http(timeout=15) as admin:
        rv = far_future_rv(admin)
        slow = admin.get(SERVICE_ACCOUNTS, params={"resourceVersion": rv, "timeout": "300ms"})
        assert slow.status_code == 504, slow.text
        assert "within the allotted timeout of 0.3s" in slow.json()["message"]
        bad = admin.get(SERVICE_ACCOUNTS, params={"timeout": "soon"})
        assert bad.status_code == 400 and bad.json()["reason"] == "BadRequest"
        assert "invalid timeout specified in the request URL" in bad.json()["message"]
        assert admin.get(SERVICE_ACCOUNTS, params={"timeout": "32s"}).status_code == 200


# -- slow and oversized headers ------------------------------------------------------------


def test_a_client_that_never_finishes_its_headers_or_handshake_is_closed(
        make_apiserver) -> None:
    server = make_apiserver("--read-header-timeout", "1s")
    half_sent = tls_socket(server)
    half_sent.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    no_tls = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    no_tls.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    for sock in (half_sent, no_tls, silent):
        assert closed_by_server(sock), "a stalled connection was kept open"
        sock.close()
    with server.http() as admin:
        assert metric(admin, CLOSED.format("header_timeout")) == 3
    # a prompt client is unaffected, also on a kept-alive connection
    with httpx.Client(base_url=server.url, verify=session_pki().anonymous_context) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_headers_over_one_mebibyte_are_refused_with_431(apiserver: ApiServer) -> None:
    sock = tls_socket(apiserver)
    sock.settimeout(15)
    head = b"GET /readyz HTTP/1.1\r\nHost: x\r\n"
    filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
    try:
        sock.sendall(head)
        for _ in range((1 << 20) // len(filler) + 16):  # just over 1 MiB, never ended
            sock.sendall(filler)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # refused while sending: the answer is already in
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    with apiserver.http() as admin:
        assert metric(admin, CLOSED.format("headers_too_large")) == 1
    # headers under the cap are read as before
    with httpx.Client(base_url=apiserver.url, verify=session_pki().anonymous_context) as c:
        assert c.get("/readyz", headers={"X-Filler": "a" * 100_000}).status_code == 200


# -- the connection cap under a low open-file limit ----------------------------------------


class LowFileLimitApiServer(ApiServer):
    """An API server started under ``ulimit -n 1024`` (soft and hard)."""

    def start(self, *, wait_ready: bool = True):  # -> Self
        session_pki().seed(self.cert_dir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, preexec_fn=_low_file_limit)
        if wait_ready:
            wait_until(self._ready, timeout=20, what=f"{self.label} to be ready")
        return self


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.fixture
def low_limit_server(tmp_path: Path) -> Iterator[LowFileLimitApiServer]:
    server = LowFileLimitApiServer(db_path=tmp_path / "state.db",
                                   log_path=tmp_path / "apiserver.log",
                                   # only the cap may save /readyz, not the header timeout
                                   extra_args=["--read-header-timeout", "120s"])
    try:
        yield server
    finally:
        server.stop()


def test_1100_stalled_sockets_under_a_1024_file_limit_leave_readyz_answering(
        low_limit_server: LowFileLimitApiServer) -> None:
    server = low_limit_server.start()
    assert server.proc is not None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:  # this test process holds the 1,100 sockets
        if hard != resource.RLIM_INFINITY and hard < 1500:
            pytest.skip(f"the test needs 1,500 open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1500, hard))
    stalled: list[socket.socket] = []
    try:
        ctx = session_pki().anonymous_context
        for n in range(1100):
            raw = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            if n % 2:  # half: TLS done, a request half-sent
                try:
                    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
                except (OSError, ssl.SSLError):
                    raw.close()
                    continue  # closed at the cap while still connecting: fine
                stalled.append(sock)
            else:  # half: a TLS handshake begun and never finished
                raw.sendall(b"\x16\x03\x01")
                stalled.append(raw)
        open_fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        assert open_fds < 1024, f"the server holds {open_fds} files"
        # a fresh connection gets its answer while the stalled ones are still open
        started = time.monotonic()
        with httpx.Client(base_url=server.url, verify=ctx, timeout=10) as probe:
            assert probe.get("/readyz").status_code == 200
        assert time.monotonic() - started < 5
        assert server.proc.poll() is None
        with server.http(timeout=10) as admin:
            assert metric(admin, CLOSED.format("evicted")) > 0
            assert metric(admin, "apiserver_connections") <= \
                metric(admin, "apiserver_connections_max") < 1024
    finally:
        for sock in stalled:
            sock.close()
    log = server.log_path.read_text()
    assert "Too many open files" not in log and "Traceback" not in log, log[-3000:]


def test_a_connection_cap_the_file_limit_cannot_hold_is_refused_at_start(
        tmp_path: Path) -> None:
    server = LowFileLimitApiServer(db_path=tmp_path / "state.db",
                                   log_path=tmp_path / "apiserver.log",
                                   extra_args=["--max-connections", "5000"])
    server.start(wait_ready=False)
    assert server.proc is not None
    assert server.proc.wait(timeout=20) == 2
    server.proc = None
    err = server.log_path.read_text().strip()
    assert err.count("\n") == 0, err
    assert err.startswith("mp-apiserver: error: --max-connections 5000 is more than")


# -- HTTP/1.0 ------------------------------------------------------------------------------


def test_http10_clients_get_no_chunked_encoding(apiserver: ApiServer) -> None:
    def get10(path: str) -> tuple[bytes, bytes]:
        sock = tls_socket(apiserver, admin=True)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        head, _, body = read_all(sock).partition(b"\r\n\r\n")
        sock.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding" not in head.lower(), head
        return head.lower(), body

    head, body = get10(SERVICE_ACCOUNTS)
    assert b"content-length:" in head
    assert orjson.loads(body)["kind"] == "ServiceAccountList"
    # a watch (a stream of unknown length) is close-delimited, its lines whole JSON
    head, body = get10("/api/v1/namespaces?watch=1&timeoutSeconds=1")
    assert b"connection: close" in head
    events = [orjson.loads(line) for line in body.splitlines() if line]
    assert {e["object"]["metadata"]["name"] for e in events} >= {"default", "kube-system"}
