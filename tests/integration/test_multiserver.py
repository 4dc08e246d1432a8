"""Two real mp-apiserver processes on one real PostgreSQL database (issue #16).

Both share one PKI (one --cert-dir); Services are created concurrently through
both. No two get one ClusterIP, NodePort or resourceVersion, and a watcher on each
server sees every event of both, in revision order, none missing or repeated.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.conftest import ApiServer, admin_tls, wait_until
from tests.integration.rest import NS, SVC, service
from tests.unit.test_storage import postgresql_server  # noqa: F401

COUNT = 500
# small ranges, so the two servers' random picks collide and the database decides
CIDR = "10.96.0.0/22"  # 1022 usable
NODE_PORTS = "30000-30299"  # 300; every third Service (167) takes one


@pytest.fixture
def two_servers(postgresql_server: str, tmp_path: Path):  # noqa: F811
    url = postgres.create_database(postgresql_server, f"t{uuid.uuid4().hex[:12]}")
    pki = tmp_path / "pki"
    servers = [ApiServer(db_path=tmp_path / f"unused{n}.db", log_path=tmp_path / f"api{n}.log",
                         cert_dir=pki,
                         extra_args=["--storage-url", url, "--service-cluster-ip-range", CIDR,
                                     "--service-node-port-range", NODE_PORTS])
               for n in range(2)]
    try:
        for server in servers:  # the first makes the shared certificates
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


class Watcher(threading.Thread):
    """Every event of one namespace's Services on one server, from a revision."""

    def __init__(self, server: ApiServer, ns: str, since: str) -> None:
        super().__init__(daemon=True)
        self.server, self.ns, self.since = server, ns, since
        self.events: list[tuple[str, str, int]] = []  # (type, name, resourceVersion)
        self.opened = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(verify=admin_tls(), base_url=self.server.url,
                              timeout=httpx.Timeout(60, read=300)) as http, \
                    http.stream("GET", SVC.format(ns=self.ns), params={
                        "watch": "true", "resourceVersion": self.since,
                        "timeoutSeconds": "600"}) as resp:
                assert resp.status_code == 200, resp.read()
                self.opened.set()
                for line in resp.iter_lines():
                    if not line:
                        continue
                    ev = json.loads(line)
                    meta = ev["object"]["metadata"]
                    self.events.append((ev["type"], meta["name"], int(meta["resourceVersion"])))
                    if len(self.events) >= COUNT:
                        return
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.error = exc
            self.opened.set()


async def create_all(servers: list[ApiServer], ns: str) -> list[tuple[int, dict]]:
    """COUNT Services, every other one through the other server, 32 at a time."""
    clients = [s.async_http(timeout=120) for s in servers]
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> tuple[int, dict]:
        spec = {"type": "NodePort"} if i % 3 == 0 else {}
        async with gate:
            resp = await clients[i % 2].post(SVC.format(ns=ns),
                                             json=service(f"s{i}", ns=ns, **spec))
        assert resp.status_code == 201, resp.text
        return i % 2, resp.json()

    try:
        return await asyncio.gather(*(one(i) for i in range(COUNT)))
    finally:
        for c in clients:
            await c.aclose()


def test_two_servers_on_one_postgresql_share_revisions_allocations_and_watches(two_servers):
    a, b = two_servers
    ns = "multi"
    with a.http(timeout=30) as api:
        created = api.post(NS, json={"metadata": {"name": ns}})
        assert created.status_code == 201, created.text
        since = created.json()["metadata"]["resourceVersion"]
    watchers = [Watcher(server, ns, since) for server in (a, b)]
    for w in watchers:
        w.start()
    for w in watchers:
        assert w.opened.wait(30) and w.error is None, w.error

    made = asyncio.run(create_all([a, b], ns))

    services = [svc for _, svc in made]
    assert {by for by, _ in made} == {0, 1}
    rvs = [int(s["metadata"]["resourceVersion"]) for s in services]
    assert len(set(rvs)) == COUNT
    ips = [s["spec"]["clusterIP"] for s in services]
    assert len(set(ips)) == COUNT
    node_ports = [p["nodePort"] for s in services for p in s["spec"]["ports"] if "nodePort" in p]
    assert len(node_ports) == len(range(0, COUNT, 3))
    assert len(set(node_ports)) == len(node_ports)

    expected = sorted(rvs)
    for w in watchers:
        wait_until(lambda w=w: len(w.events) >= COUNT or w.error is not None, timeout=300,
                   what=f"{COUNT} events on {w.server.url}")
        w.join(10)
        assert w.error is None, w.error
        assert [e[2] for e in w.events] == expected  # in order, none missing or repeated
        assert {e[0] for e in w.events} == {"ADDED"}
        assert sorted(e[1] for e in w.events) == sorted(f"s{i}" for i in range(COUNT))
    # and what each server lists is the same, at one revision
    listed = []
    for server in (a, b):
        with server.http(timeout=30) as api:
            body = api.get(SVC.format(ns=ns)).json()
        listed.append(sorted((i["metadata"]["name"], i["spec"]["clusterIP"])
                             for i in body["items"]))
    assert listed[0] == listed[1] == sorted((s["metadata"]["name"], s["spec"]["clusterIP"])
                                            for s in services)
