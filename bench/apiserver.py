"""API server benchmark: creates/s, a 10k list, watch delivery latency, vs the raw database.

Run: ``.venv/bin/python bench/apiserver.py [--storage sqlite|postgresql]`` (or ``make
bench``). It starts a real ``mp-apiserver`` on a free loopback port with a temporary
SQLite file (or a private PostgreSQL server, ``componentbase.postgres``, durable as
a real one: fsync on, synchronous commits), drives it with a minimal keep-alive
HTTP/1.1 client (so the client costs little of the two cores the server shares), and
measures the same inserts through the raw driver (``sqlite3`` or psycopg, one
transaction per insert, the same durability) in the same run, printed as ratios,
because absolute figures drift on shared machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import Conn, run_cleanly, running_apiserver  # noqa: E402

from componentbase import postgres  # noqa: E402

SVC = "/api/v1/namespaces/{ns}/services"


def service_body(name: str, stamp: float | None = None) -> bytes:
    meta: dict = {"name": name, "labels": {"app": name[:40], "bench": "yes"}}
    if stamp is not None:
        meta["annotations"] = {"bench/sent": repr(stamp)}
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                       "spec": {"selector": {"app": name[:40]},
                                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
                      ).encode()


async def create_many(port: int | list[int], ns: str, count: int, clients: int, prefix: str
                      ) -> float:
    """Create ``count`` Services with ``clients`` concurrent connections (spread over the
    API servers on ``port``, when several); returns creates/s."""
    names = iter(range(count))
    ports = port if isinstance(port, list) else [port]
    conns = [await Conn.open(ports[i % len(ports)]) for i in range(clients)]

    async def worker(conn: Conn) -> None:
        for i in names:
            status, body = await conn.request("POST", SVC.format(ns=ns),
                                              service_body(f"{prefix}-{i}"))
            if status != 201:
                raise RuntimeError(f"create failed with {status}: {body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return count / elapsed


async def make_namespace(port: int, name: str) -> None:
    conn = await Conn.open(port)
    status, body = await conn.request("POST", "/api/v1/namespaces",
                                      json.dumps({"metadata": {"name": name}}).encode())
    conn.close()
    if status != 201:
        raise RuntimeError(f"namespace create failed: {status} {body[:200]!r}")


async def time_list(port: int, ns: str, runs: int = 5) -> tuple[float, int]:
    conn = await Conn.open(port)
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        status, body = await conn.request("GET", SVC.format(ns=ns))
        times.append(time.perf_counter() - started)
        count = len(json.loads(body)["items"])
    conn.close()
    return statistics.median(times), count


async def watch_latency(port: int, ns: str, watchers: int, writes: int,
                        watch_port: int | None = None) -> tuple[float, float]:
    """p50/p99 (ms) from the moment a write is sent to its event reaching each watcher
    (watching ``watch_port``'s server, another one than the writes', when given)."""
    conn = await Conn.open(port)
    _, body = await conn.request("GET", SVC.format(ns=ns) + "?limit=1")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    latencies: list[float] = []
    done = asyncio.Event()
    received = 0

    async def watch() -> None:
        nonlocal received
        c = await Conn.open(watch_port or port)
        path = SVC.format(ns=ns) + f"?watch=1&resourceVersion={rv}&timeoutSeconds=120"
        async for line in c.stream_lines(path):
            now = time.perf_counter()
            event = json.loads(line)
            sent = event["object"]["metadata"].get("annotations", {}).get("bench/sent")
            if sent is not None:
                latencies.append((now - float(sent)) * 1000)
                received += 1
                if received == watchers * writes:
                    done.set()
        c.close()

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.sleep(1.0)  # let every watcher connect before the first write
    for _ in range(writes):
        stamp = time.perf_counter()
        status, body = await conn.request("POST", SVC.format(ns=ns),
                                          service_body(f"lat-{uuid.uuid4().hex[:10]}", stamp))
        assert status == 201, body[:200]
        await asyncio.sleep(0.02)
    await asyncio.wait_for(done.wait(), 120)
    for t in tasks:
        t.cancel()
    conn.close()
    latencies.sort()
    return (statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1])


def raw_postgres_inserts(root: Path, count: int) -> tuple[float, float]:
    """``raw_sqlite_inserts`` through psycopg on the server in ``root``, in a database
    of its own."""
    import psycopg  # noqa: PLC0415

    postgres.create_database(root, "raw")
    with psycopg.connect(host=str(root), port=postgres.SOCKET_PORT, user=postgres.USER,
                         dbname="raw", autocommit=True) as db:
        db.execute("CREATE TABLE objects (resource TEXT, namespace TEXT, name TEXT, rv BIGINT, "
                   "data TEXT, PRIMARY KEY (resource, namespace, name))")
        db.execute("CREATE TABLE events (rv BIGINT PRIMARY KEY, resource TEXT, "
                   "namespace TEXT, name TEXT, type TEXT, data TEXT, prev TEXT)")
        started = time.perf_counter()
        for i in range(count):
            data = service_body(f"raw-{i}").decode()
            with db.transaction():
                db.execute("INSERT INTO objects VALUES ('services','bench',%s,%s,%s)",
                           (f"raw-{i}", i + 1, data))
                db.execute("INSERT INTO events VALUES (%s, 'services', 'bench', %s, 'ADDED', "
                           "%s, NULL)", (i + 1, f"raw-{i}", data))
        rate = count / (time.perf_counter() - started)
        started = time.perf_counter()
        rows = db.execute("SELECT data FROM objects WHERE resource='services' "
                          "ORDER BY namespace, name").fetchall()
        body = "[" + ",".join(r[0] for r in rows) + "]"
        read = time.perf_counter() - started
        assert len(body) > 0
        return rate, read


def raw_sqlite_inserts(count: int) -> tuple[float, float]:
    """Baselines: object+event inserts/s (one transaction each), and reading all ``count`` rows."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "raw.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE objects (resource TEXT, namespace TEXT, name TEXT, rv INTEGER, "
                   "data TEXT, PRIMARY KEY (resource, namespace, name))")
        db.execute("CREATE TABLE events (rv INTEGER PRIMARY KEY, resource TEXT, namespace TEXT, "
                   "name TEXT, type TEXT, data TEXT, prev TEXT)")
        started = time.perf_counter()
        for i in range(count):
            data = service_body(f"raw-{i}").decode()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO objects VALUES ('services','bench',?,?,?)",
                       (f"raw-{i}", i + 1, data))
            db.execute("INSERT INTO events VALUES (?, 'services', 'bench', ?, 'ADDED', ?, NULL)",
                       (i + 1, f"raw-{i}", data))
            db.execute("COMMIT")
        rate = count / (time.perf_counter() - started)
        started = time.perf_counter()
        rows = db.execute("SELECT data FROM objects WHERE resource='services' "
                          "ORDER BY namespace, name").fetchall()
        body = "[" + ",".join(r[0] for r in rows) + "]"
        read = time.perf_counter() - started
        assert len(body) > 0
        db.close()
        return rate, read


async def run(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(postgres.running()) if args.storage == "postgresql" \
            else None
        await measure(args, root)


async def measure(args: argparse.Namespace, root: Path | None) -> None:
    url = postgres.create_database(root) if root is not None else None
    async with contextlib.AsyncExitStack() as servers:
        port, kubeconfig, _pid = await servers.enter_async_context(
            running_apiserver(storage_url=url))
        ports = [port]
        for _ in range(args.apiservers - 1):  # the same database and certificates
            more, _, _ = await servers.enter_async_context(running_apiserver(
                "--cert-dir", str(Path(kubeconfig).parent), storage_url=url))
            ports.append(more)
        await make_namespace(port, "bench")
        await make_namespace(port, "big")
        await make_namespace(port, "lat")
        one = await create_many(port, "bench", args.creates, 1, "one")
        sixteen = await create_many(ports, "bench", args.creates, 16, "many")
        await create_many(ports, "big", args.list_size, 16, "svc")
        list_s, listed = await time_list(ports[-1], "big")
        w1 = await watch_latency(port, "lat", 1, args.watch_writes, ports[-1])
        w100 = await watch_latency(port, "lat", 100, args.watch_writes, ports[-1])
    if root is not None:
        raw_rate, raw_read = raw_postgres_inserts(root, args.list_size)
        raw = "raw psycopg"
    else:
        raw_rate, raw_read = raw_sqlite_inserts(args.list_size)
        raw = "raw sqlite3"
    print(f"storage: {args.storage}, {args.apiservers} API server"
          + ("s (16 clients spread over them; watchers and the list on the last, writes to "
             "the first)" if args.apiservers > 1 else ""))
    print(f"creates/s, 1 client:            {one:8.0f}   ({one / raw_rate:.2f}x {raw} "
          f"{raw_rate:.0f}/s)")
    print(f"creates/s, 16 clients:          {sixteen:8.0f}   ({sixteen / raw_rate:.2f}x {raw})"
          f"   target >= 1500")
    print(f"list of {listed} services:       {list_s * 1000:8.1f} ms ({list_s / raw_read:.1f}x "
          f"{raw} read of as many rows, {raw_read * 1000:.1f} ms)   target < 300 ms")
    print(f"watch latency, 1 watcher:       p50 {w1[0]:6.1f} ms  p99 {w1[1]:6.1f} ms")
    print(f"watch latency, 100 watchers:    p50 {w100[0]:6.1f} ms  p99 {w100[1]:6.1f} ms"
          "   target p99 < 50 ms")
    print("(watch latency: from the write request being sent to the event's arrival; an upper "
          "bound on commit-to-receipt)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--creates", type=int, default=3000)
    p.add_argument("--list-size", type=int, default=10_000)
    p.add_argument("--watch-writes", type=int, default=200)
    p.add_argument("--apiservers", type=int, default=1,
                   help="API servers on the one database (more than 1 needs postgresql)")
    p.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite",
                   help="the API server's database (postgresql: a private server, as "
                        "`mpctl cluster up --storage postgresql` runs)")
    args = p.parse_args()
    if args.apiservers > 1 and args.storage != "postgresql":
        p.error("--apiservers above 1 needs --storage postgresql")
    run_cleanly(run(args))


if __name__ == "__main__":
    main()
