"""EndpointSlices end to end: real mp-apiserver and mp-controllers processes.

Pods are bound at creation to node names that have no Node object (so node
lifecycle leaves them alone) and get their IP and readiness through ``/status``
from the test, as a node agent would post them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from apimachinery.kinds import ENDPOINTSLICE, NAMESPACE, POD, SERVICE
from controllers.objects import parse_time
from controllers.slices import TRIGGER_TIME_ANNOTATION, desired_endpoints
from tests.conftest import BIN, free_port, wait_until
from tests.integration.test_controllers_harness import (
    NOT_READY,
    READY,
    TERMINATING,
    Cluster,
    clusters,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Cluster]:
    """One cluster for the tests that only add objects of their own names: starting
    processes is most of a test's time."""
    with clusters(tmp_path_factory.mktemp("shared")) as make:
        yield make()


@pytest.fixture
def make_cluster(tmp_path) -> Iterator[Callable[..., Cluster]]:
    with clusters(tmp_path) as make:
        yield make


def test_slices_appear_whatever_order_pods_and_services_come_in(shared: Cluster):
    cluster = shared
    # pods first, then their service
    cluster.pod("a-1", labels={"app": "a"}, ip="10.244.1.1")
    cluster.pod("a-2", labels={"app": "a"}, ip="10.244.1.2", ready=False)
    cluster.service("a")
    # service first, then pods (one without an IP yet)
    cluster.service("b")
    cluster.pod("b-1", labels={"app": "b"}, ip="10.244.2.1")
    cluster.pod("b-2", labels={"app": "b"})
    # interleaved, and a pod matching both b and c
    cluster.pod("c-1", labels={"app": "c"}, ip="10.244.3.1")
    cluster.service("c", selector={"role": "shared"})
    cluster.pod("shared", labels={"app": "b", "role": "shared"}, ip="10.244.3.9")
    cluster.wait_endpoints("a", {"10.244.1.1": READY, "10.244.1.2": NOT_READY})
    cluster.wait_endpoints("b", {"10.244.2.1": READY, "10.244.3.9": READY})
    cluster.wait_endpoints("c", {"10.244.3.9": READY})
    cluster.set_status("b-2", ip="10.244.2.2")  # the IP arrives later
    cluster.wait_endpoints("b", {"10.244.2.1": READY, "10.244.2.2": READY,
                                 "10.244.3.9": READY})

    (slice_a,) = cluster.slices("a")
    meta = slice_a["metadata"]
    assert meta["generateName"] == "a-"
    assert meta["ownerReferences"][0]["uid"] == cluster.client.get(SERVICE, "a", "default")[
        "metadata"]["uid"]
    assert slice_a["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    trigger = parse_time(meta["annotations"][TRIGGER_TIME_ANNOTATION])
    assert trigger is not None and abs(time.time() - trigger) < 60
    endpoint = next(e for e in slice_a["endpoints"] if e["addresses"] == ["10.244.1.1"])
    assert endpoint["nodeName"] == "n1"
    assert endpoint["targetRef"]["name"] == "a-1" and endpoint["targetRef"]["kind"] == "Pod"
    # the API server's own Service has no selector: it gets no managed slices
    assert cluster.slices("kubernetes") == []


def test_named_ports_and_publish_not_ready(shared: Cluster):
    cluster = shared
    ports = [{"name": "http", "port": 80, "targetPort": "web"}]
    cluster.service("named", ports=ports, publishNotReadyAddresses=True)
    cluster.pod("n-1", labels={"app": "named"}, ip="10.244.4.1", ready=False,
                ports=[{"name": "web", "containerPort": 8080}])
    cluster.pod("n-2", labels={"app": "named"}, ip="10.244.4.2",
                ports=[{"name": "web", "containerPort": 9090}])
    cluster.wait_endpoints("named", {"10.244.4.1": (True, False, False),
                                     "10.244.4.2": READY})
    by_port = {s["ports"][0]["port"]: [e["addresses"][0] for e in s["endpoints"]]
               for s in cluster.slices("named")}
    assert by_port == {8080: ["10.244.4.1"], 9090: ["10.244.4.2"]}


def test_unready_then_deleted_pod_goes_not_ready_terminating_then_away(shared: Cluster):
    cluster = shared
    cluster.service("web")
    cluster.pod("web-1", labels={"app": "web"}, ip="10.244.5.1")
    cluster.pod("web-2", labels={"app": "web"}, ip="10.244.5.2")
    cluster.wait_endpoints("web", {"10.244.5.1": READY, "10.244.5.2": READY})

    cluster.set_status("web-1", ready=False)
    cluster.wait_endpoints("web", {"10.244.5.1": NOT_READY, "10.244.5.2": READY})
    cluster.set_status("web-1", ready=True)
    cluster.wait_endpoints("web", {"10.244.5.1": READY, "10.244.5.2": READY})

    deleted = cluster.client.delete(POD, "web-1", "default")  # bound: graceful
    assert deleted["metadata"]["deletionTimestamp"]
    cluster.wait_endpoints("web", {"10.244.5.1": TERMINATING, "10.244.5.2": READY})
    cluster.client.delete(POD, "web-1", "default", grace_period_seconds=0)  # the "agent"
    cluster.wait_endpoints("web", {"10.244.5.2": READY})

    cluster.client.delete(POD, "web-2", "default", grace_period_seconds=0)
    cluster.wait_endpoints("web", {})
    (placeholder,) = cluster.slices("web")  # one empty slice says "reconciled, none"
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []


def test_relabelled_pod_moves_between_services(shared: Cluster):
    cluster = shared
    cluster.service("blue")
    cluster.service("green")
    cluster.pod("p", labels={"app": "blue"}, ip="10.244.6.1")
    cluster.pod("q", labels={"app": "green"}, ip="10.244.6.2")
    cluster.wait_endpoints("blue", {"10.244.6.1": READY})
    cluster.wait_endpoints("green", {"10.244.6.2": READY})
    cluster.relabel("p", {"app": "green"})
    cluster.wait_endpoints("blue", {})
    cluster.wait_endpoints("green", {"10.244.6.1": READY, "10.244.6.2": READY})
    cluster.client.patch(SERVICE, "blue", {"spec": {"selector": {"app": "green"}}},
                         namespace="default")
    cluster.wait_endpoints("blue", {"10.244.6.1": READY, "10.244.6.2": READY})


def test_250_pods_make_three_slices_and_a_quiet_world_is_not_rewritten(shared: Cluster):
    cluster = shared
    expected = {}
    for i in range(250):
        ip = f"10.244.{10 + i // 200}.{i % 200 + 1}"
        cluster.pod(f"big-{i:03d}", labels={"app": "big"}, ip=ip)
        expected[ip] = READY
    cluster.service("big")
    cluster.wait_endpoints("big", expected, timeout=30)
    slices = cluster.slices("big")
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]

    versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices}
    before = cluster.controllers.metrics()
    syncs = 'miniplane_reconcile_total{controller="endpointslice",result="success"}'
    for i in range(5):  # changes the slices don't show: no slice write may follow
        cluster.client.patch(POD, f"big-{i:03d}", {"metadata": {"annotations": {"x": "y"}}},
                             namespace="default")
    wait_until(lambda: cluster.controllers.metrics()[syncs] > before[syncs], timeout=10,
               what="the controller to look at the touched pods")
    assert {s["metadata"]["name"]: s["metadata"]["resourceVersion"]
            for s in cluster.slices("big")} == versions

    cluster.set_status("big-123", ready=False)  # one flip: one slice written
    expected[cluster.client.get(POD, "big-123", "default")["status"]["podIP"]] = NOT_READY
    cluster.wait_endpoints("big", expected)
    after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"]
             for s in cluster.slices("big")}
    assert sum(after[name] != versions[name] for name in versions) == 1


def test_deleting_a_service_removes_its_slices_and_hand_made_ones_stay(shared: Cluster):
    cluster = shared
    cluster.service("gone")
    cluster.pod("g-1", labels={"app": "gone"}, ip="10.244.7.1")
    cluster.wait_endpoints("gone", {"10.244.7.1": READY})
    hand_made = cluster.client.create(ENDPOINTSLICE, {
        "metadata": {"name": "gone-manual", "labels": {
            "kubernetes.io/service-name": "gone",
            "endpointslice.kubernetes.io/managed-by": "someone-else"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": []},
        "default")
    cluster.client.delete(SERVICE, "gone", "default")
    wait_until(lambda: cluster.slices("gone") == [], timeout=10, what="managed slices gone")
    assert cluster.exists(ENDPOINTSLICE, hand_made["metadata"]["name"], "default")


def _expected_endpoints(cluster: Cluster, ns: str = "default") -> dict[str, dict]:
    """What the slices should list, computed from the API's current state."""
    pods = cluster.client.list(POD, ns)["items"]
    out = {}
    for service in cluster.client.list(SERVICE, ns)["items"]:
        if not (service["spec"].get("selector")):
            continue
        wanted = desired_endpoints(service, pods)
        out[service["metadata"]["name"]] = {
            ip: (e["conditions"]["ready"], e["conditions"]["serving"],
                 e["conditions"]["terminating"])
            for by_ip in wanted.values() for ip, e in by_ip.items()}
    return out


def _converged(cluster: Cluster) -> bool:
    expected = _expected_endpoints(cluster)
    managed = {s["metadata"]["labels"]["kubernetes.io/service-name"]
               for s in cluster.client.list(ENDPOINTSLICE, "default")["items"]
               if s["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by")}
    return managed == set(expected) and all(
        cluster.endpoints(name) == want for name, want in expected.items())


def test_killed_controller_and_restarted_apiserver_converge(make_cluster):
    # alone on purpose: a process restarted after kill -9 would first wait out its dead
    # predecessor's Lease (test_controllers_election covers that)
    cluster = make_cluster("--leader-elect=false")
    for s in range(6):
        cluster.service(f"svc{s}")
    for i in range(15):
        cluster.pod(f"pod{i}", labels={"app": f"svc{i % 6}"}, ip=f"10.244.8.{i + 1}",
                    ready=i % 4 != 0)
    writes = 'miniplane_api_writes_total{controller="endpointslice",' \
             'resource="endpointslices",verb="update"}'
    wait_until(lambda: cluster.controllers.metrics().get(writes, 0) > 0, timeout=10,
               what="the controller at work")
    cluster.controllers.kill()  # mid-way, with work in flight; changes pile up meanwhile
    for i in range(15, 30):
        cluster.pod(f"pod{i}", labels={"app": f"svc{i % 6}"}, ip=f"10.244.8.{i + 1}",
                    ready=i % 4 != 0)
    cluster.client.delete(SERVICE, "svc0", "default")
    for i in range(30, 40):
        cluster.pod(f"pod{i}", labels={"app": f"svc{i % 6}"}, ip=f"10.244.8.{i + 1}")
    cluster.set_status("pod1", ready=False)
    cluster.relabel("pod2", {"app": "svc3"})
    cluster.client.delete(POD, "pod3", "default", grace_period_seconds=0)
    cluster.service("svc6", selector={"app": "svc1"})
    cluster.controllers.start()
    wait_until(lambda: _converged(cluster), timeout=20, what="convergence after the restart")
    assert cluster.slices("svc0") == []

    cluster.api.restart()  # the informers resume or relist; the world converges again
    cluster.set_status("pod5", ready=False)
    cluster.pod("pod40", labels={"app": "svc2"}, ip="10.244.8.41")
    wait_until(lambda: _converged(cluster), timeout=30,
               what="convergence after the API server restart")

    cluster.api.kill()  # and once more the hard way, with the controller's watches open
    cluster.api.start()
    cluster.client.delete(SERVICE, "svc4", "default")
    cluster.set_status("pod5", ready=True)
    wait_until(lambda: _converged(cluster), timeout=30,
               what="convergence after the API server was killed")
    assert cluster.controllers.proc is not None and cluster.controllers.proc.poll() is None


def test_namespace_deletion_takes_slices_and_pods_with_it(make_cluster):
    cluster = make_cluster("--node-monitor-grace-period", "2")
    cluster.namespace("team-x")
    cluster.node("live")  # its "agent" finishes its pods' deletion below
    cluster.node("dead", beating=False)
    cluster.service("api", ns="team-x")
    cluster.pod("api-1", labels={"app": "api"}, ns="team-x", node="live", ip="10.244.9.1",
                grace=1)
    cluster.pod("api-2", labels={"app": "api"}, ns="team-x", node="dead", ip="10.244.9.2",
                grace=1)
    cluster.wait_endpoints("api", {"10.244.9.1": READY, "10.244.9.2": READY}, ns="team-x")

    cluster.client.delete(NAMESPACE, "team-x")
    wait_until(lambda: cluster.slices("api", ns="team-x") == [], timeout=10,
               what="the namespace's slices to go")
    # the live node's agent finishes its pod; the dead node's pod is force-deleted
    # once its grace period is over and its node has gone Ready=Unknown
    wait_until(lambda: cluster.exists(POD, "api-1", "team-x") and
               cluster.client.get(POD, "api-1", "team-x")["metadata"].get("deletionTimestamp"),
               timeout=5, what="api-1 terminating")
    cluster.client.delete(POD, "api-1", "team-x", grace_period_seconds=0)
    wait_until(lambda: not cluster.exists(NAMESPACE, "team-x"), timeout=20,
               what="the namespace to be gone")
    wait_until(lambda: "pod team-x/api-2: force-deleted" in cluster.controllers.log(),
               timeout=5, what="the force deletion logged")

    cluster.namespace("team-x")  # same name again: nothing stale in the controller
    cluster.service("api", ns="team-x")
    cluster.pod("api-3", labels={"app": "api"}, ns="team-x", node="live", ip="10.244.9.3")
    cluster.wait_endpoints("api", {"10.244.9.3": READY}, ns="team-x")
    errors = cluster.controllers.metrics()
    assert errors.get('miniplane_reconcile_errors_total{controller="endpointslice"}', 0) <= 3


def test_flags_health_metrics_and_sigterm(make_cluster, tmp_path):
    bad = subprocess.run([str(BIN / "mp-controllers"), "--max-endpoints-per-slice", "0"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "--max-endpoints-per-slice" in bad.stderr
    unknown = subprocess.run([str(BIN / "mp-controllers"), "--no-such-flag"],
                             capture_output=True, text=True, timeout=20)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1

    cluster = make_cluster("--node-monitor-grace-period", "40")
    url = cluster.controllers.metrics_url
    assert httpx.get(url + "/healthz").text == "ok\n"
    metrics = httpx.get(url + "/metrics").text
    for name in ("miniplane_workqueue_depth", "miniplane_reconcile_total",
                 "miniplane_reconcile_duration_seconds", "miniplane_reconcile_errors_total"):
        assert f"# TYPE {name}" in metrics

    busy = subprocess.run([str(BIN / "mp-controllers"), "--server", cluster.api.url,
                           "--kubeconfig", cluster.api.kubeconfig,
                           "--metrics-listen", f"127.0.0.1:{cluster.controllers.metrics_port}"],
                          capture_output=True, text=True, timeout=20)
    assert busy.returncode == 1 and "cannot listen" in busy.stderr

    started = time.monotonic()
    assert cluster.controllers.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    port = free_port()  # and with no API server at all, SIGTERM still ends it cleanly
    log_path = tmp_path / "lonely.log"
    with open(log_path, "wb") as log:
        lonely = subprocess.Popen([str(BIN / "mp-controllers"), "--server",
                                   f"https://127.0.0.1:{port}"], stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "retry" in log_path.read_text(), timeout=20,
                   what="a controller retrying a missing API server")
        lonely.send_signal(signal.SIGTERM)
        assert lonely.wait(timeout=10) == 0
    finally:
        if lonely.poll() is None:
            lonely.kill()
            lonely.wait()
