"""The service-lb controller in a real mp-controllers process against a real API server:
LoadBalancer Services get pool addresses in ``status.loadBalancer.ingress``, keep them,
and give them back on delete and type change; ``loadBalancerIP`` and
``loadBalancerClass`` are honoured. The pool holds two addresses, so exhaustion and
a freed address going to the waiting Service are seen too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apimachinery.kinds import EVENT, SERVICE
from client.errors import NotFound
from tests.conftest import wait_until
from tests.integration.test_controllers_harness import NS, Cluster, clusters

POOL = "10.250.0.200-10.250.0.201"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with clusters(tmp_path_factory.mktemp("servicelb")) as make:
        yield make("--controllers", "service-lb", "--lb-pool", POOL)


def ingress(cluster: Cluster, name: str) -> list[str]:
    try:
        svc = cluster.client.get(SERVICE, name, NS)
    except NotFound:
        return []
    return [e.get("ip") for e in svc["status"].get("loadBalancer", {}).get("ingress") or []]


def wait_ingress(cluster: Cluster, name: str, want: list[str]) -> None:
    wait_until(lambda: ingress(cluster, name) == want, timeout=10,
               what=f"{name}'s ingress to be {want} (have {ingress(cluster, name)})")


def lb(cluster: Cluster, name: str, **spec: object) -> dict:
    return cluster.service(name, type="LoadBalancer", **spec)


def test_addresses_are_assigned_kept_exhausted_and_released(cluster: Cluster) -> None:
    lb(cluster, "a")
    wait_ingress(cluster, "a", ["10.250.0.200"])
    lb(cluster, "b", loadBalancerIP="10.250.0.201")  # asked for: honoured
    wait_ingress(cluster, "b", ["10.250.0.201"])
    svc = cluster.client.get(SERVICE, "a", NS)
    assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "10.250.0.200", "ipMode": "VIP"}]
    # the pool is empty now: c waits, with a Warning event saying why
    lb(cluster, "c")
    wait_until(lambda: any(e.get("reason") == "AllocationFailed"
                           and e["involvedObject"]["name"] == "c"
                           for e in cluster.client.list(EVENT, NS)["items"]),
               timeout=10, what="an AllocationFailed event about c")
    assert ingress(cluster, "c") == []
    # another class is not ours: never touched
    lb(cluster, "other", loadBalancerClass="example.com/metal")
    # a's type changes: its address is released and goes to c
    svc = cluster.client.get(SERVICE, "a", NS)
    svc["spec"]["type"] = "ClusterIP"
    svc["spec"].pop("allocateLoadBalancerNodePorts", None)
    svc["spec"].pop("externalTrafficPolicy", None)
    for port in svc["spec"]["ports"]:
        port.pop("nodePort", None)
    cluster.client.replace(SERVICE, svc, NS)
    wait_ingress(cluster, "a", [])
    wait_ingress(cluster, "c", ["10.250.0.200"])
    # b is deleted: its address is free for the next one
    cluster.client.delete(SERVICE, "b", NS)
    lb(cluster, "d")
    wait_ingress(cluster, "d", ["10.250.0.201"])
    assert ingress(cluster, "other") == []
    assert ingress(cluster, "c") == ["10.250.0.200"]  # kept through all of it
