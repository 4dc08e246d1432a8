"""Two real mp-apiserver processes on one real PostgreSQL database (issue #16).

Both share one PKI (one --cert-dir); Services are created concurrently through
both. No two get one ClusterIP, NodePort or resourceVersion, and a watcher on each
server sees every event of both, in revision order, none missing or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.conftest import ApiServer, admin_tls, wait_until
from tests.integration.rest import NS, SVC, service, watch
from tests.unit.test_storage import postgresql_server  # noqa: F401

COUNT = 500
# small ranges, so the two servers' random picks collide and the database decides
CIDR = "10.96.0.0/22"  # 1022 usable
NODE_PORTS = "30000-30299"  # 300; every third Service (167) takes one


@contextlib.contextmanager
def servers_on(server_url: str, tmp_path: Path, *args: str) -> Iterator[list[ApiServer]]:
    """Two API servers on a fresh database of ``server_url``, one PKI."""
    url = postgres.create_database(server_url, f"t{uuid.uuid4().hex[:12]}")
    pki = tmp_path / "pki"
    servers = [ApiServer(db_path=tmp_path / f"unused{n}.db", log_path=tmp_path / f"api{n}.log",
                         cert_dir=pki, extra_args=["--storage-url", url, *args])
               for n in range(2)]
    try:
        for server in servers:  # the first makes the shared certificates
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def two_servers(postgresql_server: str, tmp_path: Path):  # noqa: F811
    with servers_on(postgresql_server, tmp_path, "--service-cluster-ip-range", CIDR,
                    "--service-node-port-range", NODE_PORTS) as servers:
        yield servers


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


def test_a_resource_version_from_one_server_means_the_same_on_the_other(
        postgresql_server: str, tmp_path: Path) -> None:  # noqa: F811
    """What a client that fails over relies on: a revision written through A is read,
    watched from, resumed and expired on B as on A."""
    with servers_on(postgresql_server, tmp_path, "--event-retention", "20",
                    "--compaction-interval", "0.2") as (a, b), \
            a.http(timeout=30) as on_a, b.http(timeout=30) as on_b:
        assert on_a.post(NS, json={"metadata": {"name": "rv"}}).status_code == 201
        path = SVC.format(ns="rv")
        start = on_a.get(path).json()["metadata"]["resourceVersion"]
        made = on_a.post(path, json=service("x", ns="rv"))
        assert made.status_code == 201, made.text
        rv = made.json()["metadata"]["resourceVersion"]
        # B, asked at once for at least A's revision, waits for it rather than answer older
        listed = on_b.get(path, params={"resourceVersion": rv,
                                        "resourceVersionMatch": "NotOlderThan"}).json()
        assert int(listed["metadata"]["resourceVersion"]) >= int(rv)
        assert "x" in {i["metadata"]["name"] for i in listed["items"]}
        assert on_b.get(f"{path}/x", params={"resourceVersion": rv}).status_code == 200
        # a watch-list on B from A's revision: x, the end bookmark, then A's next write
        with watch(on_b, path, sendInitialEvents=True, resourceVersionMatch="NotOlderThan",
                   allowWatchBookmarks=True, resourceVersion=rv, timeoutSeconds=10) as events:
            first = next(events)
            assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "x")
            mark = next(events)
            assert mark["type"] == "BOOKMARK"
            assert mark["object"]["metadata"]["annotations"] == {
                "k8s.io/initial-events-end": "true"}
            assert int(mark["object"]["metadata"]["resourceVersion"]) >= int(rv)
            y = on_a.post(path, json=service("y", ns="rv")).json()
            after = next(events)
            assert (after["type"], after["object"]["metadata"]["resourceVersion"]) == (
                "ADDED", y["metadata"]["resourceVersion"])
        # resuming on B from A's revision of x yields what came after it, and only that
        with watch(on_b, path, resourceVersion=rv, timeoutSeconds=10) as events:
            assert next(events)["object"]["metadata"]["name"] == "y"
        # once the log is compacted past ``start`` (by whichever server), both say 410
        for i in range(40):
            assert on_a.post(path, json=service(f"z{i}", ns="rv")).status_code == 201

        def expired(api: httpx.Client) -> dict | None:
            with watch(api, path, resourceVersion=start, timeoutSeconds=2) as events:
                first = next(events, None)
            return first if first and first["type"] == "ERROR" else None

        for api in (on_a, on_b):
            err = wait_until(lambda api=api: expired(api), timeout=20,
                             what="the first revision to be compacted")
            assert (err["object"]["code"], err["object"]["reason"]) == (410, "Expired")
        # and the newest revision still resumes on the other server
        recent = on_a.get(path).json()["metadata"]["resourceVersion"]
        on_b.post(path, json=service("last", ns="rv"))
        with watch(on_a, path, resourceVersion=recent, timeoutSeconds=10) as events:
            assert next(events)["object"]["metadata"]["name"] == "last"
