"""componentbase.metrics: a component's registry on prometheus_client, and its text."""

from __future__ import annotations

import asyncio
import socket
import subprocess

import pytest
from prometheus_client.core import CounterMetricFamily

from componentbase.metrics import Registry, StatusServer, is_loopback_peer


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    registry = Registry()
    h = registry.histogram("t", "A test histogram.", (0.1, 1.0), labels=("c",))
    for v in (0.05, 0.5, 0.5, 3.0):
        h.observe(v, ("x",))
    lines = registry.render().splitlines()
    assert lines == [
        "# HELP t A test histogram.", "# TYPE t histogram",
        't_bucket{c="x",le="0.1"} 1.0', 't_bucket{c="x",le="1.0"} 3.0',
        't_bucket{c="x",le="+Inf"} 4.0', 't_count{c="x"} 4.0', 't_sum{c="x"} 4.05']
    assert h.count(("x",)) == 4 and h.count(("y",)) == 0 and h.total(("x",)) == 4.05


def test_unlabelled_histogram_shows_zero_buckets_before_any_observation() -> None:
    registry = Registry()
    registry.histogram("t", "T.", (1.0,))
    assert 't_bucket{le="+Inf"} 0.0' in registry.render().splitlines()


def test_gauges_read_at_scrape_time_and_collectors_read_fields() -> None:
    registry = Registry()
    state = {"n": 1}
    registry.gauge("g", "A gauge.", lambda: state["n"])
    registry.collector(lambda: [CounterMetricFamily("c_total", "A counter.", value=state["n"])])
    state["n"] = 7
    text = registry.render()
    assert "g 7.0" in text.splitlines() and "c_total 7.0" in text.splitlines()
    assert "# TYPE c_total counter" in text and "_created" not in text


def test_registries_are_separate() -> None:
    a, b = Registry(), Registry()
    a.histogram("same_name", "A.", (1.0,)).observe(0.5)
    b.histogram("same_name", "B.", (1.0,))  # no clash: each component has its own
    assert "same_name_count 1.0" in a.render() and "same_name_count 0.0" in b.render()


def test_status_server_answers_metrics_health_and_readiness() -> None:
    registry = Registry()
    server = StatusServer(registry.render, readiness=lambda: (False, "not synced"))
    status, ctype, body = server.respond(b"GET /metrics HTTP/1.1\r\n\r\n", from_loopback=True)
    assert status == "200 OK" and ctype.startswith("text/plain; version=0.0.4")
    assert server.respond(b"GET /readyz HTTP/1.1\r\n\r\n",
                          from_loopback=True)[0].startswith("503")
    assert server.respond(b"HEAD /healthz HTTP/1.1\r\n\r\n", from_loopback=True)[0] == "200 OK"


def test_metrics_are_refused_to_callers_off_loopback_and_health_is_not() -> None:
    server = StatusServer(Registry().render)
    status, _, body = server.respond(b"GET /metrics HTTP/1.1\r\n\r\n", from_loopback=False)
    assert (status, body) == ("403 Forbidden", b"metrics are served to loopback callers only\n")
    for path in (b"/healthz", b"/livez", b"/readyz"):
        assert server.respond(b"GET " + path + b" HTTP/1.1\r\n\r\n",
                              from_loopback=False)[0] == "200 OK"


@pytest.mark.parametrize(("peer", "loopback"), [
    (("127.0.0.1", 5), True), (("127.3.4.5", 5), True), (("::1", 5, 0, 0), True),
    (("::ffff:127.0.0.1", 5, 0, 0), True), (("10.250.0.2", 5), False),
    (("::ffff:10.0.0.1", 5, 0, 0), False), (("fe80::1%eth0", 5, 0, 2), False),
    (None, False), ("/run/x.sock", False), (("not-an-ip", 5), False)])
def test_loopback_peers(peer: object, loopback: bool) -> None:
    assert is_loopback_peer(peer) is loopback


def test_a_real_connection_from_off_loopback_gets_health_but_not_metrics() -> None:
    """Through real sockets: the status socket on every address, a caller on another."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")

    async def scenario() -> tuple[bytes, bytes, bytes]:
        sock = socket.socket()
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = StatusServer(Registry().render)
        await server.start(sock)
        try:
            return (await _get(address, port, "/metrics"), await _get(address, port, "/healthz"),
                    await _get("127.0.0.1", port, "/metrics"))
        finally:
            await server.stop()

    remote_metrics, remote_health, local_metrics = asyncio.run(scenario())
    assert remote_metrics.startswith(b"HTTP/1.1 403 ")
    assert remote_health.startswith(b"HTTP/1.1 200 ")
    assert local_metrics.startswith(b"HTTP/1.1 200 ")


async def _get(host: str, port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


def _non_loopback_address() -> str | None:
    """An IPv4 address of this host's own interfaces other than loopback; connecting
    to it from here stays on this machine (local delivery)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None
