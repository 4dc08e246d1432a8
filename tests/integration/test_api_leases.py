"""Leases on a real mp-apiserver: served like the other kinds, validated as
Kubernetes validates them, and written only by who may: kube-controller-manager
its own lock, a node only its own Lease in kube-node-lease, dnsd none."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ApiServer
from tests.integration.callers import Callers

GROUP = "/apis/coordination.k8s.io/v1"
NODE_LEASES = f"{GROUP}/namespaces/kube-node-lease/leases"
SYSTEM_LEASES = f"{GROUP}/namespaces/kube-system/leases"
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def lease(name: str, holder: str = "a", **spec: object) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": "2026-01-01T02:00:00.500000+02:00", **spec}}


@pytest.fixture
def callers(apiserver: ApiServer) -> Iterator[Callers]:
    callers = Callers(apiserver)
    try:
        yield callers
    finally:
        callers.close()


def causes(resp: httpx.Response) -> list[tuple[str, str]]:
    return [(c["field"], c["reason"]) for c in resp.json()["details"]["causes"]]


def test_lease_crud_with_optimistic_concurrency(callers: Callers) -> None:
    admin = callers.admin()
    url = f"{GROUP}/namespaces/default/leases"
    resp = admin.post(url, json=lease("lock"))
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["spec"]["renewTime"] == "2026-01-01T00:00:00.500000Z"  # UTC, as Kubernetes
    assert admin.get(f"{url}/lock").json()["spec"]["holderIdentity"] == "a"
    assert [i["metadata"]["name"] for i in admin.get(url).json()["items"]] == ["lock"]

    taken = {**made, "spec": {**made["spec"], "holderIdentity": "b", "leaseTransitions": 1}}
    resp = admin.put(f"{url}/lock", json=taken)
    assert resp.status_code == 200, resp.text
    # a second write from the same observation loses: the lock's whole point
    resp = admin.put(f"{url}/lock", json={**taken, "spec": {**taken["spec"],
                                                            "holderIdentity": "c"}})
    assert resp.status_code == 409, resp.text
    assert admin.get(f"{url}/lock").json()["spec"]["holderIdentity"] == "b"

    table = admin.get(url, headers=TABLE).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert table["rows"][0]["cells"][:2] == ["lock", "b"]

    assert admin.delete(f"{url}/lock").status_code == 200
    assert admin.get(f"{url}/lock").status_code == 404


@pytest.mark.parametrize(("spec", "field"), [
    ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds"),
    ({"leaseTransitions": -1}, "spec.leaseTransitions"),
    ({"renewTime": "2026-01-01T00:00:00Z"}, "spec.renewTime"),
    ({"acquireTime": "now"}, "spec.acquireTime"),
    ({"holderIdentity": 5}, "spec.holderIdentity"),
])
def test_invalid_leases_are_refused_naming_the_field(callers: Callers, spec: dict,
                                                     field: str) -> None:
    admin = callers.admin()
    url = f"{GROUP}/namespaces/default/leases"
    resp = admin.post(url, json=lease("bad", **spec))
    assert resp.status_code == 422, resp.text
    assert resp.json()["reason"] == "Invalid"
    assert causes(resp) == [(field, "FieldValueInvalid")]
    assert admin.get(f"{url}/bad").status_code == 404


def test_discovery_lists_leases(callers: Callers) -> None:
    admin = callers.admin()
    resources = admin.get(GROUP).json()["resources"]
    leases = next(r for r in resources if r["name"] == "leases")
    assert (leases["kind"], leases["namespaced"]) == ("Lease", True)
    assert "update" in leases["verbs"] and "watch" in leases["verbs"]
    groups = [g["name"] for g in admin.get("/apis").json()["groups"]]
    assert "coordination.k8s.io" in groups


def test_a_node_writes_only_its_own_lease(callers: Callers) -> None:
    admin, node1 = callers.admin(), callers.node("node-1")
    resp = node1.post(NODE_LEASES, json=lease("node-1", "node-1"))
    assert resp.status_code == 201, resp.text
    resp = node1.post(NODE_LEASES, json=lease("node-2", "node-1"))
    assert resp.status_code == 403, resp.text
    assert resp.json()["message"] == ('leases.coordination.k8s.io "node-2" is forbidden: '
                                      "can only access node lease with the same name as "
                                      "the requesting node")
    assert admin.post(NODE_LEASES, json=lease("node-2", "node-2")).status_code == 201

    theirs = admin.get(f"{NODE_LEASES}/node-2").json()
    for resp in (node1.get(f"{NODE_LEASES}/node-2"),
                 node1.put(f"{NODE_LEASES}/node-2",
                           json={**theirs, "spec": {**theirs["spec"], "holderIdentity": "x"}}),
                 node1.patch(f"{NODE_LEASES}/node-2", json={"spec": {"holderIdentity": "x"}},
                             headers={"content-type": "application/merge-patch+json"}),
                 node1.delete(f"{NODE_LEASES}/node-2"),
                 node1.get(NODE_LEASES),
                 node1.post(f"{GROUP}/namespaces/default/leases", json=lease("node-1"))):
        assert resp.status_code == 403, resp.text
    assert admin.get(f"{NODE_LEASES}/node-2").json() == theirs

    mine = node1.get(f"{NODE_LEASES}/node-1").json()
    mine["spec"]["renewTime"] = "2026-01-01T00:00:10.000000Z"
    resp = node1.put(f"{NODE_LEASES}/node-1", json=mine)
    assert resp.status_code == 200, resp.text
    resp = node1.patch(f"{NODE_LEASES}/node-1", json={"spec": {"leaseDurationSeconds": 40}},
                       headers={"content-type": "application/merge-patch+json"})
    assert resp.status_code == 200, resp.text


def test_controller_manager_holds_its_own_lock_and_dnsd_none(callers: Callers) -> None:
    admin = callers.admin()
    kcm = callers.certificate("system:kube-controller-manager")
    dnsd = callers.certificate("system:miniplane-dnsd")
    resp = kcm.post(SYSTEM_LEASES, json=lease("kube-controller-manager", "host_1"))
    assert resp.status_code == 201, resp.text
    got = kcm.get(f"{SYSTEM_LEASES}/kube-controller-manager")
    assert got.status_code == 200
    got.json()["spec"]["holderIdentity"] = "host_2"
    assert kcm.put(f"{SYSTEM_LEASES}/kube-controller-manager", json=got.json()).status_code == 200

    other = admin.post(SYSTEM_LEASES, json=lease("other"))
    assert other.status_code == 201
    taken = {**other.json(), "spec": {**other.json()["spec"], "holderIdentity": "host_1"}}
    # (the garbage collector's role lets this identity read, patch and delete any object,
    # as Kubernetes' collector may; taking over another lock by update it may not)
    for resp in (kcm.put(f"{SYSTEM_LEASES}/other", json=taken),
                 dnsd.get(f"{SYSTEM_LEASES}/kube-controller-manager"),
                 dnsd.post(SYSTEM_LEASES, json=lease("dns")),
                 dnsd.get(SYSTEM_LEASES)):
        assert resp.status_code == 403, resp.text
    assert admin.get(f"{SYSTEM_LEASES}/dns").status_code == 404
    assert admin.get(f"{SYSTEM_LEASES}/other").status_code == 200


def test_api_server_identity_lease_is_written_by_the_server_alone(
        callers: Callers, apiserver: ApiServer) -> None:
    """The Lease naming the server's address (the kubernetes Service's endpoints come
    from such Leases): the controller-manager, which may create Leases, may neither
    change it nor make a forged one (RBAC, then APIServerIdentity admission)."""
    admin = callers.admin()
    kcm = callers.certificate("system:kube-controller-manager")
    identity = {"labelSelector": "apiserver.kubernetes.io/identity=kube-apiserver"}
    [mine] = admin.get(SYSTEM_LEASES, params=identity).json()["items"]
    name = mine["metadata"]["name"]
    assert mine["metadata"]["annotations"] == {"miniplane.io/advertise-address": "127.0.0.1",
                                               "miniplane.io/advertise-port": str(apiserver.port)}
    forged = json.loads(json.dumps(mine))
    forged["metadata"]["annotations"]["miniplane.io/advertise-address"] = "192.0.2.66"
    fake = {**forged, "metadata": {**forged["metadata"], "name": "apiserver-fake"}}
    del fake["metadata"]["resourceVersion"], fake["metadata"]["uid"]
    for resp in (kcm.put(f"{SYSTEM_LEASES}/{name}", json=forged),
                 kcm.patch(f"{SYSTEM_LEASES}/{name}",
                           json={"metadata": {"annotations": {
                               "miniplane.io/advertise-address": "192.0.2.66"}}},
                           headers={"Content-Type": "application/merge-patch+json"}),
                 kcm.delete(f"{SYSTEM_LEASES}/{name}")):
        assert resp.status_code == 403, resp.text
    resp = kcm.post(SYSTEM_LEASES, json=fake)
    assert resp.status_code == 403, resp.text
    assert "only system:masters may write a Lease labelled" in resp.json()["message"]
    [still] = admin.get(SYSTEM_LEASES, params=identity).json()["items"]
    assert still["metadata"]["name"] == name
    assert still["metadata"]["annotations"] == mine["metadata"]["annotations"]
