"""End to end: topology-aware routing on a real 2-node cluster whose nodes are in two zones.

The zones are set as on a real cluster: node A's own agent credential labels its
Node (as a kubelet with ``--node-labels`` does; NodeRestriction allows a node its
own ``topology.kubernetes.io/zone``, and nothing on another node), the admin
labels node B with the real kubectl. Labels arrive after the Service and its Pods
exist, so the EndpointSlice controller and both proxies must react to the Node
changes. Then a ``trafficDistribution: PreferClose`` Service seen from the client
pod on node A reaches only zone A's Pods, and zone B's once zone A has none.
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
    with running_cluster(tmp_path_factory.mktemp("topology"), "t") as c:
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
    here = cluster.client.get(POD, "client", "default")["spec"]["nodeName"]
    there = next(n["metadata"]["name"] for n in cluster.client.list(NODE)["items"]
                 if n["metadata"]["name"] != here)
    zone_of = {here: "a", there: "b"}
    docs = [near_service(), pinned_pod("near-a1", here), pinned_pod("near-a2", here),
            pinned_pod("near-b1", there)]
    kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    cluster.wait_ready("app=near", {"near-a1", "near-a2", "near-b1"})

    # Who may set the zone: a node on itself, as a kubelet does; not on another node.
    own = cluster.state_dir / "pki" / here / "kubeconfig"
    denied = kubectl(own, "label", "node", there, f"{ZONE}=a", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    kubectl(own, "label", "node", here, f"{ZONE}=a")
    kubectl(admin, "label", "node", there, f"{ZONE}=b")

    def zones_and_hints() -> dict[str, tuple[str | None, Any]]:
        return {e["targetRef"]["name"]: (e.get("zone"), e.get("hints"))
                for e in slice_endpoints(cluster)}

    want = {name: (zone_of[node], {"forZones": [{"name": zone_of[node]}]})
            for name, node in (("near-a1", here), ("near-a2", here), ("near-b1", there))}
    wait_until(lambda: zones_and_hints() == want, timeout=30,
               what="the EndpointSlice to carry each endpoint's zone and hint")

    # The client's proxy has taken its node's zone and the hints: zone A only, every time.
    wait_until(lambda: set((r := answers(cluster, 20))["seen"]) <= {"near-a1", "near-a2"}
               and not r["errors"], timeout=30, what="requests to stay in zone a")
    result = answers(cluster, 60)
    assert result["errors"] == [] and len(result["seen"]) == 60
    assert set(result["seen"]) == {"near-a1", "near-a2"}, result["seen"]

    # Zone A's endpoints go away: the hints no longer cover zone A, so all endpoints
    # (zone B's) are used.
    kubectl(admin, "delete", "pod", "near-a1", "near-a2", "--wait=false")
    wait_until(lambda: answers(cluster, 10)["seen"] == ["near-b1"] * 10,
               timeout=30, what="requests to fall back to zone b")
    result = answers(cluster, 30)
    assert result == {"seen": ["near-b1"] * 30, "errors": []}
