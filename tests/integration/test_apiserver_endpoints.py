"""The ``kubernetes`` Service's endpoints with two real API servers on one PostgreSQL
(issue #16): each keeps an identity Lease, both write the slices from every live
Lease, so they agree instead of overwriting each other; a killed server's address
leaves when its Lease expires, a stopped one's at once.

The advertise addresses are TEST-NET-1 (192.0.2.0/24): only recorded, never reached.
The servers listen on 127.0.0.1, each on its own port, as a local cluster's do, so
the endpoints are one slice per port (``apiserver/peers.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.conftest import ApiServer, wait_until
from tests.unit.test_storage import postgresql_server  # noqa: F401

SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
ENDPOINTS = "/api/v1/namespaces/default/endpoints"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
MANAGED = {"labelSelector": "kubernetes.io/service-name=kubernetes,"
                            "endpointslice.kubernetes.io/managed-by=kube-apiserver"}
IDENTITY = {"labelSelector": "apiserver.kubernetes.io/identity=kube-apiserver"}
DURATION = 3  # --endpoint-lease-duration, seconds
INTERVAL = 0.5  # --endpoint-reconcile-interval
FAST = ["--endpoint-lease-duration", f"{DURATION}s",
        "--endpoint-reconcile-interval", f"{INTERVAL}s"]


@pytest.fixture
def two_servers(postgresql_server: str, tmp_path: Path  # noqa: F811
                ) -> Iterator[list[ApiServer]]:
    url = postgres.create_database(postgresql_server, f"t{uuid.uuid4().hex[:12]}")
    servers = [ApiServer(db_path=tmp_path / f"unused{n}.db", log_path=tmp_path / f"api{n}.log",
                         cert_dir=tmp_path / "pki",
                         extra_args=["--storage-url", url, "--advertise-address",
                                     f"192.0.2.{11 + n}", *FAST])
               for n in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def endpoints(api: httpx.Client) -> set[tuple[str, int]]:
    """(address, port) of every endpoint in the kubernetes Service's slices."""
    items = api.get(SLICES, params=MANAGED).json()["items"]
    return {(a, s["ports"][0]["port"]) for s in items for e in s["endpoints"]
            for a in e["addresses"]}


def v1_endpoints(api: httpx.Client) -> set[tuple[str, int]]:
    """(address, port) of every address in the kubernetes Service's v1 Endpoints."""
    resp = api.get(f"{ENDPOINTS}/kubernetes")
    if resp.status_code == 404:
        return set()
    return {(a["ip"], p["port"]) for s in resp.json().get("subsets") or []
            for a in s.get("addresses") or [] for p in s.get("ports") or []}


def identity_leases(api: httpx.Client) -> dict[str, dict]:
    items = api.get(LEASES, params=IDENTITY).json()["items"]
    return {i["metadata"]["annotations"]["miniplane.io/advertise-address"]: i for i in items}


def slice_events(api: httpx.Client, since: str, seconds: int, path: str = SLICES
                 ) -> list[dict]:
    """Every change to the default namespace's slices (or ``path``) after ``since``,
    for ``seconds``."""
    with api.stream("GET", path, params={"watch": "true", "resourceVersion": since,
                                           "timeoutSeconds": str(seconds),
                                           "allowWatchBookmarks": "false"}) as resp:
        assert resp.status_code == 200
        return [json.loads(line) for line in resp.iter_lines() if line]


def test_both_servers_keep_the_kubernetes_endpoints_and_agree(
        two_servers: list[ApiServer]) -> None:
    a, b = two_servers
    both = {("192.0.2.11", a.port), ("192.0.2.12", b.port)}
    with a.http(timeout=30) as api:
        wait_until(lambda: endpoints(api) == both, timeout=20, what=f"endpoints {both}")
        wait_until(lambda: v1_endpoints(api) == both, timeout=20, what=f"v1 endpoints {both}")
        leases = identity_leases(api)
        assert set(leases) == {"192.0.2.11", "192.0.2.12"}
        for address, server in (("192.0.2.11", a), ("192.0.2.12", b)):
            lease = leases[address]
            assert lease["metadata"]["annotations"]["miniplane.io/advertise-port"] == \
                str(server.port)
            assert lease["spec"]["leaseDurationSeconds"] == DURATION
            assert lease["spec"]["holderIdentity"].startswith(lease["metadata"]["name"] + "_")
        # the lower port's slice is the one named kubernetes
        named = api.get(f"{SLICES}/kubernetes").json()
        assert named["ports"][0]["port"] == min(a.port, b.port)

        # converged: over several rounds of both servers renewing, no slice is written
        since = api.get(SLICES).json()["metadata"]["resourceVersion"]
        assert slice_events(api, since, seconds=3) == []
        since = api.get(ENDPOINTS).json()["metadata"]["resourceVersion"]
        assert slice_events(api, since, seconds=2, path=ENDPOINTS) == []
        renewed = identity_leases(api)
        assert all(renewed[k]["metadata"]["resourceVersion"]
                   != leases[k]["metadata"]["resourceVersion"] for k in leases)
        assert endpoints(api) == both


def test_a_killed_server_leaves_when_its_lease_expires_a_stopped_one_at_once(
        two_servers: list[ApiServer]) -> None:
    a, b = two_servers
    both = {("192.0.2.11", a.port), ("192.0.2.12", b.port)}
    only_a = {("192.0.2.11", a.port)}
    with a.http(timeout=30) as api:
        wait_until(lambda: endpoints(api) == both, timeout=20, what=f"endpoints {both}")
        b.kill()  # SIGKILL: no withdrawal, its Lease just stops being renewed
        wait_until(lambda: endpoints(api) == only_a, timeout=DURATION + 15,
                   what="the killed server's endpoint to leave")
        wait_until(lambda: v1_endpoints(api) == only_a, timeout=5,
                   what="the killed server's address to leave the v1 Endpoints")
        # and its Lease, unrenewed for twice its duration, is tidied away
        wait_until(lambda: set(identity_leases(api)) == {"192.0.2.11"}, timeout=2 * DURATION + 15,
                   what="the killed server's Lease to be deleted")

        # back, with a Lease far longer than the wait below: only withdrawal explains it
        b.extra_args = [*b.extra_args, "--endpoint-lease-duration", "120s"]
        b.start()
        wait_until(lambda: endpoints(api) == both, timeout=20, what=f"endpoints {both}")
        assert b.stop() == 0  # SIGTERM: it deletes its Lease and rewrites the slices
        wait_until(lambda: endpoints(api) == only_a, timeout=5,
                   what="the stopped server's endpoint to leave")
        wait_until(lambda: v1_endpoints(api) == only_a, timeout=5,
                   what="the stopped server's address to leave the v1 Endpoints")
        assert set(identity_leases(api)) == {"192.0.2.11"}
