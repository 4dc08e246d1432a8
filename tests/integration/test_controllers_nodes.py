"""Scheduler, node IPAM and node lifecycle end to end, with the test playing node agents."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from apimachinery.kinds import EVENT, NODE, POD
from controllers.objects import condition
from tests.conftest import wait_until
from tests.integration.test_controllers_harness import NOT_READY, READY, Cluster, clusters


@pytest.fixture
def make_cluster(tmp_path) -> Iterator[Callable[..., Cluster]]:
    with clusters(tmp_path) as make:
        yield make


def _node_ready(cluster: Cluster, name: str) -> str | None:
    c = condition(cluster.client.get(NODE, name), "Ready")
    return c["status"] if c else None


def test_silent_node_goes_unknown_and_its_endpoints_stop_being_ready(make_cluster):
    cluster = make_cluster("--node-monitor-grace-period", "2")
    cluster.node("n1")
    cluster.node("n2")
    cluster.service("web")
    cluster.pod("on-1", labels={"app": "web"}, node="n1", ip="10.244.1.5")
    cluster.pod("on-2a", labels={"app": "web"}, node="n2", ip="10.244.2.5")
    cluster.pod("on-2b", labels={"app": "web"}, node="n2", ip="10.244.2.6")
    all_ready = {"10.244.1.5": READY, "10.244.2.5": READY, "10.244.2.6": READY}
    cluster.wait_endpoints("web", all_ready)

    cluster.heartbeats.stop_beating("n2")  # n2's agent goes quiet
    wait_until(lambda: _node_ready(cluster, "n2") == "Unknown", timeout=10,
               what="n2 Ready=Unknown")
    ready = condition(cluster.client.get(NODE, "n2"), "Ready")
    assert ready["reason"] == "NodeStatusUnknown"
    cluster.wait_endpoints("web", {"10.244.1.5": READY, "10.244.2.5": NOT_READY,
                                   "10.244.2.6": NOT_READY})
    assert cluster.pod_ready("on-2a") == "False"
    assert _node_ready(cluster, "n1") == "True" and cluster.pod_ready("on-1") == "True"

    # A pod on the down node that claims Ready again is put back to not ready.
    cluster.set_status("on-2b", ready=True)
    wait_until(lambda: cluster.pod_ready("on-2b") == "False", timeout=10,
               what="on-2b marked not ready again")

    cluster.heartbeats.start_beating("n2")  # the agent is back: Ready, then its pods
    wait_until(lambda: _node_ready(cluster, "n2") == "True", timeout=10, what="n2 Ready")
    cluster.set_status("on-2a", ready=True)
    cluster.set_status("on-2b", ready=True)
    cluster.wait_endpoints("web", all_ready)
    # and it stays healthy while heartbeats keep coming (well past the grace period)
    wait_until(lambda: cluster.controllers.metrics()[
        'miniplane_reconcile_total{controller="nodelifecycle",result="requeue"}'] >= 6,
        timeout=15, what="a few grace-period re-checks")
    assert _node_ready(cluster, "n2") == "True" and cluster.pod_ready("on-2a") == "True"


def test_node_that_never_posts_a_heartbeat_goes_unknown(make_cluster):
    cluster = make_cluster("--node-monitor-grace-period", "1")
    cluster.client.create(NODE, {"metadata": {"name": "mute"}})
    wait_until(lambda: _node_ready(cluster, "mute") == "Unknown", timeout=10,
               what="mute Ready=Unknown")
    assert condition(cluster.client.get(NODE, "mute"), "Ready")["reason"] == \
        "NodeStatusNeverUpdated"


def test_node_ipam_allocates_releases_and_survives_restarts(make_cluster):
    # alone on purpose: a process restarted after kill -9 would first wait out its dead
    # predecessor's Lease (test_controllers_election covers that)
    cluster = make_cluster("--leader-elect=false")
    for name in ("n1", "n2", "n3"):
        cluster.node(name, beating=False)

    def cidrs() -> dict[str, str | None]:
        return {n["metadata"]["name"]: n["spec"].get("podCIDR")
                for n in cluster.client.list(NODE)["items"]}

    wait_until(lambda: all(cidrs().values()), timeout=10, what="every node has a podCIDR")
    first = cidrs()
    assert sorted(first.values()) == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert cluster.client.get(NODE, "n1")["spec"]["podCIDRs"] == [first["n1"]]

    cluster.controllers.kill()
    cluster.client.delete(NODE, "n1")
    for name in ("n4", "n5"):
        cluster.node(name, beating=False)
    cluster.api.restart()
    cluster.controllers.start()
    wait_until(lambda: all(cidrs().values()), timeout=10, what="new nodes get podCIDRs")
    after = cidrs()
    assert after["n2"] == first["n2"] and after["n3"] == first["n3"]  # never changed
    assert len(set(after.values())) == len(after)  # never shared
    cluster_cidr = ipaddress.ip_network("10.244.0.0/16")
    assert all(ipaddress.ip_network(c).subnet_of(cluster_cidr) for c in after.values())

    cluster.client.delete(NODE, "n2")  # released while running, handed out last
    wait_until(lambda: "podCIDR 10.244.1.0/24 released" in cluster.controllers.log(),
               timeout=10, what="n2's CIDR released")
    cluster.node("n6", beating=False)
    wait_until(lambda: cidrs().get("n6"), timeout=10, what="n6 gets a podCIDR")
    assert cidrs()["n6"] not in set(after.values()) - {after["n2"]}


def test_scheduler_spreads_honours_selectors_and_explains_why_not(make_cluster):
    cluster = make_cluster()
    cluster.node("ssd-1", labels={"disk": "ssd"})
    cluster.node("ssd-2", labels={"disk": "ssd"})
    cluster.node("cordoned", labels={"disk": "ssd"})
    cluster.client.patch(NODE, "cordoned", {"spec": {"unschedulable": True}})
    cluster.node("silent", labels={"disk": "ssd"}, beating=False)
    cluster.client.patch(NODE, "silent", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "Broken"}]}},
        patch_type="strategic", subresource="status")

    for i in range(6):
        cluster.pod(f"w{i}", labels={"app": "w"}, node=None)

    def placement() -> Counter:
        return Counter(p["spec"].get("nodeName") for p in cluster.client.list(
            POD, "default", label_selector="app=w")["items"])

    wait_until(lambda: placement() == Counter({"ssd-1": 3, "ssd-2": 3}), timeout=15,
               what="six pods spread over the two usable nodes")
    scheduled = condition(cluster.client.get(POD, "w0", "default"), "PodScheduled")
    assert scheduled["status"] == "True"

    cluster.client.create(POD, {"metadata": {"name": "picky"}, "spec": {
        "nodeSelector": {"disk": "hdd"}, "containers": [{"name": "c", "image": "x"}]}},
        "default")

    def why() -> str | None:
        c = condition(cluster.client.get(POD, "picky", "default"), "PodScheduled")
        return c["message"] if c and c["status"] == "False" else None

    message = wait_until(why, timeout=10, what="picky PodScheduled=False")
    assert message == ("0/4 nodes are available: 1 node(s) were not ready, "
                       "1 node(s) were unschedulable, "
                       "2 node(s) didn't match Pod's node affinity/selector.")
    assert cluster.client.get(POD, "picky", "default")["spec"].get("nodeName") is None

    cluster.client.patch(NODE, "ssd-2", {"metadata": {"labels": {"disk": "hdd"}}})
    wait_until(lambda: cluster.client.get(POD, "picky", "default")["spec"].get("nodeName")
               == "ssd-2", timeout=10, what="picky bound once a node fits")

    def reasons() -> set[str]:  # what `mpctl describe pod picky` shows
        return {e["reason"] for e in cluster.client.list(
            EVENT, "default", field_selector="involvedObject.name=picky")["items"]}

    wait_until(lambda: reasons() >= {"FailedScheduling", "Scheduled"}, timeout=10,
               what="scheduling events")
    # From kube-scheduler's name, as `kubectl describe pod` shows it
    assert {e["source"]["component"] for e in cluster.client.list(
        EVENT, "default", field_selector="involvedObject.name=picky")["items"]} == {
        "default-scheduler"}
