"""ClusterIPs and NodePorts claimed in the database: two API servers' stores and
allocators on one database (SQLite file and PostgreSQL) never hand out one value
twice, and a value one frees, the other can take."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from apimachinery import kinds
from apiserver import resources
from apiserver.errors import Invalid
from apiserver.registry.service import STRATEGY as SERVICES
from apiserver.services import ServiceAllocations
from apiserver.storage.store import Store
from apiserver.writes import Writes
from tests.unit.test_storage import db, postgresql_server  # noqa: F401

# 14 usable addresses; .1 (kubernetes) and .10 (DNS) are kept back: 12 to hand out
CIDR = "10.0.0.0/28"
PORTS = "30000-30009"


class Server:
    """One API server's write side: its own store and its own allocator hints."""

    def __init__(self, url: str) -> None:
        self.store = Store(url)
        self.store.start()
        self.writes = Writes(ServiceAllocations(CIDR, PORTS))

    def run(self, op: Any) -> Any:
        return self.store.submit(op).result(timeout=120)

    def create(self, name: str, **spec: Any) -> dict:
        body = {"metadata": {"name": name},
                "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}}
        return self.run(self.writes.create(SERVICES, "default", body))

    def delete(self, name: str) -> dict:
        return self.run(self.writes.delete(SERVICES, "default", name, {}))


@pytest.fixture
def servers(db: str) -> Iterator[tuple[Server, Server]]:  # noqa: F811
    a = Server(db)
    a.run(a.writes.create(resources.by_kind(kinds.NAMESPACE), "", {"metadata": {"name": "default"}}))
    b = Server(db)
    try:
        yield a, b
    finally:
        a.store.close()
        b.store.close()


def test_two_servers_never_hand_out_one_cluster_ip(servers):
    a, b = servers
    ips = [(a if i % 2 else b).create(f"s{i}")["spec"]["clusterIP"] for i in range(12)]
    assert len(set(ips)) == 12
    assert {str(ip) for ip in ipaddress.ip_network(CIDR).hosts()} - set(ips) == \
        {"10.0.0.1", "10.0.0.10"}
    for server in (a, b):  # full, whoever asks; and the refusal changed nothing
        with pytest.raises(Invalid, match="range is full"):
            server.create("late")
    # one freed on a is taken on b, whose hint had long counted it gone
    freed = a.delete("s3")["spec"]["clusterIP"]
    assert b.create("again")["spec"]["clusterIP"] == freed


def test_a_specific_ip_held_on_one_server_is_refused_on_the_other(servers):
    a, b = servers
    a.create("first", clusterIP="10.0.0.5")
    with pytest.raises(Invalid, match="provided IP is already allocated"):
        b.create("second", clusterIP="10.0.0.5")
    a.delete("first")
    # b's hint now counts it taken; the database says it is free
    assert b.create("third", clusterIP="10.0.0.5")["spec"]["clusterIP"] == "10.0.0.5"


def test_two_servers_never_hand_out_one_node_port(servers):
    a, b = servers
    ports = [(a if i % 2 else b).create(f"n{i}", type="NodePort")["spec"]["ports"][0]["nodePort"]
             for i in range(10)]
    assert sorted(ports) == list(range(30000, 30010))
    with pytest.raises(Invalid, match="range is full"):
        a.create("late", type="NodePort")
    with pytest.raises(Invalid, match="provided port is already allocated"):
        b.create("mine", type="NodePort", ports=[{"port": 80, "nodePort": ports[0]}])


def test_claims_are_made_what_stored_services_hold_at_start(servers):
    """A database from before claims gets them; a claim whose Service row was removed
    by hand (README "Recovery") is dropped; the rest is left alone."""
    a, b = servers
    a.create("old", clusterIP="10.0.0.7")
    a.create("gone", clusterIP="10.0.0.8", type="NodePort",
             ports=[{"port": 80, "nodePort": 30005}])
    a.create("kept", clusterIP="10.0.0.9")
    a.run(lambda txn: txn.unclaim("ClusterIP", "10.0.0.7", "services/default/old"))
    a.run(lambda txn: txn.remove("services", "default", "gone", txn.get(
        "services", "default", "gone")))
    assert a.run(a.writes.allocations.adopt) == 3  # one claimed, two dropped
    assert a.run(a.writes.allocations.adopt) == 0
    with pytest.raises(Invalid, match="already allocated"):
        b.create("new", clusterIP="10.0.0.7")
    assert b.create("gone", clusterIP="10.0.0.8")["spec"]["clusterIP"] == "10.0.0.8"
    assert b.create("port", type="NodePort", ports=[{"port": 80, "nodePort": 30005}])


def test_a_service_removed_by_hand_is_made_again_with_its_own_address(servers):
    """Its leftover claim names it, so it is granted to it again (the kubernetes
    Service after README "Recovery"), and to no one else."""
    a, b = servers
    a.create("kubernetes", clusterIP="10.0.0.1")
    a.run(lambda txn: txn.remove("services", "default", "kubernetes", txn.get(
        "services", "default", "kubernetes")))
    with pytest.raises(Invalid, match="already allocated"):
        b.create("other", clusterIP="10.0.0.1")
    assert b.create("kubernetes", clusterIP="10.0.0.1")["spec"]["clusterIP"] == "10.0.0.1"
