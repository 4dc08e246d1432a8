"""End-to-end benchmark on a real 2-node cluster: ``cluster up`` time, network programming latency.

Run as root: ``.venv/bin/python bench/e2e.py`` (``--services 200 --flips 20`` for a
quick run). Everything happens in one cluster of its own, ``b<6 hex>``, started with
``mpctl cluster up --detach`` and a temporary ``--state-dir``; ``mpctl cluster down``
runs at the end whatever happens (failure, Ctrl-C, SIGTERM), and the two scratch
namespaces of the floor measurement are deleted too.

1. **cluster up**: wall time of ``mpctl cluster up --nodes 2 --detach -q`` (the
   command returns once both nodes are Ready and kube-dns answers from them).
   Target < 30 s.
2. **background load**: 1,000 selector-less Services × 3 hand-written, ready
   EndpointSlice endpoints (addresses in the nodes' pod CIDRs; nothing answers
   there), created through ``client.http.AsyncClient``; then wait until every one of
   them has its 3 endpoint jumps in ``iptables-nft-save -t nat`` of both nodes.
3. **network programming latency**: 4 real pods (2 pinned to each node) behind a
   Service with a selector; each serves ``/healthz`` with 200 only while a file on
   the host exists, and has an httpGet readiness probe every second with
   failureThreshold 1. Flip one pod at a time (not ready, then ready again, then
   the next pod) by removing/creating its file, 100 flips. Each flip is timed
   **from** the moment this benchmark's watch on Pods receives the Pod update whose
   Ready condition flipped (receipt time on this host; probe delay excluded) **to**
   the first poll showing the pod's ``KUBE-SEP-…`` jump in (or out of) the Service's
   ``KUBE-SVC-…`` chain in the nat table of EVERY node. Polling reads only that
   chain, with a netlink dump (NFT_MSG_GETRULE filtered by table and chain) on a
   socket opened inside each node namespace: ~0.1 ms per read, no process spawned,
   so polling every few ms steals little of the two cores. After each flip the
   same chain is checked with ``iptables-nft -S`` as a cross-check of the reader.
   Flips are paced at least ``--gap`` (1 s = the agents' min-sync-period) after the
   previous flip's rules landed, so each is a change after a quiet spell (a burst
   would be coalesced into the next sync by design). Target p99 < 1 s.
4. **floor** (the ratio's baseline, same run): a scratch namespace gets the very
   ruleset the nodes have (a ``Proxier`` fed the cluster's Services and slices),
   and a twin namespace the same payloads by bare ``iptables-nft-restore``; then
   one endpoint of the flip Service is toggled 20 times and the twin replays each
   partial payload. Its median is the floor: what the kernel and iptables cost for
   one such change with nothing else around it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recording import recording_proxier, scratch_namespace  # noqa: E402

from apimachinery.kinds import ENDPOINTSLICE, NODE, POD, SERVICE  # noqa: E402
from client.config import ClientConfig, load_config  # noqa: E402
from client.errors import ApiError  # noqa: E402
from client.http import AsyncClient, Client  # noqa: E402
from componentbase.netns import run_in_netns  # noqa: E402
from nodeagent.proxy import chains  # noqa: E402
from nodeagent.proxy.apply import Backend  # noqa: E402

BIN = Path(sys.executable).parent
NS = "default"
FLIP = "e2e-flip"
PORT = 8080
FLOOR_REPEATS = 20
SERVICE_LABEL = "kubernetes.io/service-name"
# The pods' server: /healthz answers 200 while the file argv[1] exists, 503 otherwise.
POD_SERVER = """\
import http.server, os, sys
ready = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != "/healthz" or os.path.exists(ready)
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""


class BenchError(RuntimeError):
    """The benchmark can't go on; the message says why."""


# --------------------------------------------------------------------------- rules reader

NETLINK_NETFILTER = 12
NFT_GETRULE = (10 << 8) | 7  # NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETRULE
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN = 1, 2


def _attr(kind: int, text: str) -> bytes:
    data = text.encode() + b"\0"
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


class ChainReader:
    """Reads one nft chain's rules over netlink, from inside a node's namespace.

    Why not ``nft list chain``: a process per read costs ~8 ms of CPU, so polling two
    nodes every few ms would eat a core of the two the cluster runs on. The dump is
    filtered by the kernel to one (table, chain) and comes back in ~0.1 ms; a jump to
    chain X shows in it as the verdict attribute ``X\\0``.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.sock = run_in_netns(netns, lambda: socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER))
        self.sock.bind((0, 0))
        self.seq = 0

    def dump(self, table: str, chain: str) -> bytes:
        """The raw rule messages of ``table``/``chain`` (empty if the chain is empty or
        absent); retried when the ruleset changed during the dump."""
        while True:
            self.seq += 1
            body = struct.pack("=BBH", socket.AF_INET, 0, 0) + \
                _attr(NFTA_RULE_TABLE, table) + _attr(NFTA_RULE_CHAIN, chain)
            self.sock.send(struct.pack("=IHHII", 16 + len(body), NFT_GETRULE,
                                       NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0) + body)
            parts: list[bytes] = []
            interrupted = False
            while True:
                data = self.sock.recv(1 << 20)
                off, done = 0, False
                while off + 16 <= len(data):
                    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, off)
                    if seq == self.seq:
                        interrupted |= bool(flags & NLM_F_DUMP_INTR)
                        if kind == NLMSG_DONE:
                            done = True
                        elif kind == NLMSG_ERROR:
                            err = struct.unpack_from("=i", data, off + 16)[0]
                            if err:
                                raise OSError(-err, f"netlink dump of {table} {chain} in "
                                                    f"{self.netns}: {os.strerror(-err)}")
                            done = True
                        else:
                            parts.append(data[off + 16:off + length])
                    off += (length + 3) & ~3
                if done:
                    break
            if not interrupted:
                return b"".join(parts)

    def endpoint_in(self, chain: str, sep: str) -> bool | None:
        """Whether nat ``chain`` jumps to ``sep``; None when it has no endpoint jump at
        all (absent or empty: the flip Service always keeps others, so no verdict)."""
        data = self.dump("nat", chain)
        if b"KUBE-SEP-" not in data:
            return None
        return (sep.encode() + b"\0") in data

    def close(self) -> None:
        self.sock.close()


def iptables_jumps(netns: str, chain: str) -> set[str]:
    """The jump targets of a nat chain by ``iptables-nft -S`` (the cross-check)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "iptables-nft", "-t", "nat", "-S", chain],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise BenchError(f"iptables-nft -S {chain} in {netns}: {out.stderr.strip()}")
    return {line.rsplit(" -j ", 1)[1].split()[0] for line in out.stdout.splitlines()
            if " -j " in line}


def nat_save(netns: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", netns, "iptables-nft-save", "-t", "nat"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise BenchError(f"iptables-nft-save in {netns}: {out.stderr.strip()}")
    return out.stdout


def endpoint_jumps(save: str) -> dict[str, int]:
    """KUBE-SVC chain → number of its jumps to KUBE-SEP chains, from iptables-save text."""
    counts: dict[str, int] = {}
    for line in save.splitlines():
        if line.startswith("-A KUBE-SVC-") and "-j KUBE-SEP-" in line:
            name = line.split(" ", 2)[1]
            counts[name] = counts.get(name, 0) + 1
    return counts


# --------------------------------------------------------------------------- watches

class Watch:
    """A watch on one kind (label-selected) in a thread, keeping what ``digest`` makes
    of each event with its receipt time (``time.monotonic``), for ``first`` to search."""

    def __init__(self, server: ClientConfig, kind: Any, selector: str,
                 digest: Callable[[dict[str, Any]], Any]) -> None:
        self.client = Client(server, timeout=10)
        rv = self.client.list(kind, NS, label_selector=selector)["metadata"]["resourceVersion"]
        self.events: list[tuple[float, Any]] = []
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(kind, selector, rv, digest),
                                       name=f"watch-{kind.plural}", daemon=True)
        self.thread.start()

    def _run(self, kind: Any, selector: str, rv: str,
             digest: Callable[[dict[str, Any]], Any]) -> None:
        try:
            for event in self.client.watch(kind, NS, resource_version=rv,
                                           label_selector=selector, timeout_seconds=3600):
                now = time.monotonic()
                if event["type"] == "BOOKMARK":
                    continue
                item = digest(event)
                if item is not None:
                    with self.cond:
                        self.events.append((now, item))
                        self.cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting thread
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def first(self, since: int, pred: Callable[[Any], bool], timeout: float) -> float:
        """Receipt time of the first event at index ≥ ``since`` satisfying ``pred``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, item in self.events[since:]:
                    if pred(item):
                        return at
                since = len(self.events)
                if self.error is not None:
                    raise BenchError(f"the watch ended: {self.error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("timed out waiting for a watch event")
                self.cond.wait(left)

    def close(self) -> None:
        self.client.close()


class PodReadiness:
    """Digest of Pod events: (name, ready, podIP) when a pod's Ready condition flips."""

    def __init__(self) -> None:
        self.ready: dict[str, bool] = {}

    def __call__(self, event: dict[str, Any]) -> tuple[str, bool, str] | None:
        pod = event["object"]
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        if event["type"] == "DELETED" or self.ready.get(name) == ready:
            return None
        self.ready[name] = ready
        return name, ready, status.get("podIP") or ""


def slice_ready(event: dict[str, Any]) -> frozenset[str]:
    """Digest of slice events: the ready addresses the (single) slice lists."""
    return frozenset(e["addresses"][0] for e in event["object"].get("endpoints") or []
                     if (e.get("conditions") or {}).get("ready"))


# --------------------------------------------------------------------------- cluster

@dataclass(frozen=True)
class Node:
    name: str
    namespace: str
    cidr: str


def mpctl(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "mpctl"), *args], capture_output=True, text=True,
                          timeout=timeout)


def cluster_up(name: str, state_dir: Path) -> float:
    """Seconds ``mpctl cluster up --detach`` took; raises with its last error line."""
    started = time.perf_counter()
    done = mpctl("cluster", "up", "--name", name, "--nodes", "2", "--state-dir",
                 str(state_dir), "--detach", "-q", "--dns-upstream", "none")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"mpctl cluster up failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-500:]}")
    return seconds


def cluster_down(name: str, state_dir: Path) -> None:
    """``mpctl cluster down``, then make sure none of this run's namespaces is left."""
    try:
        done = mpctl("cluster", "down", "--name", name, "--state-dir", str(state_dir))
        if done.returncode != 0:
            print(f"!! mpctl cluster down: {(done.stderr or done.stdout).strip()}",
                  file=sys.stderr)
    except subprocess.TimeoutExpired:
        print("!! mpctl cluster down timed out", file=sys.stderr)
    left = [ns for ns in namespaces() if ns.startswith(f"mp-{name}-")]
    for ns in left:
        print(f"!! {ns} survived cluster down; deleting it", file=sys.stderr)
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.split()]


def cluster_nodes(client: Client, state_dir: Path) -> list[Node]:
    recorded = json.loads((state_dir / "cluster.json").read_text())
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in client.list(NODE)["items"]}
    return [Node(n["name"], n["namespace"], cidrs[n["name"]]) for n in recorded["nodes"]]


# --------------------------------------------------------------------------- background

def bg_objects(i: int, nodes: list[Node], per: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Service ``bg-NNNN`` (no selector) and its hand-written slice of ``per`` endpoints."""
    name = f"bg-{i:04d}"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": PORT,
                               "protocol": "TCP"}]}}
    endpoints = []
    for j in range(per):
        n = i * per + j
        node = nodes[n % len(nodes)]
        # .100-.249 of the node's /24: clear of the low addresses IPAM gives real pods
        ip = ipaddress.ip_network(node.cidr).network_address + 100 + (n // len(nodes)) % 150
        endpoints.append({"addresses": [str(ip)], "nodeName": node.name,
                          "conditions": {"ready": True, "serving": True, "terminating": False}})
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": f"{name}-bench", "namespace": NS,
                           "labels": {SERVICE_LABEL: name,
                                      "endpointslice.kubernetes.io/managed-by": "bench-e2e"}},
              "addressType": "IPv4", "endpoints": endpoints,
              "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]}
    return svc, slice_


async def create_background(server: ClientConfig, nodes: list[Node], count: int, per: int,
                            concurrency: int = 16) -> None:
    async with AsyncClient(server, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            svc, slice_ = bg_objects(i, nodes, per)
            async with gate:
                await client.create(SERVICE, svc, NS)
                await client.create(ENDPOINTSLICE, slice_, NS)

        await asyncio.gather(*(one(i) for i in range(count)))


def svc_chain(service: str) -> str:
    return chains.service_chain("KUBE-SVC-", f"{NS}/{service}:http", "TCP")


def sep_chain(service: str, ip: str) -> str:
    return chains.endpoint_chain(f"{NS}/{service}:http", "TCP", f"{ip}:{PORT}")


def wait_rules(nodes: list[Node], expected: dict[str, int], timeout: float) -> float:
    """Until every node's nat table gives each expected KUBE-SVC chain its number of
    endpoint jumps; returns when (monotonic). Polls ``iptables-nft-save`` every 0.5 s."""
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    def behind(node: Node) -> bool:
        jumps = endpoint_jumps(nat_save(node.namespace))
        return any(jumps.get(c, 0) != k for c, k in expected.items())

    while True:
        pending = [n for n in pending if behind(n)]
        if not pending:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"rules never converged on {', '.join(n.name for n in pending)}")
        time.sleep(0.5)


# --------------------------------------------------------------------------- flip pods

def flip_objects(pods: int, nodes: list[Node], ready_dir: Path
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": FLIP, "namespace": NS},
           "spec": {"selector": {"app": FLIP},
                    "ports": [{"name": "http", "port": 80, "targetPort": PORT}]}}
    out = []
    for k in range(pods):
        name = f"{FLIP}-{k}"
        probe = {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 1,
                 "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 1}
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NS, "labels": {"app": FLIP}},
                    "spec": {"nodeName": nodes[k % len(nodes)].name,
                             "terminationGracePeriodSeconds": 1,
                             "containers": [{
                                 "name": "web", "image": "python:3.11",
                                 "command": [sys.executable, "-c", POD_SERVER,
                                             str(ready_dir / name), str(PORT)],
                                 "ports": [{"name": "http", "containerPort": PORT}],
                                 "readinessProbe": probe}]}})
    return svc, out


def wait_pods_ready(client: Client, names: list[str], timeout: float) -> dict[str, str]:
    """Pod name → IP once every pod is Ready."""
    deadline = time.monotonic() + timeout
    while True:
        ips: dict[str, str] = {}
        for pod in client.list(POD, NS, label_selector=f"app={FLIP}")["items"]:
            status = pod.get("status") or {}
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in status.get("conditions") or []) and status.get("podIP"):
                ips[pod["metadata"]["name"]] = status["podIP"]
        if set(ips) == set(names):
            return ips
        if time.monotonic() > deadline:
            raise BenchError(f"pods not Ready after {timeout:.0f}s: "
                             f"{sorted(set(names) - set(ips))}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- floor

def measure_floor(client: Client, run: str, made: list[str]) -> tuple[list[float], list[float]]:
    """(bare restores, whole proxy syncs) in seconds, for one endpoint of the flip
    Service toggled ``FLOOR_REPEATS`` times, in scratch namespaces holding the very
    ruleset the nodes have."""
    def scratch(role: str) -> str:
        return scratch_namespace(f"mp-{run}-{role}", made)

    proxier, sent = recording_proxier(Backend("nft", scratch("floor")), "node-1")
    twin = Backend("nft", scratch("twin"))
    t = proxier.tracker
    for svc in client.list_all(SERVICE)["items"]:
        t.service_added(svc)
    flip_slice: dict[str, Any] | None = None
    for s in client.list_all(ENDPOINTSLICE)["items"]:
        t.slice_added(s)
        if s["metadata"].get("labels", {}).get(SERVICE_LABEL) == FLIP:
            flip_slice = s
    if flip_slice is None:
        raise BenchError(f"no EndpointSlice for {FLIP}")
    proxier.sync(t.everything())
    for p in sent:
        twin.restore(p.text)
    restores: list[float] = []
    syncs: list[float] = []
    current = flip_slice
    for r in range(FLOOR_REPEATS):
        new = copy.deepcopy(flip_slice)
        new["metadata"]["resourceVersion"] = f"{r}-bench"
        if r % 2 == 0:  # take one endpoint out, then put it back
            new["endpoints"][r // 2 % len(new["endpoints"])]["conditions"]["ready"] = False
        t.slice_updated(current, new)
        current = new
        changes, _ = t.take()
        sent.clear()
        started = time.perf_counter()
        proxier.sync(changes)
        syncs.append(time.perf_counter() - started)
        started = time.perf_counter()
        for p in sent:
            twin.restore(p.text)
        restores.append(time.perf_counter() - started)
    return restores, syncs


# --------------------------------------------------------------------------- flips

@dataclass
class Flip:
    pod: str
    ready: bool
    touched: float  # file changed (monotonic)
    pod_event: float  # our watch received the Pod update with Ready flipped: the START
    slice_event: float  # our watch received the slice showing it
    nodes: dict[str, float]  # node → first poll showing it in its rules

    @property
    def done(self) -> float:  # the END: the last node
        return max(self.nodes.values())

    @property
    def latency(self) -> float:
        return self.done - self.pod_event


def run_flips(nodes: list[Node], pods: dict[str, str], ready_dir: Path, pod_watch: Watch,
              slice_watch: Watch, flips: int, poll: float, gap: float) -> list[Flip]:
    readers = {n.name: ChainReader(n.namespace) for n in nodes}
    chain = svc_chain(FLIP)
    names = sorted(pods)
    results: list[Flip] = []
    next_at = time.monotonic()
    try:
        for k in range(flips):
            pod = names[(k // 2) % len(names)]
            ready, ip = k % 2 == 1, pods[pod]
            sep = sep_chain(FLIP, ip)
            time.sleep(max(0.0, next_at - time.monotonic()))  # pacing, not synchronisation
            pod_mark, slice_mark = pod_watch.mark(), slice_watch.mark()
            touched = time.monotonic()
            if ready:
                (ready_dir / pod).touch()
            else:
                (ready_dir / pod).unlink()
            seen: dict[str, float] = {}
            deadline = touched + 30
            while len(seen) < len(readers):
                for node, reader in readers.items():
                    if node not in seen and reader.endpoint_in(chain, sep) is ready:
                        seen[node] = time.monotonic()
                if len(seen) < len(readers):
                    if time.monotonic() > deadline:
                        raise BenchError(f"flip {k}: {pod} ready={ready} not in the rules of "
                                         f"{sorted(set(readers) - set(seen))} after 30 s")
                    time.sleep(poll)
            start = pod_watch.first(pod_mark, lambda e, p=pod, r=ready: e[:2] == (p, r), 10)
            sliced = slice_watch.first(slice_mark, lambda e, i=ip, r=ready: (i in e) == r, 10)
            for n in nodes:  # cross-check the netlink reader with iptables itself
                if (sep in iptables_jumps(n.namespace, chain)) != ready:
                    raise BenchError(f"flip {k}: iptables-nft -S disagrees with the netlink "
                                     f"reader on {n.name} ({chain} → {sep})")
            results.append(Flip(pod, ready, touched, start, sliced, seen))
            next_at = results[-1].done + gap
    finally:
        for reader in readers.values():
            reader.close()
    return results


# --------------------------------------------------------------------------- report

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def spread(values: list[float]) -> str:
    return (f"p50 {ms(pct(values, 0.5))}, p99 {ms(pct(values, 0.99))}, "
            f"max {ms(max(values))}")


def bench(args: argparse.Namespace, name: str, state_dir: Path, made: list[str]) -> None:
    began = time.monotonic()
    print(f"bench/e2e.py: cluster {name!r}, 2 nodes, {os.cpu_count()} CPUs, "
          f"state and logs in {state_dir}", flush=True)
    up = cluster_up(name, state_dir)
    print(f"cluster up (mpctl cluster up --nodes 2 --detach): {up:.2f} s (target < 30 s)",
          flush=True)
    # cluster up's kubeconfig: the server, the cluster CA and an admin credential
    server = load_config(kubeconfig=state_dir / "kubeconfig")
    client = Client(server, timeout=60)
    watches: list[Watch] = []
    try:
        nodes = cluster_nodes(client, state_dir)
        started = time.monotonic()
        asyncio.run(create_background(server, nodes, args.services, args.endpoints))
        written = time.monotonic()
        expected = {svc_chain(f"bg-{i:04d}"): args.endpoints for i in range(args.services)}
        synced = wait_rules(nodes, expected, timeout=600)
        objects = 2 * args.services
        print(f"background: {args.services} Services x {args.endpoints} endpoints "
              f"({objects} objects) created in {written - started:.2f} s "
              f"({objects / (written - started):.0f}/s); in the rules of both nodes "
              f"{synced - written:.2f} s after the last write", flush=True)

        ready_dir = state_dir / "ready"
        ready_dir.mkdir()
        svc, pod_bodies = flip_objects(args.pods, nodes, ready_dir)
        for body in pod_bodies:
            (ready_dir / body["metadata"]["name"]).touch()
        client.create(SERVICE, svc, NS)
        for body in pod_bodies:
            client.create(POD, body, NS)
        pods = wait_pods_ready(client, [b["metadata"]["name"] for b in pod_bodies], 120)
        wait_rules(nodes, {svc_chain(FLIP): len(pods)}, timeout=60)
        print(f"flip Service {FLIP!r}: {len(pods)} pods, {len(pods) // len(nodes)} per node, "
              f"httpGet readiness probe every 1 s (failureThreshold 1)", flush=True)

        restores, syncs = measure_floor(client, name, made)
        for ns in list(made):
            subprocess.run(["ip", "netns", "delete", ns], check=False)
            made.remove(ns)
        floor = statistics.median(restores)
        print(f"floor: bare iptables-nft-restore of the proxy's payload for one endpoint "
              f"change, in a scratch namespace with the same ruleset, median of "
              f"{FLOOR_REPEATS}: {ms(floor)} (the proxy's whole partial sync there: "
              f"{ms(statistics.median(syncs))})", flush=True)

        probe_reader = ChainReader(nodes[0].namespace)
        t0 = time.perf_counter()
        for _ in range(200):
            probe_reader.endpoint_in(svc_chain(FLIP), "KUBE-SEP-X")
        read_cost = (time.perf_counter() - t0) / 200
        probe_reader.close()
        print(f"rules poll: netlink dump of one KUBE-SVC chain {read_cost * 1000:.2f} ms; "
              f"each node polled every {args.poll_ms:g} ms, so an end time is late by at "
              f"most ~{args.poll_ms + 2 * read_cost * 1000:.1f} ms", flush=True)

        digest = PodReadiness()
        digest.ready.update({p: True for p in pods})
        watches.append(Watch(server, POD, f"app={FLIP}", digest))
        watches.append(Watch(server, ENDPOINTSLICE, f"{SERVICE_LABEL}={FLIP}", slice_ready))
        print(f"flipping readiness {args.flips} times (one pod at a time, down then up, "
              f"at least {args.gap:g} s after the previous flip's rules landed)...", flush=True)
        flips = run_flips(nodes, pods, ready_dir, watches[0], watches[1], args.flips,
                          args.poll_ms / 1000, args.gap)
        lat = [f.latency for f in flips]
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        print(f"network programming latency, {len(flips)} flips "
              f"({sum(not f.ready for f in flips)} down, {sum(f.ready for f in flips)} up):")
        print("  from: this benchmark's Pod watch receiving the update whose Ready "
              "condition flipped")
        print("  to:   the first poll showing the pod's KUBE-SEP jump in (or out of) the "
              "Service's KUBE-SVC chain on EVERY node")
        print(f"  {spread(lat)}, mean {ms(statistics.mean(lat))} (target p99 < 1 s); "
              f"p50 {p50 / floor:.1f}x, p99 {p99 / floor:.1f}x the floor")
        print(f"  down flips: {spread([f.latency for f in flips if not f.ready])}; "
              f"up flips: {spread([f.latency for f in flips if f.ready])}")
        print(f"  of which Pod event -> slice event (controller and API server): "
              f"{spread([f.slice_event - f.pod_event for f in flips])}")
        print(f"  slice event -> rules on the last node: "
              f"{spread([f.done - f.slice_event for f in flips])}; first node to last: "
              f"{spread([f.done - min(f.nodes.values()) for f in flips])}")
        print(f"  (not measured: file change -> Pod event, the probe period and status "
              f"write: {spread([f.pod_event - f.touched for f in flips])})")
        print(f"run time {time.monotonic() - began:.0f} s before teardown", flush=True)
    finally:
        for w in watches:
            w.close()
        client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000, help="background Services (1000)")
    p.add_argument("--endpoints", type=int, default=3, help="endpoints per background Service")
    p.add_argument("--pods", type=int, default=4, help="real pods behind the flip Service")
    p.add_argument("--flips", type=int, default=100)
    p.add_argument("--poll-ms", type=float, default=5.0, help="rules poll interval per round")
    p.add_argument("--gap", type=float, default=1.0,
                   help="quiet seconds after a flip's rules landed before the next flip")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/e2e.py needs root (mpctl cluster up)", file=sys.stderr)
        return 1
    # SIGTERM runs the teardown below too (the default handler would skip it)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    name = f"b{secrets.token_hex(3)}"
    state_dir = Path(tempfile.mkdtemp(prefix=f"mp-bench-e2e-{name}-"))
    made: list[str] = []
    ok = False
    try:
        bench(args, name, state_dir, made)
        ok = True
        return 0
    except (BenchError, ApiError) as exc:
        print(f"bench/e2e.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/e2e.py: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
        started = time.monotonic()
        cluster_down(name, state_dir)
        print(f"cluster down: {time.monotonic() - started:.1f} s", flush=True)
        if ok:
            with contextlib.suppress(OSError):
                shutil.rmtree(state_dir)
        else:  # the components' logs say what went wrong
            print(f"logs kept in {state_dir / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
