"""What a node agent says about its pods: kubelet's reasons and wording, and the probe
output its Unhealthy events carry (exec probes run as real processes here; HTTP and
TCP probes against real loopback sockets, no namespace needed)."""

from __future__ import annotations

import asyncio
import errno
import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from componentbase import ports
from nodeagent.pods import events
from nodeagent.pods.probes import (
    MAX_MESSAGE,
    ProbeResult,
    http_failure,
    output_text,
    probe_once,
    socket_error,
)

POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "0b7d-42"}}


def test_kubelet_wording() -> None:
    assert events.pulled("nginx:1.27") == 'Container image "nginx:1.27" already present on machine'
    assert events.created("web") == "Created container web"
    assert events.started("web") == "Started container web"
    assert events.stopping("web") == "Stopping container web"
    assert events.liveness_kill("web") == "Container web failed liveness probe, will be restarted"
    assert events.probe_failed("Readiness", "no") == "Readiness probe failed: no"
    assert events.back_off("web", POD) == ("Back-off restarting failed container web in pod "
                                           "web-1_shop(0b7d-42)")
    assert events.failed('exec: "x": not found') == 'Error: exec: "x": not found'
    assert events.container_field_path("web") == "spec.containers{web}"


def test_pod_events_are_container_events_of_the_pod() -> None:
    calls: list[dict[str, Any]] = []

    class Sink:
        def record(self, obj: Any, **kwargs: Any) -> None:
            calls.append({"obj": obj, **kwargs})

    pe = events.PodEvents(Sink())
    pe.warning(POD, "web", events.UNHEALTHY, "Readiness probe failed: no")
    pe.normal(POD, "web", events.KILLING, "Stopping container web")
    assert calls == [
        {"obj": POD, "kind": "Pod", "type_": "Warning", "reason": "Unhealthy",
         "message": "Readiness probe failed: no", "field_path": "spec.containers{web}"},
        {"obj": POD, "kind": "Pod", "type_": "Normal", "reason": "Killing",
         "message": "Stopping container web", "field_path": "spec.containers{web}"}]
    events.PodEvents(None).warning(POD, "web", events.FAILED, "nothing happens")


@pytest.mark.parametrize(("exc", "words"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     "connect: connection refused"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "connect: no route to host"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "connect: network is unreachable"),
    (TimeoutError("timed out"), "i/o timeout"),
    (OSError(errno.EACCES, "Permission denied"), "permission denied"),
])
def test_socket_errors_as_go_words_them(exc: OSError, words: str) -> None:
    assert socket_error(exc) == words


@pytest.mark.parametrize(("status", "failure"), [
    (200, None), (302, None), (399, None),
    (404, "HTTP probe failed with statuscode: 404"),
    (503, "HTTP probe failed with statuscode: 503"),
    (None, "HTTP probe failed: malformed response"),
])
def test_http_verdicts(status: int | None, failure: str | None) -> None:
    assert http_failure(status) == failure


def test_output_is_trimmed_and_capped() -> None:
    assert output_text(b"  not ready\n") == "not ready"
    long = output_text(b"x" * 5000)
    assert len(long) == MAX_MESSAGE + 1 and long.endswith("…")
    assert output_text(b"caf\xc3\xa9 \xff") == "café \ufffd"


def run_probe(probe: dict[str, Any], **kwargs: Any) -> ProbeResult:
    return asyncio.run(probe_once(probe, container={"ports": [{"name": "http",
                                                               "containerPort": 1}]},
                                  node_ns=None, pod_ns="unused", pod_ip="127.0.0.1", **kwargs))


def plain(cmd: list[str]) -> list[str]:
    return cmd


def test_exec_probe_reports_its_output_both_streams() -> None:
    script = "import sys; print('db down', flush=True); print('retrying', file=sys.stderr); exit(1)"
    result = run_probe({"exec": {"command": [sys.executable, "-c", script]}},
                       exec_argv=plain)
    assert result == ProbeResult(False, "db down\nretrying")
    ok = run_probe({"exec": {"command": [sys.executable, "-c", "print('fine')"]}},
                   exec_argv=plain)
    assert ok == ProbeResult(True, "fine")


def test_exec_probe_timeout_and_unstartable_command() -> None:
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    result = run_probe({"exec": {"command": slow}, "timeoutSeconds": 1}, exec_argv=plain)
    assert result == ProbeResult(False, f'command "{" ".join(slow)}" timed out')
    missing = run_probe({"exec": {"command": ["/no/such/probe"]}}, exec_argv=plain)
    assert not missing.ok and "/no/such/probe" in missing.output


def test_exec_probe_keeps_the_start_of_a_flood_without_blocking() -> None:
    flood = [sys.executable, "-c", "import sys; sys.stdout.write('y' * 1_000_000); exit(2)"]
    result = run_probe({"exec": {"command": flood}, "timeoutSeconds": 5}, exec_argv=plain)
    assert not result.ok and result.output.startswith("y" * 100)
    assert len(result.output) == MAX_MESSAGE + 1


class _Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_503() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_probe_reports_the_status_and_a_refused_connection(http_503: int) -> None:
    result = run_probe({"httpGet": {"path": "/healthz", "port": http_503}})
    assert result == ProbeResult(False, "HTTP probe failed with statuscode: 503")
    closed = ports.free_port()
    refused = run_probe({"httpGet": {"path": "/healthz", "port": closed}})
    assert refused == ProbeResult(False, f'Get "http://127.0.0.1:{closed}/healthz": '
                                         f"dial tcp 127.0.0.1:{closed}: connect: "
                                         "connection refused")


def test_tcp_probe_reports_the_dial_error() -> None:
    closed = ports.free_port()
    result = run_probe({"tcpSocket": {"port": closed}})
    assert result == ProbeResult(False, f"dial tcp 127.0.0.1:{closed}: connect: "
                                        "connection refused")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert run_probe({"tcpSocket": {"port": listener.getsockname()[1]}}).ok


def test_bad_port_fails_with_its_reason() -> None:
    result = run_probe({"tcpSocket": {"port": "metrics"}})
    assert result == ProbeResult(False, "port 'metrics' not found in the container")
