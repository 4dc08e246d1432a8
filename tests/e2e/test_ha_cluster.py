"""End to end: an HA local cluster (``cluster up --storage postgresql --apiservers 3``,
two controller processes) loses the API server its clients use and the leading
controller to ``kill -9`` while a writer creates and deletes pods and a pod keeps
calling a Service.

What a user relies on: every acknowledged write is there afterwards; the standby
controller leads within the lease duration (plus a retry period); a pod made Ready
after the kills reaches the proxy rules (the new leader's EndpointSlice, the
agents' failed-over watches); the data plane never stops answering. The test
prints the takeover time and the longest gap between successful requests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from apimachinery.kinds import ENDPOINTSLICE, POD, SERVICE
from client.config import load_config
from client.errors import ApiError, ConnectionFailed, NotFound
from client.http import Client
from componentbase import postgres
from componentbase.procs import same_process
from mpctl.cluster import leader
from nodeagent.pods.status import pod_netns
from tests.conftest import BIN, REPO, wait_until
from tests.e2e.test_local_cluster import LOOP, REQUESTS, demo_pod, running_cluster
from tests.netns import have_root_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or ""),
              pytest.mark.skipif(postgres.unavailable() is not None,
                                 reason=postgres.unavailable() or "")]

LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0  # mp-controllers' defaults
ALIVE = 6  # the writer's pods alive at once: each is a process in a namespace


def writer_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {
        "app": "writer"}}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "sleep", "image": "busybox", "command": ["sleep", "3600"]}]}}
# mp-apiserver's defaults: --endpoint-lease-duration, --endpoint-reconcile-interval
ENDPOINT_LEASE, ENDPOINT_INTERVAL = 15.0, 5.0
KUBERNETES_SLICES = ("kubernetes.io/service-name=kubernetes,"
                     "endpointslice.kubernetes.io/managed-by=kube-apiserver")


def leading(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The controller processes whose /metrics say they lead."""
    out = []
    for p in record["processes"]:
        if p["name"].startswith("controllers") and same_process(p["pid"], p["start"]):
            try:
                text = httpx.get(f"http://{p['metrics']}/metrics", timeout=1).text
            except httpx.HTTPError:
                continue
            if leader.says_it_leads(text):
                out.append(p)
    return out


def ready(api: Client, name: str) -> bool:
    conds = api.get(POD, name, "default").get("status", {}).get("conditions") or []
    return {"type": "Ready", "status": "True"} in [
        {"type": c.get("type"), "status": c.get("status")} for c in conds]


def test_ha_cluster_survives_kill_9_of_its_first_api_server_and_leading_controller(
        ) -> None:
    # the PostgreSQL server runs as `postgres`, which must reach the state dir
    root = Path(tempfile.mkdtemp(prefix="mp-e2e-ha-"))
    root.chmod(0o711)
    try:
        with running_cluster(root, "h", "--storage", "postgresql", "--apiservers", "3") as c:
            _failover(c)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _failover(c: Any) -> None:
    record = c.record()
    servers = record["server"].split(",")
    assert len(servers) == 3
    names = [p["name"] for p in record["processes"]]
    assert names[:6] == ["postgres", "apiserver", "apiserver-2", "apiserver-3",
                         "controllers", "controllers-2"]
    kubeconfig = str(c.state_dir / "kubeconfig")

    # the admin kubeconfig: the first server for kubectl, the others as mpctl's fallbacks
    cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    assert cluster["server"] == servers[0]
    assert cluster["extensions"] == [{"name": "miniplane.io/fallback-servers",
                                      "extension": {"servers": servers[1:]}}]

    def mpctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """mpctl as a user runs it: the kubeconfig alone."""
        done = subprocess.run([str(BIN / "mpctl"), "--kubeconfig", kubeconfig, *args],
                              capture_output=True, text=True, cwd=REPO, timeout=90)
        if check and done.returncode != 0:
            raise AssertionError(f"mpctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done

    c.apply_demo()
    api = Client(load_config(kubeconfig=c.state_dir / "kubeconfig"))

    def kubernetes_endpoints() -> set[tuple[str, int]]:
        """The kubernetes Service's (address, port)s: one slice per port."""
        items = api.list(ENDPOINTSLICE, "default", label_selector=KUBERNETES_SLICES)["items"]
        return {(a, s["ports"][0]["port"]) for s in items for e in s["endpoints"]
                for a in e["addresses"]}

    # every API server is an endpoint of the kubernetes Service (its identity Lease)
    ports = [urlsplit(s).port for s in servers]
    wait_until(lambda: kubernetes_endpoints() == {("10.250.0.1", p) for p in ports},
               timeout=30, what="the three API servers in the kubernetes Service")
    leaders = wait_until(lambda: leading(record), timeout=30, what="a controller to lead")
    assert len(leaders) == 1
    old_leader = leaders[0]

    # a pod calls the Service back to back for the whole test: started in the pod's
    # namespace directly, since an exec session (mpctl's or kubectl's) lives on one API
    # server's connection, which the kill below ends
    client_ns = pod_netns(c.name, api.get(POD, "client", "default")["metadata"]["uid"])
    loop = subprocess.Popen(["ip", "netns", "exec", client_ns, "python3", "-c", LOOP,
                             "http://web/", "40"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: lines.extend(
        json.loads(line) for line in loop.stdout or ()), daemon=True)
    reader.start()
    # a writer creates pods and deletes the older ones: every create it saw
    # acknowledged must be there afterwards, unless its delete was acknowledged too
    created: list[str] = []
    deleted: list[str] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                api.create(POD, writer_pod(f"w-{i}"), "default")
                created.append(f"w-{i}")
            except (ConnectionFailed, ApiError):
                pass  # not acknowledged: it may or may not be there
            alive = [n for n in created if n not in deleted]
            if len(alive) > ALIVE:
                try:
                    api.delete(POD, alive[0], "default")
                    deleted.append(alive[0])
                except NotFound:  # an unacknowledged delete that was done after all
                    deleted.append(alive[0])
                except (ConnectionFailed, ApiError):
                    pass
            time.sleep(0.2)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(lines) >= 20 and len(deleted) >= 5, timeout=60,
                   what="traffic and writes before the kills")
        first_api = next(p for p in record["processes"] if p["name"] == "apiserver")
        killed_at = time.time()
        os.kill(first_api["pid"], signal.SIGKILL)
        os.kill(old_leader["pid"], signal.SIGKILL)
        new = wait_until(lambda: [p for p in leading(record) if p["name"] != old_leader["name"]],
                         timeout=LEASE_DURATION + 3 * RETRY_PERIOD + 10,
                         what="the standby controller to lead")
        takeover = time.time() - killed_at
        assert takeover <= LEASE_DURATION + 2 * RETRY_PERIOD + 5, takeover
        assert new[0]["name"] != old_leader["name"]
        # the killed API server leaves the kubernetes Service when its Lease expires,
        # and a pod reaches the API server through it
        wait_until(lambda: kubernetes_endpoints() == {("10.250.0.1", p) for p in ports[1:]},
                   timeout=max(0.0, killed_at + ENDPOINT_LEASE + ENDPOINT_INTERVAL + 10
                               - time.time()),
                   what="the killed API server to leave the kubernetes Service")
        ca = c.state_dir / "pki" / "ca.crt"
        for _ in range(6):  # the proxy balances at random over the two left
            out = mpctl("exec", "client", "--", "curl", "-sS", "-m", "5", "--cacert",
                        str(ca), "https://10.96.0.1/readyz")
            assert out.stdout == "ok", out.stdout + out.stderr

        # a pod made Ready after the kills reaches the proxy rules
        api.create(POD, demo_pod("solo-1", {"app": "solo"}), "default")
        api.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "solo"},
                             "spec": {"selector": {"app": "solo"},
                                      "ports": [{"port": 80, "targetPort": 8080}]}}, "default")
        wait_until(lambda: mpctl("exec", "client", "--", "python3", "-c", REQUESTS,
                                 "http://solo/", "1", check=False).stdout.strip()
                   == json.dumps({"seen": ["solo-1"], "errors": []}),
                   timeout=60, what="solo to answer once its pod is Ready")
        loop.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        stop.set()
        writer.join(timeout=10)
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    errors = [x for x in lines if "error" in x]
    ok = sorted(x["t"] for x in lines if "ok" in x)
    gap = max(b - a for a, b in zip(ok, ok[1:], strict=False))
    print(f"\nHA failover: standby controller led {takeover:.1f} s after the kills; "
          f"longest gap between successful requests {gap * 1000:.0f} ms "
          f"({len(ok)} requests, {len(errors)} errors); {len(created)} pod creates and "
          f"{len(deleted)} deletes acknowledged")
    assert errors == [], errors[:3]
    assert ok[-1] > killed_at + 10  # the loop ran well past the kills
    assert gap < 2.0, gap
    pods = {p["metadata"]["name"]: p for p in api.list(POD, "default")["items"]}
    kept = [n for n in created if n not in deleted]
    assert set(kept) <= set(pods), sorted(set(kept) - set(pods))[:5]
    assert not [n for n in kept if pods[n]["metadata"].get("deletionTimestamp")]
    # the deletes were acknowledged; the agents (following a live server) finish them
    wait_until(lambda: not {p["metadata"]["name"] for p in api.list(POD, "default")["items"]}
               & set(deleted), timeout=60, what="every deleted writer pod to be gone")
    wait_until(lambda: all(ready(api, n) for n in kept), timeout=60,
               what="every kept writer pod to run")
    api.close()
