"""Real traffic through the real agent: a node namespace, three endpoint namespaces,
an outside client, a real API server and ``mp-nodeagent --netns``.

Topology (all namespaces ``mp-t<random>-…``, built and removed by the fixture)::

    ext (10.250.0.10) ──veth── node eth0 (10.250.0.2)
                               node cni0 bridge (10.244.1.1/24)
                                 ├─veth── ep0 (10.244.1.10)  TCP 8080 + UDP 5353 servers
                                 ├─veth── ep1 (10.244.1.11)
                                 └─veth── ep2 (10.244.1.12)

The node has ip_forward and bridge netfilter on, hairpin mode on the pods' bridge
ports (as the CNI bridge plugin's ``hairpinMode``), and a route for the Service CIDR
(``10.96.0.0/16 dev cni0``) so its own connections to a ClusterIP get as far as the
nat OUTPUT chain; ext routes the Service CIDR via the node. Nothing routes out of
the machine. Every connection starts inside one of these namespaces. Servers greet
with ``NAME PEER_IP``, so a test sees which endpoint answered and from what source.
EndpointSlices are written by hand, as for a Service without a selector.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from apimachinery.kinds import ENDPOINTSLICE, SERVICE
from client.errors import NotFound
from client.http import Client
from tests.conftest import BIN, REPO, ApiServer, admin_config, free_port, wait_until
from tests.netns import Lab, have_root_tools, socket_in, tcp_hello, wait_port

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

NODE_IP, BRIDGE_IP, EXT_IP = "10.250.0.2", "10.244.1.1", "10.250.0.10"
# routed to the node by ext, as an L2/BGP load balancer or a router would
EXTERNAL_IP, LB_IP = "192.0.2.10", "10.250.0.200"
POD_IPS = ["10.244.1.10", "10.244.1.11", "10.244.1.12"]
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


@dataclass
class Cluster:
    lab: Lab
    node: str
    ext: str
    pods: list[str]
    api: ApiServer
    client: Client
    log: Path
    metrics_port: int = field(default_factory=free_port)
    agent: subprocess.Popen[bytes] | None = None

    def start_agent(self) -> None:
        with open(self.log, "ab") as out:
            self.agent = subprocess.Popen(
                [str(BIN / "mp-nodeagent"), "--server", self.api.url, "--kubeconfig",
                 self.api.kubeconfig, "--node", "node-a",
                 "--netns", self.node, "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                 "--min-sync-period", "100ms", "--sync-period", "2s"],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        wait_until(self.ready, timeout=20, what="the agent's first sync")

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.lab.stop(self.agent)  # type: ignore[arg-type]
            self.agent = None

    def ready(self) -> bool:
        if self.agent is not None and self.agent.poll() is not None:
            raise RuntimeError("agent exited: " + self.log.read_text()[-3000:])
        try:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/readyz",
                             timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text

    def metric(self, name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.MULTILINE)
        return float(m.group(1)) if m else 0.0

    def save(self, *tables: str) -> str:
        out = []
        for table in tables or ("filter", "nat"):
            out.append(self.lab.exec(self.node, "iptables-nft-save", "-t", table).stdout)
        return "".join(out)

    # -- API objects ----------------------------------------------------------------------

    def service(self, name: str, *, ports: list[dict[str, Any]] | None = None,
                **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080,
                                             "protocol": "TCP"}], **spec}}
        return self.client.create(SERVICE, body, "default")

    def endpoints(self, name: str, pods: list[int], *, port_name: str = "http",
                  port: int = 8080, protocol: str = "TCP", stamp: str | None = None) -> None:
        """Make ``name``'s slice list exactly ``pods`` (indexes into POD_IPS)."""
        body: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-manual", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name},
                         "annotations": {TRIGGER: stamp} if stamp else {}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [POD_IPS[i]], "nodeName": "node-a",
                           "conditions": {"ready": True}} for i in pods],
            "ports": [{"name": port_name, "port": port, "protocol": protocol}]}
        try:
            old = self.client.get(ENDPOINTSLICE, f"{name}-manual", "default")
        except NotFound:
            self.client.create(ENDPOINTSLICE, body, "default")
            return
        body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        self.client.replace(ENDPOINTSLICE, body, "default")

    def wait_programmed(self, name: str, pods: list[int], *, port_name: str = "http",
                        port: int = 8080) -> None:
        """Wait until ``name``'s dispatch rules list exactly ``pods``."""
        label = f"default/{name}:{port_name}"

        def done() -> bool:
            nat = self.save("nat")
            have = {i for i, ip in enumerate(POD_IPS) if f"{label} -> {ip}:{port}" in nat}
            return have == set(pods)
        wait_until(done, timeout=10, what=f"rules of {label} for pods {pods}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("proxy")
    lab = Lab()
    api = ApiServer(db_path=tmp / "state.db", log_path=tmp / "apiserver.log")
    c: Cluster | None = None
    try:
        node, ext = lab.ns("node"), lab.ns("ext")
        lab.exec(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh_node = ("ip", "-n", node)
        subprocess.run([*sh_node, "link", "add", "cni0", "type", "bridge"], check=True)
        subprocess.run([*sh_node, "addr", "add", f"{BRIDGE_IP}/24", "dev", "cni0"], check=True)
        subprocess.run([*sh_node, "link", "set", "cni0", "up"], check=True)
        # bridged pod-to-pod traffic must pass iptables too (per-namespace setting)
        lab.exec(node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        subprocess.run([*sh_node, "route", "add", "10.96.0.0/16", "dev", "cni0"], check=True)
        lab.veth(node, "eth0", ext, "eth0")
        subprocess.run([*sh_node, "addr", "add", f"{NODE_IP}/24", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ext, "addr", "add", f"{EXT_IP}/24", "dev", "eth0"],
                       check=True)
        subprocess.run(["ip", "-n", ext, "route", "add", "10.96.0.0/16", "via", NODE_IP],
                       check=True)
        for ip in (EXTERNAL_IP, LB_IP):
            subprocess.run(["ip", "-n", ext, "route", "add", f"{ip}/32", "via", NODE_IP],
                           check=True)
        # what the agent's setup_node sets (this fixture builds the node by hand)
        lab.exec(node, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        pods = []
        for i, ip in enumerate(POD_IPS):
            pod = lab.ns(f"ep{i}")
            lab.veth(node, f"veth{i}", pod, "eth0")
            subprocess.run([*sh_node, "link", "set", f"veth{i}", "master", "cni0"], check=True)
            # A pod reaching itself through a Service: with bridge netfilter the DNAT
            # happens on the bridge, so the frame must be allowed back out of the port
            # it came in by (what the CNI bridge plugin's hairpinMode sets).
            subprocess.run([*sh_node, "link", "set", f"veth{i}", "type", "bridge_slave",
                            "hairpin", "on"], check=True)
            subprocess.run(["ip", "-n", pod, "addr", "add", f"{ip}/24", "dev", "eth0"],
                           check=True)
            subprocess.run(["ip", "-n", pod, "route", "add", "default", "via", BRIDGE_IP],
                           check=True)
            lab.start(pod, sys.executable, str(REPO / "tests" / "netns.py"), "serve", f"ep{i}",
                      "--tcp", "8080", "--udp", "5353", log=tmp / f"ep{i}.log")
            pods.append(pod)
        for ip in POD_IPS:
            wait_port(node, ip, 8080)
        api.start()
        c = Cluster(lab=lab, node=node, ext=ext, pods=pods, api=api,
                    client=Client(admin_config(api.url)), log=tmp / "agent.log")
        c.start_agent()
        yield c
    finally:
        if c is not None:
            c.stop_agent()
            c.client.close()
        api.stop()
        lab.close()
        assert lab.leftovers() == []


def hello(ns: str, ip: str, port: int) -> tuple[str, str]:
    name, peer = tcp_hello(ns, ip, port).split()
    return name, peer


def test_cluster_ip_reaches_every_endpoint(cluster: Cluster) -> None:
    vip = cluster.service("spread")["spec"]["clusterIP"]
    cluster.endpoints("spread", [0, 1, 2])
    cluster.wait_programmed("spread", [0, 1, 2])
    seen = collections.Counter(hello(cluster.node, vip, 80)[0] for _ in range(60))
    assert set(seen) == {"ep0", "ep1", "ep2"}, seen
    # from outside the cluster CIDR: reaches an endpoint, masqueraded to the node
    name, peer = hello(cluster.ext, vip, 80)
    assert name in seen and peer == BRIDGE_IP


def test_removed_endpoint_leaves_the_rotation(cluster: Cluster) -> None:
    vip = cluster.service("shrink")["spec"]["clusterIP"]
    cluster.endpoints("shrink", [0, 1, 2])
    cluster.wait_programmed("shrink", [0, 1, 2])
    cluster.endpoints("shrink", [0, 1])
    cluster.wait_programmed("shrink", [0, 1])
    seen = collections.Counter(hello(cluster.node, vip, 80)[0] for _ in range(40))
    assert set(seen) == {"ep0", "ep1"}, seen


def test_no_endpoints_is_refused_at_once(cluster: Cluster) -> None:
    vip = cluster.service("empty")["spec"]["clusterIP"]
    wait_until(lambda: "default/empty:http has no endpoints" in cluster.save("filter"),
               timeout=10, what="the REJECT rule")
    for ns in (cluster.node, cluster.ext):
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            tcp_hello(ns, vip, 80, timeout=5)
        assert time.monotonic() - started < 1.0
    # and it works as soon as an endpoint appears, refused again when it goes
    cluster.endpoints("empty", [1])
    cluster.wait_programmed("empty", [1])
    assert hello(cluster.node, vip, 80)[0] == "ep1"
    cluster.endpoints("empty", [])
    wait_until(lambda: "default/empty:http has no endpoints" in cluster.save("filter"),
               timeout=10, what="the REJECT rule again")
    with pytest.raises(ConnectionRefusedError):
        tcp_hello(cluster.node, vip, 80, timeout=5)


def test_hairpin(cluster: Cluster) -> None:
    vip = cluster.service("self")["spec"]["clusterIP"]
    cluster.endpoints("self", [0])
    cluster.wait_programmed("self", [0])
    # ep0 reaches itself through its Service; the source it sees is the node's
    assert hello(cluster.pods[0], vip, 80) == ("ep0", BRIDGE_IP)
    # and another pod on the same bridge reaches it too (bridge netfilter un-DNATs replies)
    assert hello(cluster.pods[1], vip, 80) == ("ep0", POD_IPS[1])


def test_node_port_on_the_nodes_addresses(cluster: Cluster) -> None:
    svc = cluster.service("np", type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    cluster.endpoints("np", [0, 1, 2])
    cluster.wait_programmed("np", [0, 1, 2])
    wait_until(lambda: f"--dport {node_port} -j KUBE-EXT-" in cluster.save("nat"),
               timeout=10, what="the NodePort rule")
    name, peer = hello(cluster.ext, NODE_IP, node_port)
    assert name.startswith("ep") and peer == BRIDGE_IP  # externally: masqueraded
    assert hello(cluster.node, NODE_IP, node_port)[0].startswith("ep")
    assert hello(cluster.node, BRIDGE_IP, node_port)[0].startswith("ep")


def test_node_port_on_the_nodes_loopback(cluster: Cluster) -> None:
    """kube-proxy's localhost NodePorts: 127.0.0.1:<nodePort> inside the node answers
    (route_localnet=1, which the agent sets in setup_node, is set by the fixture here),
    masqueraded so the endpoint can reply; KUBE-FIREWALL guards the setting."""
    svc = cluster.service("np-lo", type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    cluster.endpoints("np-lo", [2])
    cluster.wait_programmed("np-lo", [2])
    assert hello(cluster.node, "127.0.0.1", node_port) == ("ep2", BRIDGE_IP)
    assert "block incoming localnet connections" in cluster.save("filter")
    # externalTrafficPolicy Local: a loopback source is the node's own (src-type LOCAL),
    # so it is masqueraded too, and reaches the local endpoint
    local = cluster.service("np-lo-local", type="NodePort", externalTrafficPolicy="Local")
    local_port = local["spec"]["ports"][0]["nodePort"]
    cluster.endpoints("np-lo-local", [1])
    cluster.wait_programmed("np-lo-local", [1])
    assert hello(cluster.node, "127.0.0.1", local_port) == ("ep1", BRIDGE_IP)


def test_external_ip_and_load_balancer_ip_with_source_ranges(cluster: Cluster) -> None:
    """An externalIP and an LB ingress IP routed to the node answer from outside; the
    LB IP's loadBalancerSourceRanges let ext in, and once they no longer name it its
    connection is dropped (KUBE-FW falls through, KUBE-PROXY-FIREWALL drops), while the
    external IP, which source ranges never cover, still answers."""
    # two external IPs: their rules differ only by address (the restart test below
    # then checks the kernel's order of them survives an agent restart)
    cluster.service("lb", type="LoadBalancer", externalIPs=[EXTERNAL_IP, "192.0.2.11"],
                    loadBalancerSourceRanges=[f"{EXT_IP}/32"])
    body = cluster.client.get(SERVICE, "lb", "default")
    body["status"] = {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}
    cluster.client.replace(SERVICE, body, "default", subresource="status")
    cluster.endpoints("lb", [0, 1])
    cluster.wait_programmed("lb", [0, 1])
    wait_until(lambda: "default/lb:http loadbalancer IP" in cluster.save("nat"),
               timeout=10, what="the LB IP rule")
    for ip in (EXTERNAL_IP, LB_IP):
        name, peer = hello(cluster.ext, ip, 80)
        assert name in ("ep0", "ep1") and peer == BRIDGE_IP  # Cluster policy: masqueraded
    body = cluster.client.get(SERVICE, "lb", "default")
    body["spec"]["loadBalancerSourceRanges"] = ["192.0.2.0/24"]
    cluster.client.replace(SERVICE, body, "default")
    wait_until(lambda: "-s 192.0.2.0/24 " in cluster.save("nat"),
               timeout=10, what="the new source range")
    with pytest.raises(TimeoutError):
        tcp_hello(cluster.ext, LB_IP, 80, timeout=1)
    assert hello(cluster.ext, EXTERNAL_IP, 80)[0] in ("ep0", "ep1")
    # without endpoints every external destination is refused at once (the LB IP is
    # tried: the node has no route to the external IP's network to forward it by, and
    # only what is forwarded passes the filter FORWARD chain)
    cluster.endpoints("lb", [])
    wait_until(lambda: cluster.save("filter").count("default/lb:http has no endpoints") == 5,
               timeout=10, what="the REJECT rules")
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        tcp_hello(cluster.ext, LB_IP, 80, timeout=5)
    assert time.monotonic() - started < 1.0


def test_client_ip_affinity_pins_a_client(cluster: Cluster) -> None:
    vip = cluster.service("sticky", sessionAffinity="ClientIP")["spec"]["clusterIP"]
    cluster.endpoints("sticky", [0, 1, 2])
    cluster.wait_programmed("sticky", [0, 1, 2])
    for ns in (cluster.ext, cluster.node):
        seen = {hello(ns, vip, 80)[0] for _ in range(20)}
        assert len(seen) == 1, seen
    assert "--rcheck --seconds 10800 --reap" in cluster.save("nat")


def test_udp_answers_and_moves_when_its_endpoint_goes(cluster: Cluster) -> None:
    vip = cluster.service("dns", ports=[{"name": "dns", "port": 53, "targetPort": 5353,
                                         "protocol": "UDP"}])["spec"]["clusterIP"]
    cluster.endpoints("dns", [0, 1, 2], port_name="dns", port=5353, protocol="UDP")
    cluster.wait_programmed("dns", [0, 1, 2], port_name="dns", port=5353)
    sock = socket_in(cluster.node, socket.SOCK_DGRAM)
    sock.settimeout(1)
    deleted_before = cluster.metric("kubeproxy_conntrack_entries_deleted_total")

    def ask() -> str:
        sock.sendto(b"?", (vip, 53))
        return sock.recv(100).decode().split()[0]

    try:
        first = ask()
        assert {ask() for _ in range(10)} == {first}  # one flow: one endpoint
        gone = int(first[2:])
        cluster.endpoints("dns", [i for i in range(3) if i != gone], port_name="dns",
                          port=5353, protocol="UDP")
        cluster.wait_programmed("dns", [i for i in range(3) if i != gone], port_name="dns",
                                port=5353)
        # The same socket (same flow) now reaches another endpoint, although the old one
        # still answers: its conntrack entry was deleted, not left to time out.
        wait_until(lambda: ask() != first, timeout=5, what="the UDP flow to move")
        assert {ask() for _ in range(5)} != {first}
    finally:
        sock.close()
    assert cluster.metric("kubeproxy_conntrack_entries_deleted_total") > deleted_before


def test_external_name_and_headless_get_no_rules(cluster: Cluster) -> None:
    cluster.service("alias", type="ExternalName", externalName="example.com", ports=[])
    cluster.service("hl", clusterIP="None")
    cluster.endpoints("hl", [0])
    marker = cluster.service("marker")  # created last: once it is programmed, so are they
    cluster.endpoints("marker", [0])
    cluster.wait_programmed("marker", [0])
    text = cluster.save()
    assert marker["spec"]["clusterIP"] in text
    assert "default/alias" not in text and "default/hl" not in text


def test_programming_latency_and_metrics(cluster: Cluster) -> None:
    cluster.service("timed")
    count = "kubeproxy_network_programming_duration_seconds_count"
    before = cluster.metric(count)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + \
        f".{int(time.time() * 1e6) % 1000000:06d}Z"
    cluster.endpoints("timed", [2], stamp=stamp)
    wait_until(lambda: cluster.metric(count) > before, timeout=10,
               what="a programming latency sample")
    text = cluster.metrics()
    assert float(re.search(r"^kubeproxy_network_programming_duration_seconds_sum (\S+)",
                           text, re.M).group(1)) < 60  # type: ignore[union-attr]
    assert cluster.metric("kubeproxy_sync_proxy_rules_duration_seconds_count") >= 2
    assert cluster.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds") > \
        time.time() - 120
    assert re.search(r'kubeproxy_sync_proxy_rules_iptables_total\{table="nat"\} [1-9]', text)
    assert httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/healthz").status_code == 200


def test_drift_is_repaired(cluster: Cluster) -> None:
    vip = cluster.service("drift")["spec"]["clusterIP"]
    cluster.endpoints("drift", [1])
    cluster.wait_programmed("drift", [1])

    def dispatched() -> bool:
        return any(line.startswith("-A KUBE-SERVICES") and vip in line
                   for line in cluster.save("nat").splitlines())

    cluster.lab.exec(cluster.node, "iptables-nft", "-t", "nat", "-F", "KUBE-SERVICES")
    assert not dispatched()
    wait_until(dispatched, timeout=10, what="the periodic check to repair the flushed chain")
    assert hello(cluster.node, vip, 80)[0] == "ep1"


def test_agent_restart_keeps_rules_and_connections(cluster: Cluster) -> None:
    vip = cluster.service("steady")["spec"]["clusterIP"]
    cluster.endpoints("steady", [0, 1, 2])
    cluster.wait_programmed("steady", [0, 1, 2])
    conn = socket_in(cluster.ext)
    conn.settimeout(3)
    conn.connect((vip, 80))
    reader = conn.makefile("rb")
    greeting = reader.readline()

    def normalized() -> str:
        text = re.sub(r"\[\d+:\d+\]", "", cluster.save())
        return "\n".join(line for line in text.splitlines() if not line.startswith("#"))

    try:
        before = normalized()
        cluster.stop_agent()
        assert normalized() == before  # stopping leaves the rules in place
        cluster.start_agent()
        assert cluster.metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count") >= 1
        after = normalized()
        assert after == before
        assert after.count("-j KUBE-SERVICES") == before.count("-j KUBE-SERVICES")
        conn.sendall(b"still there?\n")
        assert reader.readline() == b"still there?\n"
        assert greeting.startswith(b"ep")
    finally:
        reader.close()
        conn.close()


def test_agent_refuses_a_missing_namespace() -> None:
    result = subprocess.run([str(BIN / "mp-nodeagent"), "--netns", "mp-no-such-ns-node"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "does not exist" in result.stderr


def test_cleanup_flag_removes_everything(tmp_path: Path) -> None:
    lab = Lab()
    try:
        ns = lab.ns("clean")
        code = ("from nodeagent.proxy.apply import Backend;"
                "from nodeagent.proxy.sync import Proxier, ProxyConfig;"
                f"p = Proxier(Backend('nft', {ns!r}), ProxyConfig(node_name='n'));"
                "p.sync({})")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
        assert "KUBE-SERVICES" in lab.exec(ns, "iptables-nft-save").stdout
        result = subprocess.run([str(BIN / "mp-nodeagent"), "--netns", ns, "--cleanup"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "KUBE-" not in lab.exec(ns, "iptables-nft-save").stdout
    finally:
        lab.close()
    assert lab.leftovers() == []
    assert not any(n.startswith(lab.run) for n in os.listdir("/run/netns"))
