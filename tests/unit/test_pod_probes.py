"""Probes as kubelet sends them: httpGet headers, HTTPS, exec timeouts, grpc (refused).

Against real servers on 127.0.0.1 and real processes (``probe_once`` with no node
namespace opens its sockets in this one).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from componentbase import pki
from nodeagent.pods.probes import (
    GRPC_UNSUPPORTED,
    USER_AGENT,
    ProbeResult,
    http_request,
    probe_once,
)
from tests.conftest import wait_until

SEEN: list[dict[str, str]] = []


class _Picky(http.server.BaseHTTPRequestHandler):
    """200 only for ``X-Probe: yes``; remembers every request's headers."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        SEEN.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        self.send_response(200 if self.headers.get("X-Probe") == "yes" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(tls: ssl.SSLContext | None) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Picky)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def picky() -> Iterator[int]:
    SEEN.clear()
    yield from _serve(None)


@pytest.fixture
def picky_tls(tmp_path: Path) -> Iterator[int]:
    """HTTPS with a certificate from a CA the prober has never seen."""
    SEEN.clear()
    ca = pki.new_ca("someone-elses-ca")
    pair = pki.issue(ca, pki.server_identity("app", ["app.example"], []))
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    yield from _serve(ctx)


def run_probe(probe: dict[str, Any]) -> ProbeResult:
    container = {"ports": [{"name": "web", "containerPort": probe.pop("_port", 1)}]}
    return asyncio.run(probe_once(probe, container=container, node_ns=None, pod_ns="unused",
                                  pod_ip="127.0.0.1", exec_argv=lambda cmd: cmd))


def test_the_request_kubelet_sends() -> None:
    assert http_request("/healthz", "10.244.1.5:8080", []) == (
        "GET /healthz HTTP/1.1\r\nHost: 10.244.1.5:8080\r\nUser-Agent: "
        f"{USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode()
    mine = http_request("ready", "10.244.1.5:80", [{"name": "Host", "value": "app.example"},
                                                    {"name": "user-agent", "value": "me"},
                                                    {"name": "X-A", "value": "1"},
                                                    {"name": "X-Bad", "value": "a\r\nX: y"}])
    assert mine == (b"GET /ready HTTP/1.1\r\nAccept: */*\r\nHost: app.example\r\n"
                    b"user-agent: me\r\nX-A: 1\r\nConnection: close\r\n\r\n")


def test_http_probe_sends_its_headers_to_a_named_port(picky: int) -> None:
    without = run_probe({"httpGet": {"path": "/h", "port": "web"}, "_port": picky})
    assert without == ProbeResult(False, "HTTP probe failed with statuscode: 401")
    ok = run_probe({"httpGet": {"path": "/h", "port": "web", "httpHeaders": [
        {"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "app.example"}]},
        "_port": picky})
    assert ok == ProbeResult(True, "")
    assert SEEN[-1]["host"] == "app.example" and SEEN[-1]["user-agent"] == USER_AGENT
    assert SEEN[0]["host"] == f"127.0.0.1:{picky}"


def test_https_probe_does_not_verify_the_certificate(picky_tls: int) -> None:
    probe = {"httpGet": {"path": "/", "port": picky_tls, "scheme": "HTTPS", "host": "127.0.0.1",
                         "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
    assert run_probe(probe) == ProbeResult(True, "")
    assert SEEN and SEEN[0]["path"] == "/"
    plain = run_probe({"httpGet": {"path": "/", "port": picky_tls}})
    assert not plain.ok


def test_a_timed_out_exec_probe_fails_and_its_process_group_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    result = run_probe({"exec": {"command": ["sh", "-c", script]}, "timeoutSeconds": 1})
    assert result == ProbeResult(False, f'command "sh -c {script}" timed out')
    child = int(pidfile.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    wait_until(gone, timeout=5, what="the probe's child to be killed")


def test_grpc_probes_say_they_are_not_supported() -> None:
    assert run_probe({"grpc": {"port": 1}}) == ProbeResult(False, GRPC_UNSUPPORTED)


