"""v1 Endpoints end to end: a real mp-apiserver and a real mp-controllers process.

The controllers run as ``system:kube-controller-manager`` (a client certificate of
the test CA), so the bootstrap RBAC policy is what lets them write Endpoints. Pods
are API objects whose IP and readiness the test posts through ``/status``, as a
node agent would (``test_controllers_harness``). The API server advertises a
TEST-NET-1 address (only recorded, never reached), so it writes the ``kubernetes``
Service's Endpoints.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from apimachinery.kinds import ENDPOINTS, POD, SERVICE
from apimachinery.kubeconfig import kubeconfig
from client.errors import NotFound
from client.http import Client
from componentbase import files, pki
from controllers.endpointsubsets import TRIGGER_TIME_ANNOTATION
from controllers.objects import parse_time
from tests.conftest import (
    USER_KUBECTL,
    ApiServer,
    admin_config,
    admin_kubeconfig,
    session_pki,
    wait_until,
)
from tests.integration.callers import Callers, token_file
from tests.integration.test_controllers_harness import (
    READY,
    TERMINATING,
    Cluster,
    ControllerProcess,
    Heartbeats,
)

NS = "default"
ADVERTISE = "192.0.2.21"
TOKENS = {"eve": "eve-token-5b7c9d1f", "vic": "vic-token-3e5a7c9b"}
KUBECTL = str(USER_KUBECTL)
SYNCS = 'miniplane_reconcile_total{controller="endpoint",result="success"}'


def controller_manager_kubeconfig(directory: Path) -> str:
    """Credentials of ``system:kube-controller-manager`` (no groups), as a cluster's
    controllers carry: a client certificate from the test CA."""
    ca_dir = session_pki().directory
    ca = pki.ensure_ca(ca_dir)
    cert = pki.ensure_cert(ca_dir, "client-kcm", ca,
                           pki.client_identity("system:kube-controller-manager", []))
    path = directory / "kcm.kubeconfig"
    doc = kubeconfig("test", "https://127.0.0.1:6443", ca.cert_pem, cert_pem=cert.cert_pem,
                     key_pem=cert.key_pem)
    files.write_atomic(path, yaml.safe_dump(doc).encode())
    return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("endpoints")
    tokens = token_file(work / "tokens.csv", TOKENS)
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log",
                    extra_args=["--token-auth-file", str(tokens), "--advertise-address",
                                ADVERTISE, "--endpoint-reconcile-interval", "0.5s"])
    controllers = ControllerProcess(api.url, work / "controllers.log",
                                    kubeconfig=controller_manager_kubeconfig(work))
    client = Client(admin_config(api.url), timeout=10)
    made = Cluster(api, controllers, client, Heartbeats(api.url))
    try:
        api.start()
        controllers.start()
        yield made
    finally:
        made.heartbeats.close()
        controllers.stop()
        api.stop()
        client.close()


def endpoints(cluster: Cluster, name: str, ns: str = NS) -> dict | None:
    try:
        return cluster.client.get(ENDPOINTS, name, ns)
    except NotFound:
        return None


def addresses(ep: dict | None) -> tuple[list[str], list[str]]:
    """(ready IPs, not-ready IPs) over every subset, sorted."""
    subsets = (ep or {}).get("subsets") or []
    return (sorted(a["ip"] for s in subsets for a in s.get("addresses") or []),
            sorted(a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []))


def wait_addresses(cluster: Cluster, name: str, ready: list[str], not_ready: list[str] = (),
                   *, timeout: float = 15.0) -> dict:
    want = (sorted(ready), sorted(not_ready))
    seen: list = [None]

    def check() -> bool:
        seen[0] = endpoints(cluster, name)
        return seen[0] is not None and addresses(seen[0]) == want

    try:
        wait_until(check, timeout=timeout, what=f"endpoints {name} = {want}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: have {addresses(seen[0])}") from None
    assert seen[0] is not None
    return seen[0]


def syncs(cluster: Cluster) -> float:
    return cluster.controllers.metrics().get(SYNCS, 0.0)


def test_endpoints_follow_readiness_scaling_and_the_service(cluster: Cluster):
    cluster.client.create(SERVICE, {
        "metadata": {"name": "web", "namespace": NS, "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, NS)
    cluster.pod("web-1", labels={"app": "web"}, ip="10.244.1.1")
    cluster.pod("web-2", labels={"app": "web"}, ip="10.244.1.2")
    cluster.pod("web-3", labels={"app": "web"}, ip="10.244.1.3", ready=False)
    ep = wait_addresses(cluster, "web", ["10.244.1.1", "10.244.1.2"], ["10.244.1.3"])
    (subset,) = ep["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    first = subset["addresses"][0]
    assert first["nodeName"] == "n1"
    assert first["targetRef"]["kind"] == "Pod" and first["targetRef"]["name"] == "web-1"
    assert first["targetRef"]["uid"] == cluster.client.get(POD, "web-1", NS)["metadata"]["uid"]
    assert ep["metadata"]["labels"] == {"team": "blue"}
    assert "ownerReferences" not in ep["metadata"]
    trigger = parse_time(ep["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION])
    assert trigger is not None

    # readiness moves addresses between the lists
    cluster.set_status("web-3", ip="10.244.1.3", ready=True)
    cluster.set_status("web-1", ip="10.244.1.1", ready=False)
    wait_addresses(cluster, "web", ["10.244.1.2", "10.244.1.3"], ["10.244.1.1"])

    # scale up, then down
    for i in (4, 5, 6):
        cluster.pod(f"web-{i}", labels={"app": "web"}, ip=f"10.244.1.{i}")
    wait_addresses(cluster, "web", ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5",
                                    "10.244.1.6"], ["10.244.1.1"])
    for i in (1, 5, 6):
        cluster.client.delete(POD, f"web-{i}", NS, grace_period_seconds=0)
    wait_addresses(cluster, "web", ["10.244.1.2", "10.244.1.3", "10.244.1.4"])

    # a terminating pod leaves the Endpoints at once; its slice endpoint says terminating
    cluster.client.delete(POD, "web-4", NS)  # bound: graceful
    wait_addresses(cluster, "web", ["10.244.1.2", "10.244.1.3"])
    cluster.wait_endpoints("web", {"10.244.1.2": READY, "10.244.1.3": READY,
                                   "10.244.1.4": TERMINATING})

    # the Service goes, and its Endpoints with it
    cluster.client.delete(SERVICE, "web", NS)
    wait_until(lambda: endpoints(cluster, "web") is None, timeout=15,
               what="the deleted Service's endpoints to go")


def test_named_ports_publish_not_ready_and_headless_hostnames(cluster: Cluster):
    cluster.service("named", ports=[{"name": "http", "port": 80, "targetPort": "web"}],
                    publishNotReadyAddresses=True, clusterIP="None")
    cluster.pod("n-1", labels={"app": "named"}, ip="10.244.2.1", ready=False,
                ports=[{"name": "web", "containerPort": 8080}])
    cluster.client.create(POD, {
        "metadata": {"name": "n-2", "namespace": NS, "labels": {"app": "named"}},
        "spec": {"nodeName": "n1", "hostname": "two", "subdomain": "named",
                 "containers": [{"name": "main", "image": "busybox",
                                 "ports": [{"name": "web", "containerPort": 9090}]}]}}, NS)
    cluster.set_status("n-2", ip="10.244.2.2")
    ep = wait_addresses(cluster, "named", ["10.244.2.1", "10.244.2.2"])
    by_port = {s["ports"][0]["port"]: s["addresses"] for s in ep["subsets"]}
    assert sorted(by_port) == [8080, 9090]
    assert by_port[9090] == [{"ip": "10.244.2.2", "hostname": "two", "nodeName": "n1",
                              "targetRef": {"kind": "Pod", "namespace": NS, "name": "n-2",
                                            "uid": by_port[9090][0]["targetRef"]["uid"]}}]
    assert "hostname" not in by_port[8080][0]
    assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}


def test_a_quiet_world_is_not_rewritten_even_across_a_controller_restart(cluster: Cluster):
    cluster.service("calm")
    for i in (1, 2):
        cluster.pod(f"calm-{i}", labels={"app": "calm"}, ip=f"10.244.3.{i}")
    version = wait_addresses(cluster, "calm", ["10.244.3.1", "10.244.3.2"])[
        "metadata"]["resourceVersion"]
    before = syncs(cluster)
    cluster.client.patch(POD, "calm-1", {"metadata": {"annotations": {"x": "y"}}},
                         namespace=NS)  # a change the Endpoints don't show
    wait_until(lambda: syncs(cluster) > before, timeout=10, what="a sync of calm")
    assert endpoints(cluster, "calm")["metadata"]["resourceVersion"] == version

    # a Service deleted while the controller is away: its Endpoints go at the restart
    cluster.service("orphan")
    cluster.pod("orphan-1", labels={"app": "orphan"}, ip="10.244.3.9")
    wait_addresses(cluster, "orphan", ["10.244.3.9"])
    cluster.controllers.stop()
    cluster.client.delete(SERVICE, "orphan", NS)
    cluster.controllers.start()  # relists and syncs every Service again
    wait_until(lambda: endpoints(cluster, "orphan") is None, timeout=20,
               what="the orphaned endpoints to be deleted")
    services = len(cluster.client.list(SERVICE)["items"])
    wait_until(lambda: syncs(cluster) >= services, timeout=20,
               what="the restarted controller to sync every Service")
    assert endpoints(cluster, "calm")["metadata"]["resourceVersion"] == version

    # and a hand edit is put back
    edited = endpoints(cluster, "calm")
    edited["subsets"][0]["addresses"] = edited["subsets"][0]["addresses"][:1]
    cluster.client.replace(ENDPOINTS, edited, NS)
    wait_addresses(cluster, "calm", ["10.244.3.1", "10.244.3.2"])
    # and a deleted one made again
    cluster.client.delete(ENDPOINTS, "calm", NS)
    wait_addresses(cluster, "calm", ["10.244.3.1", "10.244.3.2"])


def test_selectorless_services_keep_their_own_endpoints(cluster: Cluster):
    cluster.service("manual", selector={})
    cluster.pod("m-1", labels={"app": "manual"}, ip="10.244.4.1")
    made = cluster.client.create(ENDPOINTS, {
        "metadata": {"name": "manual", "namespace": NS},
        "subsets": [{"addresses": [{"ip": "192.0.2.50"}], "ports": [{"port": 5432}]}]}, NS)
    before = syncs(cluster)
    cluster.client.patch(SERVICE, "manual", {"metadata": {"labels": {"touched": "yes"}}},
                         namespace=NS)
    wait_until(lambda: syncs(cluster) > before, timeout=10, what="a sync of manual")
    kept = endpoints(cluster, "manual")
    assert kept is not None
    assert kept["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert addresses(kept) == (["192.0.2.50"], [])


def test_the_api_server_writes_the_kubernetes_endpoints(cluster: Cluster):
    want = [{"addresses": [{"ip": ADVERTISE}],
             "ports": [{"name": "https", "port": cluster.api.port, "protocol": "TCP"}]}]

    def written() -> bool:
        ep = endpoints(cluster, "kubernetes")
        return ep is not None and ep.get("subsets") == want

    wait_until(written, timeout=15, what="the kubernetes Service's endpoints")
    ep = endpoints(cluster, "kubernetes")
    assert ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    # a hand edit is undone at the next round
    ep["subsets"] = [{"addresses": [{"ip": "203.0.113.66"}], "ports": [{"port": 1}]}]
    cluster.client.replace(ENDPOINTS, ep, NS)
    wait_until(written, timeout=15, what="the kubernetes endpoints put back")


def test_only_who_may_writes_endpoints(cluster: Cluster):
    cluster.service("guarded")
    cluster.pod("g-1", labels={"app": "guarded"}, ip="10.244.5.1")
    current = wait_addresses(cluster, "guarded", ["10.244.5.1"])
    callers = Callers(cluster.api)
    try:
        admin = callers.admin()
        path = f"/api/v1/namespaces/{NS}/endpoints"
        binding = {"metadata": {"name": "vic-view"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "view"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                 "name": "vic"}]}
        made = admin.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings",
                          json=binding)
        assert made.status_code == 201, made.text
        eve = callers.token(TOKENS["eve"])  # no binding at all
        vic = callers.token(TOKENS["vic"])  # view: may read, not write
        wait_until(lambda: vic.get(f"{path}/guarded").status_code == 200, timeout=10,
                   what="vic's binding to take effect")
        forged = {"metadata": {"name": "forged", "namespace": NS},
                  "subsets": [{"addresses": [{"ip": "203.0.113.9"}], "ports": [{"port": 80}]}]}
        hijack = {**current, "subsets": forged["subsets"]}
        for who, caller in (("eve", eve), ("vic", vic)):
            for resp in (caller.post(path, json=forged),
                         caller.put(f"{path}/guarded", json=hijack),
                         caller.delete(f"{path}/guarded")):
                assert resp.status_code == 403, resp.text
                body = resp.json()
                assert body["reason"] == "Forbidden"
                assert f'User "{who}" cannot' in body["message"]
                assert 'resource "endpoints"' in body["message"]
        assert eve.get(f"{path}/guarded").status_code == 403
        assert admin.get(f"{path}/forged").status_code == 404
        assert addresses(endpoints(cluster, "guarded")) == (["10.244.5.1"], [])
    finally:
        callers.close()


@pytest.mark.skipif(shutil.which(KUBECTL) is None, reason="kubectl is not installed")
def test_kubectl_get_ep_shows_the_addresses(cluster: Cluster, tmp_path: Path):
    cluster.service("shown")
    cluster.pod("s-1", labels={"app": "shown"}, ip="10.244.6.1")
    cluster.pod("s-2", labels={"app": "shown"}, ip="10.244.6.2", ready=False)
    wait_addresses(cluster, "shown", ["10.244.6.1"], ["10.244.6.2"])
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    base = [KUBECTL, "--kubeconfig", admin_kubeconfig(), "--server", cluster.api.url,
            "--cache-dir", str(tmp_path / "cache")]

    def kubectl(*args: str) -> str:
        proc = subprocess.run([*base, *args], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    ready = kubectl("get", "ep", "shown", "-o",
                    "jsonpath={.subsets[*].addresses[*].ip}")
    not_ready = kubectl("get", "endpoints", "shown", "-o",
                        "jsonpath={.subsets[*].notReadyAddresses[*].ip}")
    assert (ready.split(), not_ready.split()) == (["10.244.6.1"], ["10.244.6.2"])
    listed = kubectl("get", "ep", "-n", NS, "-o", "name").split()
    assert "endpoints/shown" in listed and "endpoints/kubernetes" in listed
