"""Benchmark of the service proxy's syncs against raw ``iptables-restore`` (root only).

For each backend and size (Services × 5 endpoints), the real ``Proxier`` (build,
plan, restore; no API server: objects are fed to its tracker directly) runs in a
throwaway namespace ``mp-b<run>-…``, and a *twin* namespace receives the very same
payloads through a bare ``iptables-restore`` call — the floor: what the kernel and
iptables cost with no Python around them. Scenarios:

- initial sync (empty namespace); the floor is the same payloads, and separately
  the whole ruleset as ONE payload (what a naive proxy would send; capped);
- periodic full resync (rewrite everything, delete nothing);
- one endpoint changed; one Service added; one Service removed (median of 5), and
  the deferred cleanup of that removal's leftover rule (``Proxier.collect``).

Targets (issue 5), default backend at 10,000 Services: initial < 20 s, endpoint
change < 100 ms, Service added/removed < 150 ms; at 1,000 Services a full sync
≤ 1.3 × the floor. All namespaces are deleted at the end, even on failure.

    .venv/bin/python bench/proxy.py [--sizes 1000,10000] [--backends nft,legacy]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recording import recording_proxier, scratch_namespace  # noqa: E402

from nodeagent.proxy.apply import LIMITS, Backend  # noqa: E402
from nodeagent.proxy.plan import Limits, Payload  # noqa: E402
from nodeagent.proxy.ruleset import render  # noqa: E402

ENDPOINTS = 5
REPEATS = 5
ONE_PAYLOAD_CAP = 60.0  # seconds; nft needs minutes for 10k Services in one payload


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"namespace": f"ns{i % 50}", "name": f"svc{i}", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int, version: int = 1, shift: int = 0) -> dict[str, Any]:
    return {"metadata": {"namespace": f"ns{i % 50}", "name": f"svc{i}-abc",
                         "resourceVersion": str(version),
                         "labels": {"kubernetes.io/service-name": f"svc{i}"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.244.{(i * ENDPOINTS + j + shift) // 250 % 256}."
                                         f"{(i * ENDPOINTS + j + shift) % 250 + 2}"],
                           "conditions": {"ready": True}} for j in range(ENDPOINTS)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class Twin:
    """A namespace that gets every payload the proxier sent, by bare iptables-restore."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def replay(self, payloads: list[Payload]) -> float:
        started = time.perf_counter()
        for p in payloads:
            self.backend.restore(p.text)
        return time.perf_counter() - started


def run_size(kind: str, n: int, run: str, made: list[str]) -> dict[str, tuple[float, float]]:
    def ns(role: str) -> str:
        return scratch_namespace(f"{run}-{kind}-{n}-{role}", made)

    main_ns, twin_ns = ns("agent"), ns("twin")
    proxier, sent = recording_proxier(Backend(kind, main_ns), "bench")
    twin = Twin(Backend(kind, twin_ns))
    t = proxier.tracker
    for i in range(n):
        t.service_added(service(i))
        t.slice_added(endpoint_slice(i))
    results: dict[str, tuple[float, float]] = {}

    def measure(label: str, act: Callable[[], None]) -> None:
        sent.clear()
        started = time.perf_counter()
        act()
        ours = time.perf_counter() - started
        floor = twin.replay(list(sent))
        results[label] = (ours, floor)

    measure("initial sync", lambda: proxier.sync(t.everything()))
    results["initial: payloads"] = (float(len(sent)), float(len(sent)))
    # The whole ruleset as one payload, into a third, empty namespace.
    one = ns("one")
    text = render(proxier.ruleset)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        subprocess.run(["ip", "netns", "exec", one, f"iptables-{kind}-restore", "--noflush"],
                       input=text, text=True, check=True, timeout=ONE_PAYLOAD_CAP)
        single = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        single = float("inf")
    subprocess.run(["ip", "netns", "delete", one], check=False)
    made.remove(one)
    results["initial, whole ruleset as one payload (floor)"] = (single, single)
    results["payload size (MB)"] = (len(text) / 1e6, len(text) / 1e6)

    def full() -> None:
        proxier.need_full = True
        proxier.sync({})

    measure("full resync", full)

    samples: dict[str, list[tuple[float, float]]] = {
        "endpoint changed": [], "Service added": [], "Service removed": [],
        "leftovers of one removal collected": []}
    for r in range(REPEATS):
        i = (r * 7919) % n
        t.slice_updated(endpoint_slice(i), endpoint_slice(i, version=2 + r, shift=1 + r))
        changes, _ = t.take()
        measure("x", lambda changes=changes: proxier.sync(changes))
        samples["endpoint changed"].append(results.pop("x"))
        new = n + r
        t.service_added(service(new))
        t.slice_added(endpoint_slice(new))
        changes, _ = t.take()
        measure("x", lambda changes=changes: proxier.sync(changes))
        samples["Service added"].append(results.pop("x"))
        t.service_deleted(service(new))
        t.slice_deleted(endpoint_slice(new))
        changes, _ = t.take()
        measure("x", lambda changes=changes: proxier.sync(changes))
        samples["Service removed"].append(results.pop("x"))
        # the removal left its KUBE-SERVICES rule falling through; the agent deletes it
        # in a batch once changes are quiet: timed here for one removal
        measure("x", proxier.collect)
        samples["leftovers of one removal collected"].append(results.pop("x"))
    for label, values in samples.items():
        results[label] = (statistics.median(v[0] for v in values),
                          statistics.median(v[1] for v in values))
    problems = proxier.check()
    if problems:
        print(f"  !! drift after the run: {problems[:3]}", file=sys.stderr)
    for name in (main_ns, twin_ns):
        subprocess.run(["ip", "netns", "delete", name], check=False)
        made.remove(name)
    return results


def fmt(seconds: float) -> str:
    if seconds == float("inf"):
        return f"> {ONE_PAYLOAD_CAP:.0f} s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--backends", default="nft,legacy")
    parser.add_argument("--max-chains", type=int, default=None,
                        help="override the nft payload limit (chains per payload)")
    args = parser.parse_args()
    # SIGTERM runs the cleanup below too (the default handler would skip it)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if os.geteuid() != 0:
        print("bench/proxy.py needs root (network namespaces)", file=sys.stderr)
        return 1
    if args.max_chains is not None:
        LIMITS["nft"] = Limits(max_chains=args.max_chains)
    run = f"mp-b{secrets.token_hex(3)}"
    made: list[str] = []
    try:
        for kind in args.backends.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"\n== {kind}, {n} Services x {ENDPOINTS} endpoints "
                      f"(payload limit: {LIMITS[kind].max_chains or 'none'} chains)", flush=True)
                results = run_size(kind, n, run, made)
                print(f"  {'scenario':<46} {'proxy':>10} {'floor':>10} {'ratio':>7}")
                for label, (ours, floor) in results.items():
                    if "payloads" in label or "MB" in label:
                        print(f"  {label:<46} {ours:>10.1f}")
                        continue
                    if "one payload" in label:
                        print(f"  {label:<46} {'':>10} {fmt(floor):>10}")
                        continue
                    ratio = ours / floor if floor else float("nan")
                    print(f"  {label:<46} {fmt(ours):>10} {fmt(floor):>10} {ratio:>6.2f}x",
                          flush=True)
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "delete", name], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
