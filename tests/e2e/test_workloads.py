"""End to end: the demo Deployment on a real 2-node cluster, driven with the real kubectl.

``kubectl scale``, ``set env`` (a template change), ``rollout status|history|undo`` and
``delete`` as a user types them; the checks look where a user would: the Service's
EndpointSlices and v1 Endpoints, and requests from the ``client`` pod through the
nodes' real rules, which must all succeed while a rolling update replaces every pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apimachinery.kinds import ENDPOINTS, ENDPOINTSLICE, POD, REPLICASET
from tests.conftest import BIN, REPO, wait_until
from tests.e2e.test_local_cluster import REPLICAS, LocalCluster, running_cluster
from tests.netns import have_root_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

# Runs in the client pod: requests back to back, one JSON line each ("version" or
# "error"), until only argv[2] has answered for 3 s (the rollout is over), or 150 s.
UNTIL_ONLY = """
import json, sys, time, urllib.request
url, want = sys.argv[1], sys.argv[2]
deadline, only_since = time.time() + 150, None
while time.time() < deadline:
    try:
        version = urllib.request.urlopen(url, timeout=2).read().decode().split()[2]
        print(json.dumps({"version": version}), flush=True)
        if version != want:
            only_since = None
        elif only_since is None:
            only_since = time.time()
        elif time.time() - only_since > 3:
            break
    except OSError as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("workloads"), "w") as c:
        c.apply_demo(kubectl=True)  # the Service and the Deployment, as a user applies them
        yield c


def kubectl(cluster: LocalCluster, *args: str, timeout: float = 150) -> str:
    done = subprocess.run([str(BIN / "kubectl"), "--kubeconfig",
                           str(cluster.state_dir / "kubeconfig"), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def slice_addresses(cluster: LocalCluster) -> set[str]:
    """The ready addresses of Service ``web``'s EndpointSlices."""
    items = cluster.client.list(ENDPOINTSLICE, "default",
                                label_selector="kubernetes.io/service-name=web")["items"]
    return {a for s in items for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}


def endpoints_addresses(cluster: LocalCluster) -> set[str]:
    subsets = cluster.client.get(ENDPOINTS, "web", "default").get("subsets") or []
    return {a["ip"] for s in subsets for a in s.get("addresses") or []}


def test_scale_and_the_service_endpoints_follow(cluster: LocalCluster) -> None:
    for replicas in (5, 2, REPLICAS):
        kubectl(cluster, "scale", "deploy/web", f"--replicas={replicas}")
        ips = set(cluster.wait_replicas("app=web", replicas).values())
        wait_until(lambda ips=ips: slice_addresses(cluster) == ips == endpoints_addresses(cluster),
                   timeout=20, what=f"the EndpointSlice and Endpoints to hold {replicas} pods")
    ready = kubectl(cluster, "get", "deploy", "web", "--no-headers").split()
    assert ready[:4] == ["web", f"{REPLICAS}/{REPLICAS}", str(REPLICAS), str(REPLICAS)]


def test_rolling_update_loses_no_request_and_undo_brings_the_old_back(
        cluster: LocalCluster) -> None:
    old = set(cluster.wait_replicas("app=web", REPLICAS))
    loop = subprocess.Popen([str(BIN / "mpctl"), "exec", "client", "--", "python3", "-c",
                             UNTIL_ONLY, "http://web/", "v2"], stdout=subprocess.PIPE,
                            text=True, cwd=REPO,
                            env={**os.environ,
                                 "KUBECONFIG": str(cluster.state_dir / "kubeconfig")})
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: lines.extend(
        json.loads(line) for line in loop.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) > 20, timeout=20, what="the request loop to run")
        kubectl(cluster, "set", "env", "deploy/web", "VERSION=v2")
        kubectl(cluster, "rollout", "status", "deploy/web", "--timeout=120s")
        loop.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert [x for x in lines if "error" in x] == []
    versions = [x["version"] for x in lines]
    assert {"v1", "v2"} <= set(versions), "the rollout should serve both versions for a while"
    assert versions[-1] == "v2"
    new = set(cluster.wait_replicas("app=web", REPLICAS))
    assert not new & old, "every pod should be replaced"

    history = kubectl(cluster, "rollout", "history", "deploy/web")
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["1", "2"], history

    kubectl(cluster, "rollout", "undo", "deploy/web")
    kubectl(cluster, "rollout", "status", "deploy/web", "--timeout=120s")
    cluster.wait_replicas("app=web", REPLICAS)
    versions_now = ("import urllib.request\n"
                    "print(' '.join(sorted({urllib.request.urlopen('http://web/', timeout=2)"
                    ".read().decode().split()[2] for _ in range(12)})))")
    wait_until(lambda: cluster.python_in_client(versions_now) == "v1", timeout=20,
               what="only v1 to answer after the undo")


def test_a_deleted_pod_is_replaced(cluster: LocalCluster) -> None:
    before = set(cluster.wait_replicas("app=web", REPLICAS))
    victim = sorted(before)[0]
    kubectl(cluster, "delete", "pod", victim, "--wait=false")
    after = wait_until(lambda: victim not in (p := set(cluster.ready_pods("app=web")))
                       and len(p) == REPLICAS and p, timeout=30,
                       what="a new pod in the deleted one's place")
    assert len(after - before) == 1


def test_deleting_the_deployment_leaves_nothing_it_owned(cluster: LocalCluster) -> None:
    owned = [rs["metadata"]["name"] for rs in
             cluster.client.list(REPLICASET, "default", label_selector="app=web")["items"]]
    assert owned, "the Deployment should own ReplicaSets"
    kubectl(cluster, "delete", "deploy", "web")
    wait_until(lambda: not cluster.client.list(REPLICASET, "default",
                                               label_selector="app=web")["items"]
               and not cluster.client.list(POD, "default", label_selector="app=web")["items"],
               timeout=60, what="the Deployment's ReplicaSets and pods to be collected")
