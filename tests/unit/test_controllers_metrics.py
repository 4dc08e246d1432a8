"""Metrics text, the status endpoint, the metered queue and the worker loop's accounting."""

from __future__ import annotations

import asyncio
import socket

from client.errors import Conflict
from controllers.metrics import Metrics, StatusServer
from controllers.runtime import Controller


def test_render_has_queue_reconcile_error_and_write_series():
    m = Metrics()
    m.queue("slices", lambda: 3)
    m.queue_adds["slices"] += 2
    m.reconciled("slices", "success", 0.002)
    m.reconciled("slices", "error", 0.5)
    m.wrote("slices", "create", "endpointslices")
    m.gauge("nodes_down", "Nodes down.", lambda: 1)
    text = m.render()
    for line in ('miniplane_workqueue_depth{name="slices"} 3.0',
                 'miniplane_workqueue_adds_total{name="slices"} 2.0',
                 'miniplane_reconcile_total{controller="slices",result="success"} 1.0',
                 'miniplane_reconcile_total{controller="slices",result="error"} 1.0',
                 'miniplane_reconcile_errors_total{controller="slices"} 1.0',
                 'miniplane_reconcile_duration_seconds_count{controller="slices"} 2.0',
                 'miniplane_reconcile_duration_seconds_bucket{controller="slices",le="0.0025"} '
                 '1.0',
                 'miniplane_api_writes_total{controller="slices",resource="endpointslices",'
                 'verb="create"} 1.0',
                 "# HELP nodes_down Nodes down.", "# TYPE nodes_down gauge", "nodes_down 1.0"):
        assert line in text.splitlines()


async def _get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.decode()


def test_status_server_answers_health_readiness_and_metrics():
    async def main():
        ready = False
        server = StatusServer(Metrics().render, readiness=lambda: (ready, "informers not synced"))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        port = sock.getsockname()[1]
        await server.start(sock)
        try:
            assert (await _get(port, "/healthz")).startswith("HTTP/1.1 200")
            assert (await _get(port, "/readyz")).startswith("HTTP/1.1 503")
            ready = True
            assert (await _get(port, "/readyz")).startswith("HTTP/1.1 200")
            assert "miniplane_workqueue_depth" in await _get(port, "/metrics?x=1")
            assert (await _get(port, "/nope")).startswith("HTTP/1.1 404")
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 5))


class Scripted(Controller):
    """A controller whose sync results are scripted per call."""

    name = "scripted"

    def __init__(self, metrics: Metrics, results: list) -> None:
        super().__init__(metrics)
        self.results = results
        self.seen: list[str] = []

    async def sync(self, key: str) -> float | None:
        self.seen.append(key)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def test_worker_retries_errors_requeues_deadlines_and_counts_everything():
    async def main():
        metrics = Metrics()
        controller = Scripted(metrics, [Conflict("stale"), ValueError("bug"), 0.0, None])
        task = asyncio.create_task(controller.run())
        controller.queue.add("k")
        controller.queue.add("k")  # de-duplicated: counted once
        for _ in range(500):
            if len(controller.seen) == 4:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert controller.seen == ["k"] * 4
        assert metrics.reconciles == {("scripted", "error"): 2, ("scripted", "requeue"): 1,
                                      ("scripted", "success"): 1}
        assert metrics.queue_adds["scripted"] == 4  # 1 + two retries + one requeue
        assert metrics.queue_retries["scripted"] == 2
        assert controller.queue.shutting_down

    asyncio.run(asyncio.wait_for(main(), 10))
