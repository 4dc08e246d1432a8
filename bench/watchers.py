"""Watch fan-out benchmark: creates/s and create p99 while 500 watchers follow every event.

Run: ``.venv/bin/python bench/watchers.py`` (defaults: 500 watchers in 2 client
processes, 32 writers for 15 s). It starts a real ``mp-apiserver`` on a free
loopback port with a temporary SQLite file; the watchers watch the namespace the
writers create Services in, so every create is an event for every watcher.

The writers are closed-loop (each sends its next create when the last one is
answered), so creates/s is the highest rate the server sustains with the watchers
attached. Watchers are cheap on purpose: non-blocking TLS sockets in a
``selectors`` loop per process, scanning the raw bytes for ``"resourceVersion"``
instead of parsing JSON. A watcher whose stream ends (the server closed it for
falling behind) resumes from the last resourceVersion it saw, as a client would;
resumes are counted. At the end every watcher must have seen every create's
revision exactly once and in increasing order.

Delivery latency is from a create being sent to its event arriving at a watcher,
sampled on every 10th revision (an upper bound on commit-to-receipt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import re
import selectors
import socket
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import Conn, admin_tls, bench_apiserver, cpu_seconds, run_cleanly, running_apiserver  # noqa: E402

NS = "fanout"
SVC = f"/api/v1/namespaces/{NS}/services"
RV = re.compile(rb'"resourceVersion":"(\d+)"')
SAMPLE = 10  # latency sampled on revisions divisible by this


# ---------------------------------------------------------------- watcher processes


class Stream:
    """One watch connection: raw bytes in, revisions counted and checked for order."""

    def __init__(self, port: int, tls: ssl.SSLContext, rv: int) -> None:
        self.port, self.tls = port, tls
        self.last = rv
        self.count = 0
        self.in_order = True
        self.resumes = 0
        self.samples: list[tuple[int, float]] = []
        self.buf = b""
        self.sock: ssl.SSLSocket | None = None

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self.tls.wrap_socket(raw, server_hostname="127.0.0.1")
        sock.sendall(f"GET {SVC}?watch=1&resourceVersion={self.last}&timeoutSeconds=3600 "
                     f"HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.setblocking(False)
        self.sock, self.buf = sock, b""
        return sock

    def feed(self, data: bytes, now: float) -> bool:
        """Take bytes; False when the response ended (the server closed the stream)."""
        buf = self.buf + data
        found = RV.findall(buf)
        if found:
            rvs = [self.last, *map(int, found)]
            if not all(map(operator.lt, rvs, rvs[1:])):
                self.in_order = False
            self.last = rvs[-1]
            self.count += len(found)
            self.samples += [(rv, now) for rv in rvs[1:] if rv % SAMPLE == 0]
            buf = buf[buf.rindex(b'"resourceVersion":"'):]
            buf = buf[buf.index(b'"', 19) + 1:]  # past the last revision
        if b'"type":"ERROR"' in data:
            self.in_order = False  # an ERROR event: nothing should send one here
        self.buf = buf
        if len(self.buf) > 65536:
            self.buf = self.buf[-4096:]  # no revision in it: keep only a possible split token
        return not self.buf.endswith(b"\r\n0\r\n\r\n")


def watcher_process(port: int, kubeconfig: str, count: int, rv: int) -> None:
    """Run ``count`` watches until told the last revision on stdin; print results as JSON."""
    tls = admin_tls(kubeconfig)
    sel = selectors.DefaultSelector()
    streams = [Stream(port, tls, rv) for _ in range(count)]
    for s in streams:
        sel.register(s.connect(), selectors.EVENT_READ, s)
    print("ready", flush=True)
    stdin = sys.stdin.buffer
    sel.register(stdin, selectors.EVENT_READ, None)
    target: int | None = None
    deadline: float | None = None
    while True:
        if target is not None and (all(s.last >= target for s in streams)
                                   or time.monotonic() > (deadline or 0)):
            break
        for key, _ in sel.select(timeout=1.0):
            if key.data is None:
                line = stdin.readline()
                sel.unregister(stdin)
                target = int(line)
                deadline = time.monotonic() + 120
                continue
            s: Stream = key.data
            now = time.monotonic()
            alive = True
            while True:
                try:
                    data = s.sock.recv(262144)  # type: ignore[union-attr]
                except ssl.SSLWantReadError:
                    break
                if not data:
                    alive = False
                    break
                if not s.feed(data, now):
                    alive = False
                    break
            if not alive:
                sel.unregister(s.sock)
                s.sock.close()  # type: ignore[union-attr]
                s.resumes += 1
                sel.register(s.connect(), selectors.EVENT_READ, s)
    json.dump({"streams": [{"count": s.count, "in_order": s.in_order, "last": s.last,
                            "resumes": s.resumes, "samples": s.samples} for s in streams]},
              sys.stdout)
    sys.stdout.flush()


# ---------------------------------------------------------------- the writers


async def writers(port: int, clients: int, seconds: float
                  ) -> tuple[list[float], dict[int, float], float]:
    """Closed-loop creates for ``seconds``: latencies, revision -> send time, elapsed."""
    bench = bench_apiserver()
    conns = [await Conn.open(port) for _ in range(clients)]
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def worker(conn: Conn) -> None:
        while time.monotonic() < stop:
            body = bench.service_body(f"w-{next(counter)}")
            t0 = time.monotonic()
            status, answer = await conn.request("POST", SVC, body)
            latencies.append(time.monotonic() - t0)
            if status != 201:
                raise RuntimeError(f"create failed with {status}: {answer[:200]!r}")
            m = RV.search(answer)
            assert m is not None
            sent_at[int(m.group(1))] = t0

    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.monotonic() - started
    for c in conns:
        c.close()
    return latencies, sent_at, elapsed


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


async def run(args: argparse.Namespace) -> None:
    async with running_apiserver(*args.server_flag) as (port, kubeconfig, pid):
        conn = await Conn.open(port)
        status, body = await conn.request("POST", "/api/v1/namespaces",
                                          {"metadata": {"name": NS}})
        assert status == 201, body[:200]
        _, body = await conn.request("GET", SVC + "?limit=1")
        start_rv = int(json.loads(body)["metadata"]["resourceVersion"])
        conn.close()
        per = [args.watchers // args.procs + (i < args.watchers % args.procs)
               for i in range(args.procs)]
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--watcher-process", str(port), kubeconfig, str(n),
            str(start_rv), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2**30) for n in per]
        for p in procs:
            assert p.stdout is not None
            assert (await p.stdout.readline()).strip() == b"ready"
        cpu0 = (cpu_seconds(pid), sum(cpu_seconds(p.pid) for p in procs),
                cpu_seconds(os.getpid()))
        latencies, sent_at, elapsed = await writers(port, args.clients, args.seconds)
        server_cpu = cpu_seconds(pid) - cpu0[0]
        client_cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0[1]
        writer_cpu = cpu_seconds(os.getpid()) - cpu0[2]
        last = max(sent_at)
        results = []
        for p in procs:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(f"{last}\n".encode())
            await p.stdin.drain()
        for p in procs:
            out, _ = await p.communicate()
            results += json.loads(out)["streams"]
    bench = bench_apiserver()
    raw_rate, _ = bench.raw_sqlite_inserts(args.raw_inserts)
    creates = len(latencies)
    rate = creates / elapsed
    complete = sum(1 for r in results if r["count"] == creates and r["last"] == last)
    ordered = sum(1 for r in results if r["in_order"])
    delivery = [(t - sent_at[rv]) for r in results for rv, t in r["samples"] if rv in sent_at]
    resumes = sum(r["resumes"] for r in results)
    print(f"watchers: {len(results)} in {args.procs} processes; writers: {args.clients} for "
          f"{elapsed:.1f} s")
    print(f"creates/s with {len(results)} watchers: {rate:8.0f}   ({rate / raw_rate:.2f}x raw "
          f"sqlite3 {raw_rate:.0f}/s)   target >= 500")
    print(f"create latency:  p50 {pct(latencies, 0.5) * 1000:7.1f} ms  "
          f"p99 {pct(latencies, 0.99) * 1000:7.1f} ms   target p99 < 1000 ms")
    print(f"delivery latency (send -> watcher): p50 {pct(delivery, 0.5) * 1000:7.1f} ms  "
          f"p99 {pct(delivery, 0.99) * 1000:7.1f} ms  max {max(delivery or [0]) * 1000:.0f} ms")
    print(f"every event to every watcher: {complete}/{len(results)} complete "
          f"({creates} events each), {ordered}/{len(results)} in order, {resumes} resumes")
    print(f"CPU while writing: server {server_cpu:.1f} s ({server_cpu / creates * 1000:.2f} ms "
          f"per create), watcher clients {client_cpu:.1f} s, writers {writer_cpu:.1f} s, of "
          f"{elapsed * (os.cpu_count() or 1):.0f} core-seconds (the rest: other processes)")
    if complete != len(results) or ordered != len(results):
        sys.exit(1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--watcher-process":
        port, kubeconfig, count, rv = sys.argv[2:6]
        watcher_process(int(port), kubeconfig, int(count), int(rv))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--watchers", type=int, default=500)
    p.add_argument("--procs", type=int, default=2, help="watcher client processes")
    p.add_argument("--clients", type=int, default=32, help="concurrent writers")
    p.add_argument("--seconds", type=float, default=15.0, help="how long the writers write")
    p.add_argument("--raw-inserts", type=int, default=3000)
    p.add_argument("--server-flag", action="append", default=[],
                   help="an extra mp-apiserver argument (repeatable), e.g. --server-flag=--x=1")
    run_cleanly(run(p.parse_args()))


if __name__ == "__main__":
    main()
