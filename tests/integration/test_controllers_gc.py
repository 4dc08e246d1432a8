"""Garbage collection end to end: a real mp-apiserver, a real mp-controllers running
only the garbage collector as ``system:kube-controller-manager`` (so its RBAC is
what is granted), and the real kubectl for ``delete --cascade``.

Owners are objects of any served kind (ServiceAccounts, Services, Deployments,
ReplicaSets, an Event); dependents are unbound Pods (deleted at once, no node agent)
and Endpoints. ``olive``, an ordinary user by static token, tries what owner
references must not let her do. Every wait polls the API with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery.kinds import (
    DEPLOYMENT,
    ENDPOINTS,
    EVENT,
    POD,
    REPLICASET,
    SERVICE,
    SERVICEACCOUNT,
)
from client.errors import Invalid, NotFound
from tests.compat.conftest import KUBECTL, Kubectl
from tests.conftest import ApiServer, wait_until
from tests.integration.callers import Callers, token_file
from tests.integration.test_controllers_harness import ControllerProcess
from tests.integration.test_node_lease import component_kubeconfig

NS = "default"
OLIVE = "olive-token-5b7d9e1f"  # an ordinary user (--token-auth-file)


class Gc:
    """The API server, the collector, and helpers to make owners and dependents."""

    def __init__(self, api: ApiServer, controllers: ControllerProcess) -> None:
        self.api, self.controllers = api, controllers
        self.client = api.client(timeout=10)

    def owner(self, kind, name: str, **body) -> dict:
        obj: dict = {"metadata": {"name": name}, **body}
        if kind is SERVICE:
            obj["spec"] = {"ports": [{"port": 80}], "selector": {"app": name}}
        if kind in (DEPLOYMENT, REPLICASET):
            obj["spec"] = workload_spec(name)
        return self.client.create(kind, obj, NS)

    def pod(self, name: str, *owners: dict, block: bool = False,
            finalizers: list[str] | None = None) -> dict:
        meta: dict = {"name": name, "ownerReferences": [ref(o, block) for o in owners]}
        if finalizers:
            meta["finalizers"] = finalizers
        return self.client.create(POD, {"metadata": meta, "spec": {"containers": [
            {"name": "main", "image": "busybox"}]}}, NS)

    def exists(self, kind, name: str) -> bool:
        try:
            self.client.get(kind, name, NS)
        except NotFound:
            return False
        return True

    def wait_gone(self, kind, *names: str, timeout: float = 15.0) -> None:
        wait_until(lambda: not any(self.exists(kind, n) for n in names), timeout=timeout,
                   what=f"{kind.plural} {', '.join(names)} collected")


def workload_spec(name: str) -> dict:
    """A valid Deployment/ReplicaSet spec with no replicas: only the collector runs here."""
    return {"replicas": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}


def ref(owner: dict, block: bool = False) -> dict:
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}
    if block:
        out["blockOwnerDeletion"] = True
    return out


@pytest.fixture(scope="module")
def gc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gc]:
    tmp = tmp_path_factory.mktemp("gc")
    api = ApiServer(db_path=tmp / "state.db", log_path=tmp / "apiserver.log",
                    extra_args=["--token-auth-file",
                                str(token_file(tmp / "tokens.csv", {"olive": OLIVE}))])
    api.start()
    controllers = ControllerProcess(
        api.url, tmp / "controllers.log", ["--controllers", "garbagecollector"],
        kubeconfig=component_kubeconfig(tmp / "cm.kubeconfig", api,
                                        "system:kube-controller-manager"))
    made = Gc(api, controllers)
    try:
        controllers.start()
        yield made
    finally:
        controllers.stop()
        made.client.close()
        api.stop()


def test_background_delete_collects_dependents_of_any_kind(gc: Gc):
    sa = gc.owner(SERVICEACCOUNT, "bg")
    gc.pod("bg-1", sa)
    gc.pod("bg-2", sa)
    gc.client.create(ENDPOINTS, {"metadata": {"name": "bg-ep", "ownerReferences": [ref(sa)]}},
                     NS)
    gc.pod("bg-free")
    gc.client.delete(SERVICEACCOUNT, "bg", NS)  # Background: the default
    gc.wait_gone(POD, "bg-1", "bg-2")
    gc.wait_gone(ENDPOINTS, "bg-ep")
    assert gc.exists(POD, "bg-free")


def test_chains_are_collected_down_to_grandchildren(gc: Gc):
    deploy = gc.owner(DEPLOYMENT, "chain")
    rs = gc.client.create(REPLICASET, {"metadata": {"name": "chain-rs",
                                                    "ownerReferences": [ref(deploy)]},
                                       "spec": workload_spec("chain-rs")}, NS)
    gc.pod("chain-1", rs)
    gc.client.delete(DEPLOYMENT, "chain", NS)
    gc.wait_gone(REPLICASET, "chain-rs")
    gc.wait_gone(POD, "chain-1")


def test_foreground_keeps_the_owner_until_blocking_dependents_are_gone(gc: Gc):
    svc = gc.owner(SERVICE, "fg")
    gc.pod("fg-held", svc, block=True, finalizers=["example.com/hold"])
    gc.pod("fg-2", svc, block=True)
    answer = gc.client.delete(SERVICE, "fg", NS, propagation_policy="Foreground")
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    gc.wait_gone(POD, "fg-2")
    # the held pod is marked for deletion but stays: the owner waits for it, visibly
    wait_until(lambda: gc.client.get(POD, "fg-held", NS)["metadata"].get("deletionTimestamp"),
               timeout=15, what="fg-held marked for deletion")
    owner = gc.client.get(SERVICE, "fg", NS)["metadata"]
    assert owner["deletionTimestamp"] and owner["finalizers"] == ["foregroundDeletion"]
    gc.client.patch(POD, "fg-held", {"metadata": {"finalizers": None}}, namespace=NS)
    gc.wait_gone(SERVICE, "fg")


def test_foreground_without_dependents_still_completes(gc: Gc):
    gc.owner(SERVICEACCOUNT, "fg-alone")
    gc.client.delete(SERVICEACCOUNT, "fg-alone", NS, propagation_policy="Foreground")
    gc.wait_gone(SERVICEACCOUNT, "fg-alone")


def test_orphan_leaves_dependents_without_the_reference(gc: Gc):
    sa = gc.owner(SERVICEACCOUNT, "orph")
    other = gc.owner(SERVICEACCOUNT, "orph-other")
    gc.pod("orph-1", sa)
    gc.pod("orph-2", sa, other)
    gc.client.delete(SERVICEACCOUNT, "orph", NS, propagation_policy="Orphan")
    gc.wait_gone(SERVICEACCOUNT, "orph")
    assert "ownerReferences" not in gc.client.get(POD, "orph-1", NS)["metadata"] or \
        gc.client.get(POD, "orph-1", NS)["metadata"]["ownerReferences"] == []
    refs = gc.client.get(POD, "orph-2", NS)["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["orph-other"]


def test_delete_collection_propagates_too(gc: Gc):
    owners = [gc.owner(SERVICEACCOUNT, f"coll-{i}") for i in range(2)]
    for i, owner in enumerate(owners):
        gc.client.patch(SERVICEACCOUNT, f"coll-{i}", {"metadata": {"labels": {"gc": "coll"}}},
                        namespace=NS)
        gc.pod(f"coll-pod-{i}", owner)
    with gc.api.client(timeout=10) as c:
        c.request("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts",
                  params={"labelSelector": "gc=coll"}, json={"propagationPolicy": "Orphan"})
    gc.wait_gone(SERVICEACCOUNT, "coll-0", "coll-1")
    for i in range(2):
        assert not gc.client.get(POD, f"coll-pod-{i}", NS)["metadata"].get("ownerReferences")


def test_a_second_delete_may_switch_the_policy_of_an_object_already_going(gc: Gc):
    sa = gc.client.create(SERVICEACCOUNT, {"metadata": {"name": "switch",
                                                        "finalizers": ["example.com/hold"]}},
                          NS)
    gc.pod("switch-dep", sa, block=True, finalizers=["example.com/hold"])

    def finalizers() -> list[str]:
        return gc.client.get(SERVICEACCOUNT, "switch", NS)["metadata"].get("finalizers")

    first = gc.client.delete(SERVICEACCOUNT, "switch", NS, propagation_policy="Foreground")
    assert first["metadata"]["finalizers"] == ["example.com/hold", "foregroundDeletion"]
    # the held dependent is marked for deletion and keeps the owner waiting
    wait_until(lambda: gc.client.get(POD, "switch-dep", NS)["metadata"].get(
        "deletionTimestamp"), timeout=15, what="switch-dep marked for deletion")
    assert finalizers() == ["example.com/hold", "foregroundDeletion"]
    second = gc.client.delete(SERVICEACCOUNT, "switch", NS, propagation_policy="Orphan")
    assert second["metadata"]["finalizers"] == ["example.com/hold", "orphan"]
    assert second["metadata"]["deletionTimestamp"] == first["metadata"]["deletionTimestamp"]
    # stored: the collector orphans the dependent and takes its finalizer off
    wait_until(lambda: finalizers() == ["example.com/hold"], timeout=15, what="orphan done")
    assert not gc.client.get(POD, "switch-dep", NS)["metadata"].get("ownerReferences")
    for kind, name in ((SERVICEACCOUNT, "switch"), (POD, "switch-dep")):
        gc.client.patch(kind, name, {"metadata": {"finalizers": None}}, namespace=NS)
        gc.wait_gone(kind, name)


def test_legacy_orphan_dependents_query_is_honoured(gc: Gc):
    gc.owner(SERVICEACCOUNT, "legacy")
    with gc.api.client(timeout=10) as c:
        answer = c.request("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/legacy",
                           params={"orphanDependents": "true"}).json()
    assert answer["metadata"]["finalizers"] == ["orphan"]
    gc.wait_gone(SERVICEACCOUNT, "legacy")


def test_a_dependent_of_an_owner_recreated_under_its_name_is_collected(gc: Gc):
    old = gc.owner(SERVICEACCOUNT, "re")
    gc.client.delete(SERVICEACCOUNT, "re", NS)
    new = gc.owner(SERVICEACCOUNT, "re")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    gc.pod("re-new", new)
    gc.pod("re-old", old)  # points at the old uid, whose name holds another object now
    gc.wait_gone(POD, "re-old")
    assert gc.exists(POD, "re-new")


def test_a_dependent_with_a_live_owner_survives_losing_the_other(gc: Gc):
    a = gc.owner(SERVICEACCOUNT, "multi-a")
    b = gc.owner(SERVICEACCOUNT, "multi-b")
    gc.pod("multi", a, b)
    gc.client.delete(SERVICEACCOUNT, "multi-a", NS)
    wait_until(lambda: [r["name"] for r in gc.client.get(POD, "multi", NS)["metadata"][
        "ownerReferences"]] == ["multi-b"], timeout=15, what="multi-a's reference removed")
    assert gc.exists(POD, "multi")


def test_an_owner_the_collector_does_not_watch_is_looked_up_not_presumed_gone(gc: Gc):
    """Events are not in the collector's graph (as in Kubernetes): an Event owner is
    a cache miss every time, and only the live GET keeps its dependent alive."""
    event = gc.client.create(EVENT, {"metadata": {"name": "ev-owner"},
                                     "involvedObject": {"kind": "Pod", "name": "x"},
                                     "reason": "Test", "message": "owner"}, NS)
    gone = gc.owner(SERVICEACCOUNT, "ev-gone")
    gc.client.delete(SERVICEACCOUNT, "ev-gone", NS)
    gc.pod("ev-dep", event, gone)
    wait_until(lambda: [r["name"] for r in gc.client.get(POD, "ev-dep", NS)["metadata"][
        "ownerReferences"]] == ["ev-owner"], timeout=15, what="ev-gone's reference removed")


def test_owners_deleted_while_the_collector_was_down_are_noticed_at_start(gc: Gc):
    sa = gc.owner(SERVICEACCOUNT, "down")
    gc.pod("down-dep", sa)
    gc.controllers.stop()
    try:
        gc.client.delete(SERVICEACCOUNT, "down", NS)
        assert gc.exists(POD, "down-dep")  # nobody collects while it is down
    finally:
        gc.controllers.start()
    gc.wait_gone(POD, "down-dep")


def test_bad_delete_options_and_owner_references_are_422_and_change_nothing(gc: Gc):
    gc.owner(SERVICEACCOUNT, "bad")
    with gc.api.client(timeout=10) as c, pytest.raises(Invalid) as err:
        c.request("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/bad",
                  json={"propagationPolicy": "Orphan", "orphanDependents": True})
    assert err.value.causes[0]["field"] == "propagationPolicy"
    with pytest.raises(Invalid) as err:
        gc.client.delete(SERVICEACCOUNT, "bad", NS, propagation_policy="Sometimes")
    assert gc.exists(SERVICEACCOUNT, "bad")
    with pytest.raises(Invalid) as err:
        gc.client.create(POD, {"metadata": {"name": "bad-ref", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "name": "bad"}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, NS)
    assert "metadata.ownerReferences[0].uid" in {c["field"] for c in err.value.causes}
    assert not gc.exists(POD, "bad-ref")


def test_foreground_chain_waits_level_by_level(gc: Gc):
    deploy = gc.owner(DEPLOYMENT, "fchain")
    rs = gc.client.create(REPLICASET, {"metadata": {
        "name": "fchain-rs", "ownerReferences": [ref(deploy, block=True)]},
        "spec": workload_spec("fchain-rs")}, NS)
    gc.pod("fchain-pod", rs, block=True, finalizers=["example.com/hold"])
    gc.client.delete(DEPLOYMENT, "fchain", NS, propagation_policy="Foreground")
    # the ReplicaSet has a dependent of its own: it is deleted in the foreground too
    wait_until(lambda: gc.client.get(REPLICASET, "fchain-rs", NS)["metadata"].get(
        "finalizers") == ["foregroundDeletion"], timeout=15, what="fchain-rs foreground")
    wait_until(lambda: gc.client.get(POD, "fchain-pod", NS)["metadata"].get(
        "deletionTimestamp"), timeout=15, what="fchain-pod marked for deletion")
    assert gc.client.get(DEPLOYMENT, "fchain", NS)["metadata"]["deletionTimestamp"]
    gc.client.patch(POD, "fchain-pod", {"metadata": {"finalizers": None}}, namespace=NS)
    gc.wait_gone(REPLICASET, "fchain-rs")
    gc.wait_gone(DEPLOYMENT, "fchain")


def kubectl_for(gc: Gc, tmp_path: Path) -> Kubectl:
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(gc.api.url, home, gc.api.kubeconfig)


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed")
@pytest.mark.parametrize("cascade", ["background", "orphan"])
def test_kubectl_delete_cascade_background_and_orphan(gc: Gc, tmp_path: Path, cascade: str):
    kubectl = kubectl_for(gc, tmp_path)
    owner = gc.owner(DEPLOYMENT, f"k-{cascade}")
    gc.pod(f"k-{cascade}-pod", owner, block=True)
    out = kubectl.out("delete", "deployment", f"k-{cascade}", "-n", NS,
                      f"--cascade={cascade}", "--timeout=30s")
    assert f'deployment.apps "k-{cascade}" deleted' in out
    assert not gc.exists(DEPLOYMENT, f"k-{cascade}")  # kubectl waited for it to go
    if cascade == "orphan":
        pod = gc.client.get(POD, f"k-{cascade}-pod", NS)
        assert not pod["metadata"].get("ownerReferences")
    else:
        gc.wait_gone(POD, f"k-{cascade}-pod")


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed")
def test_kubectl_delete_cascade_foreground(gc: Gc, tmp_path: Path):
    kubectl = kubectl_for(gc, tmp_path)
    owner = gc.owner(DEPLOYMENT, "k-fg")
    gc.pod("k-fg-pod", owner, block=True, finalizers=["example.com/hold"])
    kubectl.out("delete", "deployment", "k-fg", "-n", NS, "--cascade=foreground",
                "--wait=false")
    wait_until(lambda: gc.client.get(POD, "k-fg-pod", NS)["metadata"].get(
        "deletionTimestamp"), timeout=15, what="k-fg-pod marked for deletion")
    meta = gc.client.get(DEPLOYMENT, "k-fg", NS)["metadata"]
    assert meta["deletionTimestamp"] and meta["finalizers"] == ["foregroundDeletion"]
    gc.client.patch(POD, "k-fg-pod", {"metadata": {"finalizers": None}}, namespace=NS)
    kubectl.out("wait", "--for=delete", "deployment/k-fg", "-n", NS, "--timeout=30s")
    assert not gc.exists(POD, "k-fg-pod")


RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"


def grant(gc: Gc, name: str, rules: list[dict]) -> None:
    """A Role with ``rules`` in ``default``, bound to olive."""
    admin = gc.client
    admin.request("POST", f"{RBAC}/roles", json={"metadata": {"name": name}, "rules": rules})
    admin.request("POST", f"{RBAC}/rolebindings", json={
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "olive"}]})


def test_an_owner_reference_lends_no_power_its_writer_lacks(gc: Gc):
    """OwnerReferencesPermissionEnforcement: the collector deletes as itself, so setting
    references needs delete on the object, and blockOwnerDeletion needs update on the
    owner's finalizers."""
    grant(gc, "olive-pods", [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "delete"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "update", "patch"]}])
    guarded = gc.owner(SERVICE, "guarded")
    sa = gc.owner(SERVICEACCOUNT, "perm-owner")
    pods = f"/api/v1/namespaces/{NS}/pods"
    body = {"metadata": {"name": "perm-pod", "ownerReferences": [ref(sa)]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    callers = Callers(gc.api)
    try:
        olive = callers.token(OLIVE)
        wait_until(lambda: olive.get(f"{pods}/none").status_code == 404, timeout=10,
                   what="olive's Role in effect")
        # olive may update the Service but not delete it: no reference that would have
        # the collector delete it for her
        made = olive.patch(f"/api/v1/namespaces/{NS}/services/guarded", json={
            "metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount",
                                              "name": "gone", "uid": "no-such-uid"}]}},
            headers={"Content-Type": "application/merge-patch+json"})
        assert made.status_code == 403, made.text
        assert "cannot set an ownerRef on a resource you can't delete" in made.json()["message"]
        stored = gc.client.get(SERVICE, "guarded", NS)
        assert stored["metadata"]["resourceVersion"] == guarded["metadata"]["resourceVersion"]
        # references on her own pods are fine; blocking the owner's deletion is not
        assert olive.post(pods, json=body).status_code == 201
        blocking = {**body, "metadata": {"name": "perm-block",
                                         "ownerReferences": [ref(sa, block=True)]}}
        refused = olive.post(pods, json=blocking)
        assert refused.status_code == 403, refused.text
        assert "can't set finalizers on" in refused.json()["message"]
        assert not gc.exists(POD, "perm-block")
        grant(gc, "olive-finalizers", [{"apiGroups": [""], "verbs": ["update"],
                                        "resources": ["serviceaccounts/finalizers"]}])
        wait_until(lambda: olive.post(pods, json=blocking).status_code == 201, timeout=10,
                   what="blockOwnerDeletion allowed with update on the owner's finalizers")
    finally:
        callers.close()
