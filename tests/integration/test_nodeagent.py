"""mp-nodeagent's node and pod runtime against real processes and namespaces.

Topology (every namespace ``mp-t<random>-…``, built and removed by the fixture)::

    fabric (bridge br0) ── node-a eth0 10.250.0.2   cni0 10.244.x.1 ── pods
                        └─ node-b eth0 10.250.0.3   cni0 10.244.y.1 ── pods

A real mp-apiserver, a real mp-controllers (node IPAM, lifecycle) and one
mp-nodeagent per node. The agents name pod namespaces ``mp-t<random>-pod-…`` (the
cluster name is the run's), so ``Lab.leftovers`` sees them too. Teardown deletes
every pod through the API (the agents clean up), stops the agents, then sweeps
anything left, even when a test failed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apimachinery.kinds import LEASE, NODE, POD
from apimachinery.nodelease import NODE_LEASE_NAMESPACE
from client.errors import NotFound
from client.http import Client
from tests.conftest import (
    BIN,
    ApiServer,
    ManagedProcess,
    admin_config,
    admin_kubeconfig,
    wait_until,
)
from tests.integration.test_controllers_harness import ControllerProcess
from tests.netns import Lab, have_root_tools, sh, socket_in, sweep

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

NODES = {"node-a": "10.250.0.2", "node-b": "10.250.0.3"}
GRACE = 8  # the controllers' --node-monitor-grace-period
NS = "default"

# A pod's HTTP server: /healthz answers 200 while the file named by $READY exists,
# every other path 200; each refused /healthz adds a line to $READY.refused, so a test
# can tell that probes ran and failed. The first line of an answer is the status line.
SERVER = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path != '/healthz' or os.path.exists(os.environ['READY'])
        if not ok:
            with open(os.environ['READY'] + '.refused', 'a') as f:
                f.write('x\\n')
        body = (os.environ.get('NAME', '') + '\\n').encode()
        self.send_response(200 if ok else 503)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', int(sys.argv[1])), H).serve_forever()
"""
# Ignores SIGTERM; touches argv[1] once it does, which its readiness probe checks.
IGNORE_TERM = ("import signal, sys, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
               " pathlib.Path(sys.argv[1]).touch(); time.sleep(600)")


@dataclass
class Agent(ManagedProcess):
    """One real mp-nodeagent in ``netns``; it has no status port here, so starting it
    waits for nothing (the tests wait for what the agent writes)."""

    node: str
    netns: str
    state: Path
    log_path: Path
    api: str
    cluster: str
    proc: subprocess.Popen[bytes] | None = None
    label = "mp-nodeagent"

    def command(self) -> list[str]:
        return [str(BIN / "mp-nodeagent"), "--server", self.api, "--kubeconfig",
                admin_kubeconfig(), "--node", self.node,
                "--netns", self.netns, "--state-dir", str(self.state),
                "--cluster-name", self.cluster, "--heartbeat-interval", "1s",
                "--restart-backoff", "200ms", "--max-restart-backoff", "1s",
                "--log-level", "debug"]

    def start(self, *, wait_ready: bool = False) -> Agent:
        return super().start(wait_ready=wait_ready)


@dataclass
class Cluster:
    lab: Lab
    client: Client
    tmp: Path
    agents: dict[str, Agent] = field(default_factory=dict)
    node_ns: dict[str, str] = field(default_factory=dict)

    def pod(self, name: str, node: str, containers: list[dict[str, Any]], **spec: Any
            ) -> dict[str, Any]:
        return self.client.create(POD, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": node, "containers": containers, **spec}}, NS)

    def get(self, name: str) -> dict[str, Any]:
        return self.client.get(POD, name, NS)

    def ready(self, name: str) -> str | None:
        conds = {c["type"]: c["status"] for c in self.get(name).get("status", {})
                 .get("conditions") or []}
        return conds.get("Ready")

    def container(self, name: str) -> dict[str, Any]:
        statuses = self.get(name).get("status", {}).get("containerStatuses") or [{}]
        return statuses[0]

    def pod_ns(self, name: str) -> str:
        return f"{self.lab.run}-pod-{self.get(name)['metadata']['uid'].replace('-', '')[:8]}"

    def delete_and_wait(self, name: str, timeout: float = 20) -> None:
        with contextlib.suppress(NotFound):
            self.client.delete(POD, name, NS)
        wait_until(lambda: self._gone(name), timeout=timeout, what=f"pod {name} to go")

    def _gone(self, name: str) -> bool:
        try:
            self.get(name)
        except NotFound:
            return True
        return False


def server(name: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "web", "image": "python", "command": [sys.executable, "-c", SERVER],
            "args": ["8080"], "env": [{"name": "READY", "value": str(tmp / f"{name}.ready")},
                                      {"name": "NAME", "value": name}],
            "ports": [{"name": "http", "containerPort": 8080}], **extra}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("nodeagent")
    lab = Lab()
    cluster_name = lab.run[len("mp-"):]
    api = ApiServer(db_path=tmp / "state.db", log_path=tmp / "apiserver.log")
    ctl: ControllerProcess | None = None
    c: Cluster | None = None
    try:
        fabric = lab.ns("fabric")
        sh("ip", "-n", fabric, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", fabric, "link", "set", "br0", "up")
        node_ns = {}
        for i, (node, ip) in enumerate(NODES.items()):
            ns = lab.ns(f"node-{node[-1]}")
            lab.veth(fabric, f"n{i}", ns, "eth0")
            sh("ip", "-n", fabric, "link", "set", f"n{i}", "master", "br0")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            node_ns[node] = ns
        api.start()
        ctl = ControllerProcess(api.url, tmp / "controllers.log",
                                args=["--node-monitor-grace-period", str(GRACE)]).start()
        c = Cluster(lab=lab, client=Client(admin_config(api.url)), tmp=tmp, node_ns=node_ns)
        for node, ns in node_ns.items():
            agent = Agent(node, ns, tmp / f"state-{node}", tmp / f"agent-{node}.log", api.url,
                          cluster_name)
            agent.start()
            c.agents[node] = agent
        yield c
    finally:
        if c is not None:
            with contextlib.suppress(Exception):
                for pod in c.client.list(POD, NS)["items"]:
                    with contextlib.suppress(NotFound):
                        c.client.delete(POD, pod["metadata"]["name"], NS,
                                        grace_period_seconds=1)
                wait_until(lambda: not c.client.list(POD, NS)["items"], timeout=15,
                           what="every pod to be deleted")
            for agent in c.agents.values():
                agent.stop()
            c.client.close()
        if ctl is not None:
            ctl.stop()
        api.stop()
        swept = sweep(lab.run + "-pod-")
        lab.close()
        assert lab.leftovers() == []
        assert not list(Path("/etc/netns").glob(lab.run + "*")) \
            if Path("/etc/netns").is_dir() else True
        assert swept == [], f"agents left pod namespaces behind: {swept}"


def node_ready(c: Cluster, node: str) -> dict[str, Any] | None:
    n = c.client.get(NODE, node)
    conds = {x["type"]: x for x in n.get("status", {}).get("conditions") or []}
    if conds.get("Ready", {}).get("status") == "True" and n.get("spec", {}).get("podCIDR"):
        return n
    return None


def test_nodes_register_heartbeat_and_build_their_network(cluster: Cluster) -> None:
    nodes = {name: wait_until(lambda name=name: node_ready(cluster, name), timeout=30,
                              what=f"{name} Ready with a pod CIDR") for name in NODES}
    for name, n in nodes.items():
        assert {"type": "InternalIP", "address": NODES[name]} in n["status"]["addresses"]
        assert n["status"]["nodeInfo"]["operatingSystem"] == "linux"
    first = first_lease(cluster, "node-a")["spec"]["renewTime"]
    wait_until(lambda: lease_of(cluster, "node-a")["spec"]["renewTime"] != first, timeout=5,
               what="a Lease renewal")
    for name, ns in cluster.node_ns.items():
        cidr = nodes[name]["spec"]["podCIDR"]
        gw = str(ipaddress.ip_network(cidr).network_address + 1)
        wait_until(lambda ns=ns, gw=gw: gw in sh("ip", "-n", ns, "-4", "addr", "show", "cni0",
                                                 check=False).stdout,
                   timeout=10, what=f"cni0 with {gw} in {ns}")
        assert cluster.lab.exec(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
        assert cluster.lab.exec(ns, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables"
                                ).stdout.strip() == "1"
        assert "10.96.0.0/16 dev cni0" in sh("ip", "-n", ns, "route").stdout
        other = next(o for o in NODES if o != name)
        route = f"{nodes[other]['spec']['podCIDR']} via {NODES[other]}"
        wait_until(lambda ns=ns, route=route: route in sh("ip", "-n", ns, "route").stdout,
                   timeout=10, what=f"route {route} in {ns}")


def lease_of(c: Cluster, node: str) -> dict[str, Any]:
    return c.client.get(LEASE, node, NODE_LEASE_NAMESPACE)


def first_lease(c: Cluster, node: str) -> dict[str, Any]:
    """The Lease once it exists: as a kubelet's, it is created after the Node is
    registered (it names the Node as owner), so a Ready Node may briefly have none."""
    def get() -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            return lease_of(c, node)
        return None
    return wait_until(get, timeout=10, what=f"{node}'s Lease")


def test_node_heartbeats_through_its_lease_and_writes_its_status_sparsely(
        cluster: Cluster) -> None:
    node = wait_until(lambda: node_ready(cluster, "node-b"), timeout=30,
                      what="node-b Ready with a pod CIDR")
    lease = first_lease(cluster, "node-b")
    assert lease["spec"]["holderIdentity"] == "node-b"
    assert lease["spec"]["leaseDurationSeconds"] == 4  # 4 × --heartbeat-interval, as kubelet
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "node-b",
         "uid": node["metadata"]["uid"]}]
    # Longer than the controllers' grace period (8 s): the Lease is renewed every
    # second, the Node is not written at all (its status is reported every 5 min
    # unless it changes), and the node stays Ready.
    written = node["metadata"]["resourceVersion"]
    renewals = {lease["spec"]["renewTime"]}
    deadline = time.monotonic() + GRACE + 1
    while time.monotonic() < deadline:
        renewals.add(lease_of(cluster, "node-b")["spec"]["renewTime"])
        now = cluster.client.get(NODE, "node-b")
        assert now["metadata"]["resourceVersion"] == written, now["status"]
        time.sleep(0.2)  # the pace of looking; the window is the deadline
    assert len(renewals) >= GRACE
    assert node_ready(cluster, "node-b") is not None


def test_pod_ready_after_readiness_probe_and_reachable_across_nodes(cluster: Cluster) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1,
             "failureThreshold": 1}
    cluster.pod("web-a", "node-a", [server("web-a", cluster.tmp, readinessProbe=probe)])
    cluster.pod("web-b", "node-b", [server("web-b", cluster.tmp)])
    a = wait_until(lambda: (p := cluster.get("web-a")).get("status", {}).get("phase")
                   == "Running" and p, timeout=30, what="web-a Running")
    cidr = cluster.client.get(NODE, "node-a")["spec"]["podCIDR"]
    assert ipaddress.ip_address(a["status"]["podIP"]) in ipaddress.ip_network(cidr)
    assert a["status"]["hostIP"] == NODES["node-a"]
    refused = cluster.tmp / "web-a.ready.refused"
    wait_until(lambda: refused.exists() and len(refused.read_text().splitlines()) >= 3,
               timeout=15, what="three failed readiness probes of web-a")
    assert cluster.ready("web-a") == "False"  # probes ran and failed: still not ready
    (cluster.tmp / "web-a.ready").touch()
    wait_until(lambda: cluster.ready("web-a") == "True", timeout=10, what="web-a Ready")
    wait_until(lambda: cluster.ready("web-b") == "True", timeout=30, what="web-b Ready")
    pod_a, pod_b = cluster.pod_ns("web-a"), cluster.pod_ns("web-b")
    resolv = Path(f"/etc/netns/{pod_a}/resolv.conf").read_text().splitlines()
    # the host's own search domains (if any) follow the cluster's, as kubelet has it
    assert resolv[0].startswith("search default.svc.cluster.local svc.cluster.local "
                                "cluster.local")
    assert resolv[1:] == ["nameserver 10.96.0.10", "options ndots:5"]
    # pod on node-b → pod on node-a by IP, over the fabric
    ip_a = a["status"]["podIP"]
    wait_until(lambda: _http_get(pod_b, ip_a), timeout=10, what="pod on b → pod on a by IP")
    # readiness starting to fail makes the pod not ready
    (cluster.tmp / "web-a.ready").unlink()
    wait_until(lambda: cluster.ready("web-a") == "False", timeout=10, what="web-a not ready")
    assert cluster.get("web-a")["status"]["phase"] == "Running"


def _http_get(ns: str, ip: str) -> bool:
    sock = socket_in(ns)
    with sock:
        sock.settimeout(1)
        sock.connect((ip, 8080))
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return sock.makefile("rb").readline().startswith(b"HTTP/1.0 200")


def test_liveness_failure_restarts_the_container(cluster: Cluster) -> None:
    flag = cluster.tmp / f"alive-{uuid.uuid4().hex[:6]}"
    flag.touch()
    live = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
            "failureThreshold": 1}
    cluster.pod("live", "node-a", [server("live", cluster.tmp, livenessProbe=live)])
    wait_until(lambda: cluster.ready("live") == "True", timeout=30, what="live Ready")
    flag.unlink()
    wait_until(lambda: cluster.container("live").get("restartCount", 0) >= 1, timeout=15,
               what="a restart after the liveness failure")
    flag.touch()
    wait_until(lambda: cluster.ready("live") == "True", timeout=15, what="live Ready again")
    cluster.delete_and_wait("live")


def test_restart_policies_and_start_errors(cluster: Cluster) -> None:
    crash = {"name": "c", "image": "x", "command": [sys.executable, "-c", "exit(3)"]}
    cluster.pod("onfailure", "node-b", [crash], restartPolicy="OnFailure")
    cluster.pod("never", "node-b", [crash], restartPolicy="Never")
    ok = {"name": "c", "image": "x", "command": [sys.executable, "-c", "pass"]}
    cluster.pod("done", "node-b", [ok], restartPolicy="OnFailure")
    missing = {"name": "c", "image": "x", "command": ["/no/such/binary"]}
    cluster.pod("broken", "node-b", [missing])
    wait_until(lambda: cluster.container("onfailure").get("restartCount", 0) >= 2, timeout=20,
               what="OnFailure restarts")
    restarted = cluster.container("onfailure")
    assert restarted["lastState"]["terminated"]["exitCode"] == 3
    assert cluster.get("onfailure")["status"]["phase"] == "Running"  # restarting, not Pending
    never = wait_until(lambda: (p := cluster.get("never"))["status"].get("phase") == "Failed"
                       and p, timeout=20, what="Never → Failed")
    term = never["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and never["status"]["containerStatuses"][0][
        "restartCount"] == 0
    wait_until(lambda: cluster.get("done")["status"].get("phase") == "Succeeded", timeout=20,
               what="OnFailure + exit 0 → Succeeded")
    wait_until(lambda: cluster.container("broken").get("state", {}).get("waiting", {})
               .get("reason") == "CreateContainerError", timeout=20, what="start error")
    for name in ("onfailure", "never", "done", "broken"):
        cluster.delete_and_wait(name)


def test_deletion_honours_the_grace_period(cluster: Cluster) -> None:
    marker = cluster.tmp / "stubborn.ready"
    stubborn = {"name": "c", "image": "x", "command": [sys.executable, "-c", IGNORE_TERM],
                "args": [str(marker)],
                "readinessProbe": {"exec": {"command": ["test", "-f", str(marker)]},
                                   "periodSeconds": 1}}
    cluster.pod("stubborn", "node-a", [stubborn], terminationGracePeriodSeconds=2)
    wait_until(lambda: cluster.ready("stubborn") == "True", timeout=30, what="stubborn Ready")
    ns = cluster.pod_ns("stubborn")
    pids = sh("ip", "netns", "pids", ns).stdout.split()
    assert pids
    start = time.monotonic()
    cluster.client.delete(POD, "stubborn", NS)
    wait_until(lambda: cluster._gone("stubborn"), timeout=15, what="stubborn deleted")
    took = time.monotonic() - start
    assert 1.8 <= took < 8, took
    assert ns not in sh("ip", "netns", "list").stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_agent_kill_and_restart_adopts_running_pods(cluster: Cluster) -> None:
    cluster.pod("keep", "node-b", [server("keep", cluster.tmp)])
    cluster.pod("drop", "node-b", [server("drop", cluster.tmp)])
    once = {"name": "c", "image": "x", "command": [sys.executable, "-c", "pass"]}
    cluster.pod("once", "node-b", [once], restartPolicy="Never")
    for name in ("keep", "drop"):
        wait_until(lambda name=name: cluster.ready(name) == "True", timeout=30,
                   what=f"{name} Ready")
    wait_until(lambda: cluster.get("once")["status"].get("phase") == "Succeeded", timeout=20,
               what="once Succeeded")
    before = cluster.get("keep")
    ns, dropped_ns = cluster.pod_ns("keep"), cluster.pod_ns("drop")
    pids = sh("ip", "netns", "pids", ns).stdout.split()
    dropped_pids = sh("ip", "netns", "pids", dropped_ns).stdout.split()
    agent = cluster.agents["node-b"]
    agent.stop(signal.SIGKILL)
    cluster.client.delete(POD, "drop", NS, grace_period_seconds=0)  # gone while it was down
    agent.start()
    wait_until(lambda: dropped_ns not in sh("ip", "netns", "list").stdout
               and not Path(f"/etc/netns/{dropped_ns}").exists(), timeout=20,
               what="the deleted pod's namespace and /etc/netns dir to be cleaned up")
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in dropped_pids),
               timeout=10, what="the deleted pod's processes to be killed")
    wait_until(lambda: "adopted container" in agent.log_path.read_text(), timeout=20,
               what="the restarted agent to adopt the pod")
    wait_until(lambda: "default/keep: status" in agent.log_path.read_text().split(
        "adopted container")[-1] or cluster.ready("keep") == "True", timeout=10,
        what="the adopted pod's status to settle")
    after = cluster.get("keep")
    assert after["status"]["podIP"] == before["status"]["podIP"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert sh("ip", "netns", "pids", ns).stdout.split() == pids
    assert cluster.ready("keep") == "True"
    once_ns = cluster.pod_ns("once")
    assert cluster.get("once")["status"]["phase"] == "Succeeded"  # not run again
    assert cluster.container("once")["restartCount"] == 0
    for name in ("keep", "once"):
        cluster.delete_and_wait(name)
    # a finished pod's object goes at once (grace 0); its namespace follows shortly
    wait_until(lambda: once_ns not in sh("ip", "netns", "list").stdout, timeout=10,
               what="the finished pod's namespace to be removed")


def test_agent_restart_leaves_other_nodes_pods_alone(cluster: Cluster) -> None:
    """All nodes' pod namespaces share /run/netns and one prefix here, as in a local
    cluster: a restarting agent must clean up only the pods it recorded."""
    cluster.pod("neighbour", "node-a", [server("neighbour", cluster.tmp)])
    wait_until(lambda: cluster.ready("neighbour") == "True", timeout=30,
               what="neighbour Ready")
    ns = cluster.pod_ns("neighbour")
    pids = sh("ip", "netns", "pids", ns).stdout.split()
    agent = cluster.agents["node-b"]
    agent.stop(signal.SIGKILL)
    agent.start()
    # a pod it runs after the restart: its clean-up of leftovers is over by then
    cluster.pod("witness", "node-b", [server("witness", cluster.tmp)])
    wait_until(lambda: cluster.ready("witness") == "True", timeout=30, what="witness Ready")
    assert ns in sh("ip", "netns", "list").stdout
    assert sh("ip", "netns", "pids", ns).stdout.split() == pids
    for name in ("neighbour", "witness"):
        cluster.delete_and_wait(name)


def test_routes_follow_other_nodes(cluster: Cluster) -> None:
    cluster.client.create(NODE, {"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": "node-z"},
                                 "spec": {"podCIDR": "10.244.200.0/24",
                                          "podCIDRs": ["10.244.200.0/24"]}})
    try:
        cluster.client.patch(NODE, "node-z", {"status": {"addresses": [
            {"type": "InternalIP", "address": "10.250.0.99"}]}}, subresource="status")
        route = "10.244.200.0/24 via 10.250.0.99"
        for ns in cluster.node_ns.values():
            wait_until(lambda ns=ns: route in sh("ip", "-n", ns, "route").stdout, timeout=10,
                       what=f"a route to node-z's pods in {ns}")
    finally:
        cluster.client.delete(NODE, "node-z")
    for ns in cluster.node_ns.values():
        wait_until(lambda ns=ns: "10.244.200.0/24" not in sh("ip", "-n", ns, "route").stdout,
                   timeout=10, what=f"node-z's route to go from {ns}")


def test_recovered_node_is_ready_before_its_pods(cluster: Cluster) -> None:
    cluster.pod("steady", "node-b", [server("steady", cluster.tmp)])
    wait_until(lambda: cluster.ready("steady") == "True", timeout=30, what="steady Ready")
    agent = cluster.agents["node-b"]
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGSTOP)  # heartbeats stop; the pod keeps running
    try:
        wait_until(lambda: cluster.ready("steady") == "False", timeout=30,
                   what="the node-lifecycle controller to mark the pod not ready")
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: cluster.ready("steady") == "True", timeout=15, what="steady Ready again")
    node = cluster.client.get(NODE, "node-b")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    pod_ready = next(c for c in cluster.get("steady")["status"]["conditions"]
                     if c["type"] == "Ready")
    assert ready["lastTransitionTime"] <= pod_ready["lastTransitionTime"]
    assert cluster.container("steady")["restartCount"] == 0
    cluster.delete_and_wait("steady")


def test_sigterm_stops_the_agent_and_leaves_pods_running(cluster: Cluster) -> None:
    cluster.pod("stay", "node-a", [server("stay", cluster.tmp)])
    wait_until(lambda: cluster.ready("stay") == "True", timeout=30, what="stay Ready")
    ns = cluster.pod_ns("stay")
    pids = sh("ip", "netns", "pids", ns).stdout.split()
    agent = cluster.agents["node-a"]
    assert agent.proc is not None
    proc = agent.proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    agent.proc = None
    assert sh("ip", "netns", "pids", ns).stdout.split() == pids
    agent.start()
    wait_until(lambda: agent.log_path.read_text().count("default/stay: adopted container") == 1,
               timeout=20, what="the restarted agent to adopt the pod")
    assert cluster.container("stay")["restartCount"] == 0
    cluster.delete_and_wait("stay")
