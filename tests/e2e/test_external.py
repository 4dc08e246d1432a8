"""End to end: a Service's external addresses on a real 2-node ``mpctl cluster up``.

The demo's ``web`` pods sit behind extra Services a user would write: a
``type: LoadBalancer`` (its address handed out by the service-lb controller from
the cluster's pool and routed by the fabric to the nodes), one with
``loadBalancerSourceRanges``, one with ``externalIPs``, and a NodePort. Clients
connect from the fabric namespace (the host side of the cluster's network, never
the root namespace) and from inside a node, through the nodes' real rules.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from apimachinery.kinds import SERVICE
from componentbase.addresspool import parse_pool
from mpctl.cluster import plan
from tests.conftest import wait_until
from tests.e2e.test_local_cluster import REPLICAS, LocalCluster, running_cluster
from tests.netns import have_root_tools, socket_in

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

EXTERNAL_IP = "10.250.0.150"  # on the fabric's network, outside the LB pool


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("external"), "x") as c:
        c.apply_demo()
        yield c


def web_service(cluster: LocalCluster, name: str, **spec: Any) -> dict[str, Any]:
    return cluster.client.create(SERVICE, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}},
        "default")


def http_get(namespace: str, ip: str, port: int, timeout: float = 2.0) -> str:
    """The demo's answer (``<pod> <ip> <version>``) to a GET sent from ``namespace``."""
    sock = socket_in(namespace)
    with sock:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode().rpartition("\r\n\r\n")[2].strip()


def answers(namespace: str, ip: str, port: int) -> bool:
    try:
        return http_get(namespace, ip, port).startswith("web-")
    except OSError:
        return False


def load_balancer_ip(cluster: LocalCluster, name: str) -> str:
    def assigned() -> str | None:
        svc = cluster.client.get(SERVICE, name, "default")
        ingress = svc["status"].get("loadBalancer", {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None
    ip: str = wait_until(assigned, timeout=20, what=f"{name} to get a load balancer address")
    return ip


def test_load_balancer_answers_from_the_fabric(cluster: LocalCluster) -> None:
    web_service(cluster, "web-lb", type="LoadBalancer")
    ip = load_balancer_ip(cluster, "web-lb")
    assert ip in parse_pool(plan.DEFAULT_LB_POOL)
    fabric = plan.fabric_ns(cluster.name)
    wait_until(lambda: answers(fabric, ip, 80), timeout=20,
               what=f"the load balancer {ip} to answer the fabric")
    pods = {http_get(fabric, ip, 80).split()[0] for _ in range(20)}
    assert len(pods) > 1 and len(cluster.ready_pods("app=web")) == REPLICAS


def test_source_ranges_refuse_a_source_outside_them(cluster: LocalCluster) -> None:
    web_service(cluster, "web-fw", type="LoadBalancer",
                loadBalancerSourceRanges=[f"{plan.FABRIC_IP}/32"])
    ip = load_balancer_ip(cluster, "web-fw")
    fabric, node = plan.fabric_ns(cluster.name), plan.node_ns(cluster.name, 2)
    wait_until(lambda: answers(fabric, ip, 80), timeout=20,
               what=f"{ip} to answer the fabric, inside the source ranges")
    # node-2 (10.250.0.3) is outside the ranges: once its proxy has the firewall
    # chain, its own connection falls off it and KUBE-PROXY-FIREWALL drops it
    wait_until(lambda: "default/web-fw:http loadbalancer IP" in subprocess.run(
        ["ip", "netns", "exec", node, "iptables-nft-save", "-t", "nat"], capture_output=True,
        text=True, timeout=30).stdout, timeout=20, what="node-2's KUBE-FW rules")
    with pytest.raises(TimeoutError):
        http_get(node, ip, 80, timeout=1.5)
    svc = cluster.client.get(SERVICE, "web-fw", "default")
    svc["spec"]["loadBalancerSourceRanges"] = ["192.0.2.0/24"]
    cluster.client.replace(SERVICE, svc, "default")

    def refused() -> bool:
        try:
            http_get(fabric, ip, 80, timeout=1)
        except TimeoutError:
            return True
        return False
    wait_until(refused, timeout=20, what="the fabric to be refused once outside the ranges")


def test_external_ip_answers_inside_a_node(cluster: LocalCluster) -> None:
    web_service(cluster, "web-ext", externalIPs=[EXTERNAL_IP])
    node = plan.node_ns(cluster.name, 1)
    wait_until(lambda: answers(node, EXTERNAL_IP, 80), timeout=20,
               what=f"the external IP {EXTERNAL_IP} to answer inside node-1")


def test_node_port_answers_on_the_nodes_loopback(cluster: LocalCluster) -> None:
    svc = web_service(cluster, "web-np", type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    for index in (1, 2):
        node = plan.node_ns(cluster.name, index)
        wait_until(lambda node=node: answers(node, "127.0.0.1", node_port), timeout=20,
                   what=f"127.0.0.1:{node_port} to answer inside node-{index}")
