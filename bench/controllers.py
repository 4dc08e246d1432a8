"""EndpointSlice controller benchmark: convergence at 1,000 Services × 5 pods, readiness flips.

Run: ``.venv/bin/python bench/controllers.py`` (add ``--services 200`` for a quick run).
It starts a real ``mp-apiserver`` (temporary SQLite file) and a real
``mp-controllers`` on free loopback ports, then measures, as a client sees it
through a watch on EndpointSlices:

1. **convergence**: with the controller running, create the Services and their
   pods (each pod: create, then a ``/status`` write with its IP and Ready=True) as
   fast as the API server takes them; the figure is the time from the last
   write's answer to the moment every Service's slices list exactly its pods,
   all ready. Target < 10 s.
2. **readiness flip**: flip one pod's Ready condition at a time (100 flips,
   alternating down and up over distinct pods) and time each from the write to
   the slice watch event showing it. Target p99 < 200 ms. The controller-side
   part (watch receipt minus the slice's ``last-change-trigger-time``) is printed
   too.
3. **restart**: kill the controller and start it again; time to ``/readyz`` and
   the number of slice writes it makes (minimal churn says 0).
4. **cold start**: kill the controller, delete every managed slice, start it
   again: the time until every Service's slices are back, all written by a
   controller that has to list everything first.

Writes go through a few keep-alive HTTP/1.1 connections with a minimal client,
so the benchmark itself costs little of the CPU the three processes share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import Conn, admin_tls, free_port  # noqa: E402

NS = "default"
POD = "/api/v1/namespaces/default/pods"
SVC = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


class Pool:
    """Keep-alive connections, one request in flight per connection. A connection
    the server closed while idle (uvicorn does after 5 s) is reopened once."""

    def __init__(self, port: int, conns: list[Conn]) -> None:
        self.port = port
        self.free: asyncio.Queue[Conn] = asyncio.Queue()
        for c in conns:
            self.free.put_nowait(c)
        self.conns = conns

    async def request(self, method: str, path: str, body: dict | None = None,
                      content_type: str = "application/json") -> bytes:
        conn = await self.free.get()
        try:
            try:
                status, data = await conn.request(method, path, body, content_type)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn.close()
                self.conns.remove(conn)
                conn = await Conn.open(self.port)
                self.conns.append(conn)
                status, data = await conn.request(method, path, body, content_type)
        finally:
            self.free.put_nowait(conn)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
        return data

    def close(self) -> None:
        for c in self.conns:
            c.close()


def service_body(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i:04d}", "namespace": NS},
            "spec": {"selector": {"app": f"svc-{i:04d}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def pod_body(i: int, j: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"svc-{i:04d}-{j}", "namespace": NS,
                         "labels": {"app": f"svc-{i:04d}"}},
            "spec": {"nodeName": "bench-node",
                     "containers": [{"name": "main", "image": "busybox"}]}}


def pod_ip(i: int, j: int) -> str:
    n = i * 8 + j + 1
    return f"10.244.{n // 250}.{n % 250 + 1}"


def status_patch(ip: str, ready: bool) -> dict:
    return {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


class SliceWatch:
    """Follows every EndpointSlice: ready addresses per Service, and waiters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ready: dict[str, dict[str, set[str]]] = {}  # service → slice → ready IPs
        self.state: dict[str, bool] = {}  # ip → ready, as the slices say
        self.events = 0
        self.trigger_lag: list[float] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=None, verify=Conn.tls or True
                                     ) as client:
            params = {"watch": "true", "resourceVersion": "0"}
            async with client.stream("GET", SLICES, params=params) as resp:
                async for line in resp.aiter_lines():
                    if line:
                        self._apply(json.loads(line), time.monotonic())

    def _apply(self, event: dict, now: float) -> None:
        obj = event["object"]
        meta = obj.get("metadata", {})
        service = meta.get("labels", {}).get("kubernetes.io/service-name")
        if not service:
            return
        self.events += 1
        name = meta["name"]
        slices = self.ready.setdefault(service, {})
        if event["type"] == "DELETED":
            slices.pop(name, None)
        else:
            ips = set()
            for e in obj.get("endpoints") or []:
                ip, ok = e["addresses"][0], bool(e["conditions"].get("ready"))
                self.state[ip] = ok
                if ok:
                    ips.add(ip)
            slices[name] = ips
            trigger = meta.get("annotations", {}).get(TRIGGER)
            if trigger and event["type"] == "MODIFIED":
                written = datetime.fromisoformat(trigger.replace("Z", "+00:00")).timestamp()
                self.trigger_lag.append(time.time() - written)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(now)
                self._waiters.remove((predicate, future))

    async def until(self, predicate: Callable[[], bool], timeout: float) -> float:
        """Monotonic time of the event after which ``predicate`` first held."""
        if predicate():
            return time.monotonic()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return await asyncio.wait_for(future, timeout)

    def ready_count(self, service: str) -> int:
        return sum(len(ips) for ips in self.ready.get(service, {}).values())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def wait_http(url: str, timeout: float = 30.0, verify: ssl.SSLContext | bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered 200")


def slice_writes(metrics_url: str) -> int:
    total = 0
    for line in httpx.get(metrics_url + "/metrics", timeout=5).text.splitlines():
        if line.startswith('miniplane_api_writes_total{controller="endpointslice"'):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def wait_all_synced(metrics_url: str, services: int, timeout: float = 120.0) -> None:
    """Until the EndpointSlice controller has reconciled every Service (each is queued
    once by the initial list) and its queue is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, depth = 0, 1
        for line in httpx.get(metrics_url + "/metrics", timeout=5).text.splitlines():
            if line.startswith('miniplane_reconcile_total{controller="endpointslice"'):
                done += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith('miniplane_workqueue_depth{name="endpointslice"}'):
                depth = int(float(line.rsplit(" ", 1)[1]))
        if done >= services and depth == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("the restarted controller never worked through every Service")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def bench(api_port: int, metrics_url: str, restart: Callable[[], float],
                kill: Callable[[], None], *,
                services: int, per_service: int, flips: int, connections: int) -> None:
    url = f"https://127.0.0.1:{api_port}"
    pool = Pool(api_port, [await Conn.open(api_port) for _ in range(connections)])
    watch = SliceWatch(url)
    await watch.start()
    try:
        print(f"creating {services} Services × {per_service} pods "
              f"({services * (1 + 2 * per_service)} writes)...", flush=True)
        started = time.monotonic()

        async def one_service(i: int) -> None:
            await pool.request("POST", SVC, service_body(i))
            for j in range(per_service):
                await pool.request("POST", POD, pod_body(i, j))
                await pool.request("PATCH", f"{POD}/svc-{i:04d}-{j}/status",
                                   status_patch(pod_ip(i, j), True),
                                   "application/strategic-merge-patch+json")

        pending = set()
        for i in range(services):
            pending.add(asyncio.create_task(one_service(i)))
            if len(pending) >= connections * 2:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        last_write = time.monotonic()
        writes = services * (1 + 2 * per_service)
        print(f"  writes done in {last_write - started:.1f}s "
              f"({writes / (last_write - started):.0f} writes/s)", flush=True)

        names = [f"svc-{i:04d}" for i in range(services)]
        converged_at = await watch.until(
            lambda: all(watch.ready_count(n) == per_service for n in names), timeout=600)
        converge = max(0.0, converged_at - last_write)
        print(f"convergence: {converge:.2f}s from the last write "
              f"({converged_at - started:.1f}s from the first); {slice_writes(metrics_url)} "
              f"slice writes, {watch.events} slice events", flush=True)

        latencies: list[float] = []
        watch.trigger_lag.clear()
        for k in range(flips):
            i, j = (k // 2 * 7919) % services, k % per_service
            ip = pod_ip(i, j)
            ready = k % 2 == 1  # down, then up again, on alternating pods
            if not ready:
                i, j = ((k + 1) // 2 * 7919) % services, (k + 1) % per_service
                ip = pod_ip(i, j)
            t0 = time.monotonic()
            await pool.request("PATCH", f"{POD}/svc-{i:04d}-{j}/status",
                               status_patch(ip, ready),
                               "application/strategic-merge-patch+json")
            seen = await watch.until(lambda ip=ip, ready=ready: watch.state.get(ip) is ready,
                                     timeout=30)
            latencies.append(seen - t0)
        print(f"readiness flip → slice watch event, {flips} flips: "
              f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.1f} ms", flush=True)
        if watch.trigger_lag:
            print(f"  of which change trigger → slice event (annotation): "
                  f"p50 {percentile(watch.trigger_lag, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(watch.trigger_lag, 0.99) * 1000:.1f} ms", flush=True)

        before = slice_writes(metrics_url)
        synced = await asyncio.to_thread(restart)
        await asyncio.to_thread(wait_all_synced, metrics_url, services)
        after = slice_writes(metrics_url)
        print(f"controller restart at this scale: ready (informers synced) in {synced:.2f}s, "
              f"{after} slice writes after it (before: {before} in the old process)",
              flush=True)

        kill()
        managed = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
        await pool.request("DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
                                     f"?labelSelector={managed}")
        await watch.until(lambda: all(watch.ready_count(n) == 0 for n in names), timeout=120)
        t0 = time.monotonic()
        await asyncio.to_thread(restart)
        done = await watch.until(
            lambda: all(watch.ready_count(n) == per_service for n in names), timeout=600)
        print(f"cold start: every slice deleted, controller started: all {services} Services' "
              f"slices back in {done - t0:.2f}s (process start, list, "
              f"{slice_writes(metrics_url)} slice writes)", flush=True)
    finally:
        await watch.stop()
        pool.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods-per-service", type=int, default=5)
    p.add_argument("--flips", type=int, default=100)
    p.add_argument("--connections", type=int, default=8)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mp-bench-controllers-"))
    api_port, metrics_port = free_port(), free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    api = start([str(BIN / "mp-apiserver"), "--listen", f"127.0.0.1:{api_port}",
                 "--storage-url", f"sqlite:///{tmp}/state.db", "--log-level", "warning"],
                tmp / "apiserver.log")
    procs = [api]
    kubeconfig = tmp / "pki" / "admin.kubeconfig"  # made by the API server on first start

    def start_controllers() -> subprocess.Popen:
        proc = start([str(BIN / "mp-controllers"), "--server", f"https://127.0.0.1:{api_port}",
                      "--kubeconfig", str(kubeconfig),
                      "--metrics-listen", f"127.0.0.1:{metrics_port}",
                      # measures a restart's cost, not waiting out a killed leader's Lease
                      "--leader-elect=false",
                      "--log-level", "warning"], tmp / "controllers.log")
        procs.append(proc)
        return proc

    def kill() -> None:
        if procs[-1] is not api:
            old = procs.pop()
            old.send_signal(signal.SIGKILL)
            old.wait()

    def restart() -> float:
        kill()
        t0 = time.monotonic()
        start_controllers()
        wait_http(metrics_url + "/readyz", timeout=120)
        return time.monotonic() - t0

    try:
        wait_http(f"https://127.0.0.1:{api_port}/readyz", verify=False)
        Conn.tls = admin_tls(kubeconfig)
        start_controllers()
        wait_http(metrics_url + "/readyz")
        print(f"mp-apiserver + mp-controllers on {os.cpu_count()} CPUs; logs in {tmp}",
              flush=True)
        asyncio.run(bench(api_port, metrics_url, restart, kill, services=args.services,
                          per_service=args.pods_per_service, flips=args.flips,
                          connections=args.connections))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
