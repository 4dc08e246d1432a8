"""End to end: topology-aware routing on a real 2-node cluster whose nodes are in two zones.

``cluster up --zones a,b``: each agent labels its own Node at registration, as a
kubelet with ``--node-labels`` does (NodeRestriction lets a node set its own
``topology.kubernetes.io/zone``, and nothing on another node). A
``trafficDistribution: PreferClose`` Service seen from the client pod (on node A)
then reaches only zone A's Pods; it follows a zone label changed by the admin
with the real kubectl; and it falls back to zone B's Pods once zone A has none.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apimachinery.kinds import ENDPOINTSLICE, NODE, POD
from tests.conftest import USER_KUBECTL, wait_until
from tests.e2e.test_local_cluster import (
    EXAMPLES,
    REQUESTS,
    LocalCluster,
    demo_pod,
    running_cluster,
)
from tests.netns import have_root_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

ZONE = "topology.kubernetes.io/zone"


def kubectl(kubeconfig: Path, *args: str, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(USER_KUBECTL), "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, input=stdin)
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("topology"), "t", "--zones", "a,b") as c:
        kubectl(c.state_dir / "kubeconfig", "apply", "-f", str(EXAMPLES / "client.yaml"))
        wait_until(lambda: c.client.get(POD, "client", "default")["status"].get("phase")
                   == "Running", timeout=40, what="the client pod to run")
        yield c


def near_service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "near"},
            "spec": {"selector": {"app": "near"}, "trafficDistribution": "PreferClose",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def pinned_pod(name: str, node: str) -> dict[str, Any]:
    pod = demo_pod(name, {"app": "near"})
    pod["spec"] = {**pod["spec"], "nodeName": node}
    return pod


def slice_endpoints(cluster: LocalCluster) -> list[dict[str, Any]]:
    items = cluster.client.list(ENDPOINTSLICE, "default",
                                label_selector="kubernetes.io/service-name=near")["items"]
    return [e for s in items for e in s.get("endpoints") or []]


def answers(cluster: LocalCluster, n: int) -> dict[str, Any]:
    """``n`` requests from the client pod to ``near``: which pods answered, which failed."""
    result: dict[str, Any] = json.loads(cluster.python_in_client(REQUESTS, "http://near/", str(n)))
    return result


def test_prefer_close_stays_in_the_zone_then_falls_back(cluster: LocalCluster) -> None:
    admin = cluster.state_dir / "kubeconfig"
    zone_of = {n["metadata"]["name"]: n["metadata"]["labels"].get(ZONE)
               for n in cluster.client.list(NODE)["items"]}
    assert zone_of == {"node-1": "a", "node-2": "b"}, "set by each agent from --zones"
    here = cluster.client.get(POD, "client", "default")["spec"]["nodeName"]
    there = next(name for name in zone_of if name != here)
    # A node may label itself (so it could register its zone); never another node.
    denied = kubectl(cluster.state_dir / "pki" / here / "kubeconfig", "label", "node", there,
                     f"{ZONE}={zone_of[here]}", "--overwrite", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr

    docs = [near_service(), pinned_pod("near-a1", here), pinned_pod("near-a2", here),
            pinned_pod("near-b1", there)]
    kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.wait_ready("app=near", {"near-a1", "near-a2", "near-b1"})

    def wait_slice(zones: dict[str, str]) -> None:
        want = {name: (zone, {"forZones": [{"name": zone}]}) for name, zone in zones.items()}
        wait_until(lambda: {e["targetRef"]["name"]: (e.get("zone"), e.get("hints"))
                            for e in slice_endpoints(cluster)} == want, timeout=30,
                   what=f"the EndpointSlice to carry zones and hints {zones}")

    def wait_only(names: set[str]) -> None:
        """Until the client's proxy has the rules, then: every request, only ``names``."""
        wait_until(lambda: set((r := answers(cluster, 20))["seen"]) <= names
                   and not r["errors"], timeout=30, what=f"requests to reach only {names}")
        result = answers(cluster, 50)
        assert result["errors"] == [] and set(result["seen"]) == names, result

    wait_slice({"near-a1": zone_of[here], "near-a2": zone_of[here], "near-b1": zone_of[there]})
    wait_only({"near-a1", "near-a2"})

    # The client's node moves to a zone of its own: its endpoints follow it (the
    # controller), and so does the proxy's own zone; a proxy still reading hints
    # against the old zone would find none for it and use all three.
    kubectl(admin, "label", "node", here, f"{ZONE}=c", "--overwrite")
    wait_slice({"near-a1": "c", "near-a2": "c", "near-b1": zone_of[there]})
    wait_only({"near-a1", "near-a2"})

    # Zone c's endpoints go away: no hint is for zone c any more, so all endpoints
    # (zone b's) are used.
    kubectl(admin, "delete", "pod", "near-a1", "near-a2", "--wait=false")
    wait_until(lambda: answers(cluster, 10)["seen"] == ["near-b1"] * 10,
               timeout=30, what="requests to fall back to zone b")
    result = answers(cluster, 30)
    assert result == {"seen": ["near-b1"] * 30, "errors": []}
