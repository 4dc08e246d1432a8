"""Concurrent lists: server CPU per list of 7,000 Services, one at a time and 40 at once.

Run: ``.venv/bin/python bench/lists.py``. It starts a real ``mp-apiserver`` with a
temporary SQLite file, creates the Services, then lists them serially and with 40
concurrent connections, both as consistent reads (no resourceVersion: storage)
and with ``resourceVersion=0`` (the watch cache), and prints the API server's CPU
seconds per list and the wall time per round, from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import Conn, bench_apiserver, cpu_seconds, run_cleanly, running_apiserver  # noqa: E402

PATH = "/api/v1/namespaces/big/services"


async def lists(port: int, pid: int, query: str, concurrency: int, rounds: int
                ) -> tuple[float, float]:
    """(server CPU ms per list, wall ms per round) for ``rounds`` rounds of ``concurrency``."""
    conns = [await Conn.open(port) for _ in range(concurrency)]

    async def one(conn: Conn) -> None:
        status, body = await conn.request("GET", PATH + query)
        assert status == 200, body[:200]

    cpu, started = cpu_seconds(pid), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(one(c) for c in conns))
    wall = (time.perf_counter() - started) / rounds
    cpu = (cpu_seconds(pid) - cpu) / (rounds * concurrency)
    for c in conns:
        c.close()
    return cpu * 1000, wall * 1000


async def run(args: argparse.Namespace) -> None:
    bench = bench_apiserver()
    async with running_apiserver() as (port, _kubeconfig, pid):
        await bench.make_namespace(port, "big")
        await bench.create_many(port, "big", args.size, 16, "svc")
        print(f"{args.size} Services; API server CPU per list (ms) and wall time per round (ms)")
        for label, query in (("consistent (storage)", ""),
                             ("resourceVersion=0 (cache)", "?resourceVersion=0")):
            await lists(port, pid, query, 1, 1)  # warm (loads the cache)
            serial = await lists(port, pid, query, 1, args.rounds * 4)
            many = await lists(port, pid, query, args.concurrency, args.rounds)
            print(f"{label:28} serial: {serial[0]:7.1f} ms CPU/list ({serial[1]:6.0f} ms each); "
                  f"{args.concurrency} at once: {many[0]:7.1f} ms CPU/list "
                  f"({many[1]:6.0f} ms per round), {ratio(many[0], serial[0])} serial")


def ratio(part: float, whole: float) -> str:
    """``part / whole`` as ``1.5x``; a CPU clock tick may be more than a small run took."""
    return f"{part / whole:.1f}x" if whole > 0 else "n/a (too few ticks; more --rounds)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=7000)
    p.add_argument("--concurrency", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    run_cleanly(run(p.parse_args()))


if __name__ == "__main__":
    main()
