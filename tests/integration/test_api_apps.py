"""apps/v1 Deployments and ReplicaSets and v1 Endpoints on a real mp-apiserver: defaults
and validation over the wire, generation, /status, /scale (GET, PUT, merge and
strategic patch, conflicts, 404), discovery, field selectors and who may do what.

One server serves the module; each test works in a namespace of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ApiServer
from tests.integration.callers import Callers

APPS = "/apis/apps/v1"
DEPLOY = APPS + "/namespaces/{ns}/deployments"
RS = APPS + "/namespaces/{ns}/replicasets"
EP = "/api/v1/namespaces/{ns}/endpoints"
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
_names = itertools.count()


@pytest.fixture
def callers(shared_api: ApiServer) -> Iterator[Callers]:
    callers = Callers(shared_api)
    try:
        yield callers
    finally:
        callers.close()


@pytest.fixture
def admin(callers: Callers) -> httpx.Client:
    return callers.admin()


@pytest.fixture
def ns(admin: httpx.Client) -> str:
    name = f"apps-{next(_names)}"
    made = admin.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    return name


def workload(kind: str, name: str = "web", **spec: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.27"}]}},
                     **spec}}


def create(admin: httpx.Client, path: str, body: dict) -> dict:
    made = admin.post(path, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def test_create_defaults_and_refuses_a_template_the_selector_misses(admin: httpx.Client,
                                                                   ns: str) -> None:
    d = create(admin, DEPLOY.format(ns=ns), workload("Deployment", replicas=3))
    assert d["metadata"]["generation"] == 1
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert d["spec"]["revisionHistoryLimit"] == 10
    assert d["spec"]["template"]["spec"]["restartPolicy"] == "Always"

    bad = workload("ReplicaSet", "api")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    answer = admin.post(RS.format(ns=ns), json=bad)
    assert answer.status_code == 422, answer.text
    status = answer.json()
    assert status["reason"] == "Invalid" and status["details"]["kind"] == "ReplicaSet"
    assert {c["field"] for c in status["details"]["causes"]} == {
        "spec.template.metadata.labels", "spec.template.spec.restartPolicy"}
    assert "`selector` does not match template `labels`" in status["message"]
    assert admin.get(RS.format(ns=ns) + "/api").status_code == 404  # nothing written


def test_generation_follows_the_spec_and_status_has_its_own_door(admin: httpx.Client,
                                                                 ns: str) -> None:
    path = DEPLOY.format(ns=ns) + "/web"
    create(admin, DEPLOY.format(ns=ns), workload("Deployment"))
    labelled = admin.patch(path, json={"metadata": {"labels": {"team": "a"}}}, headers=MERGE)
    assert labelled.json()["metadata"]["generation"] == 1  # metadata is not spec
    paused = admin.patch(path, json={"spec": {"paused": True}}, headers=MERGE).json()
    assert paused["metadata"]["generation"] == 2 and paused["spec"]["paused"] is True

    # the main resource keeps the stored status; /status keeps the stored spec
    status = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
              "readyReplicas": 1, "availableReplicas": 1}
    wrote = admin.put(path + "/status", json={**paused, "status": status,
                                              "spec": {**paused["spec"], "replicas": 9}})
    assert wrote.status_code == 200, wrote.text
    assert wrote.json()["status"] == status and wrote.json()["spec"]["replicas"] == 1
    assert wrote.json()["metadata"]["generation"] == 2
    replaced = admin.put(path, json={**wrote.json(), "status": {}})
    assert replaced.json()["status"] == status
    bad = admin.patch(path + "/status", json={"status": {"readyReplicas": 5}}, headers=MERGE)
    assert bad.status_code == 422 and bad.json()["details"]["causes"][0]["field"] == \
        "status.readyReplicas"

    # apps/v1 selectors never change
    moved = admin.patch(path, json={"spec": {"selector": {"matchLabels": {"app": "web",
                                                                        "v": "2"}},
                                             "template": {"metadata": {"labels": {"v": "2"}}}}},
                        headers=STRATEGIC)
    assert moved.status_code == 422 and moved.json()["details"]["causes"][0]["field"] == \
        "spec.selector"


def test_strategic_patch_merges_template_containers_by_name(admin: httpx.Client,
                                                            ns: str) -> None:
    body = workload("Deployment")
    body["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    create(admin, DEPLOY.format(ns=ns), body)
    patched = admin.patch(DEPLOY.format(ns=ns) + "/web", headers=STRATEGIC, json={
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
    assert patched.status_code == 200, patched.text
    containers = patched.json()["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:1.28"),
                                                             ("log", "busybox")]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_scale_subresource(admin: httpx.Client, ns: str, kind: str) -> None:
    collection = (DEPLOY if kind == "Deployment" else RS).format(ns=ns)
    owner = create(admin, collection, workload(kind, replicas=2))
    path = f"{collection}/web/scale"

    got = admin.get(path).json()
    assert got["kind"] == "Scale" and got["apiVersion"] == "autoscaling/v1"
    assert got["spec"] == {"replicas": 2}
    assert got["status"] == {"replicas": 0, "selector": "app=web"}
    assert got["metadata"]["uid"] == owner["metadata"]["uid"]

    put = admin.put(path, json={**got, "spec": {"replicas": 4}})
    assert put.status_code == 200, put.text
    assert put.json()["spec"] == {"replicas": 4}
    stored = admin.get(f"{collection}/web").json()
    assert stored["spec"]["replicas"] == 4 and stored["metadata"]["generation"] == 2
    assert put.json()["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    stale = admin.put(path, json={**got, "spec": {"replicas": 6}})  # got's resourceVersion
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    merged = admin.patch(path, json={"spec": {"replicas": 5}}, headers=MERGE)
    assert merged.status_code == 200 and merged.json()["spec"]["replicas"] == 5
    strategic = admin.patch(path, json={"spec": {"replicas": 0}}, headers=STRATEGIC)
    assert strategic.json()["spec"]["replicas"] == 0
    negative = admin.patch(path, json={"spec": {"replicas": -1}}, headers=MERGE)
    assert negative.status_code == 422
    assert negative.json()["details"]["causes"][0]["field"] == "spec.replicas"
    assert admin.get(f"{collection}/web").json()["spec"]["replicas"] == 0

    for method in ("GET", "PUT", "PATCH"):
        missing = admin.request(method, f"{collection}/gone/scale",
                                json={"spec": {"replicas": 1}},
                                headers=MERGE if method == "PATCH" else None)
        assert missing.status_code == 404, (method, missing.text)
    assert admin.delete(path).status_code == 405


def test_discovery_lists_apps_and_the_subresources(admin: httpx.Client) -> None:
    groups = admin.get("/apis").json()["groups"]
    assert {"groupVersion": "apps/v1", "version": "v1"} in [g["preferredVersion"]
                                                            for g in groups]
    resources = {r["name"]: r for r in admin.get(APPS).json()["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets",
            "replicasets/status", "replicasets/scale"} <= set(resources)
    assert resources["deployments"]["shortNames"] == ["deploy"]
    assert resources["deployments/scale"]["verbs"] == ["get", "patch", "update"]
    scale = resources["replicasets/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    core = {r["name"]: r for r in admin.get("/api/v1").json()["resources"]}
    assert core["endpoints"]["shortNames"] == ["ep"]


def test_replicasets_select_by_status_replicas(admin: httpx.Client, ns: str) -> None:
    for name, count in (("one", 1), ("two", 2)):
        create(admin, RS.format(ns=ns), workload("ReplicaSet", name))
        obj = admin.get(RS.format(ns=ns) + f"/{name}").json()
        wrote = admin.put(RS.format(ns=ns) + f"/{name}/status",
                          json={**obj, "status": {"replicas": count}})
        assert wrote.status_code == 200, wrote.text
    listed = admin.get(RS.format(ns=ns), params={"fieldSelector": "status.replicas=2"}).json()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["two"]
    bad = admin.get(DEPLOY.format(ns=ns), params={"fieldSelector": "status.replicas=2"})
    assert bad.status_code == 400  # Deployments have no such field label


def test_endpoints_are_validated_and_defaulted(admin: httpx.Client, ns: str) -> None:
    body = {"metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}]}
    ep = create(admin, EP.format(ns=ns), body)
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    loopback = {"metadata": {"name": "bad"},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 0}]}]}
    answer = admin.post(EP.format(ns=ns), json=loopback)
    assert answer.status_code == 422
    assert [c["field"] for c in answer.json()["details"]["causes"]] == [
        "subsets[0].addresses[0].ip", "subsets[0].ports[0].port"]


def bind(admin: httpx.Client, ns: str, user: str, role: str) -> None:
    made = admin.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json={
        "metadata": {"name": f"{user}-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    assert made.status_code == 201, made.text


def test_view_reads_scale_but_cannot_scale_and_edit_can(callers: Callers, admin: httpx.Client,
                                                        ns: str) -> None:
    create(admin, DEPLOY.format(ns=ns), workload("Deployment", replicas=2))
    create(admin, EP.format(ns=ns), {"metadata": {"name": "web"}, "subsets": []})
    bind(admin, ns, "vic", "view")
    bind(admin, ns, "eda", "edit")
    viewer, editor = callers.certificate("vic"), callers.certificate("eda")
    scale = DEPLOY.format(ns=ns) + "/web/scale"

    assert viewer.get(scale).json()["spec"]["replicas"] == 2
    assert viewer.get(DEPLOY.format(ns=ns)).status_code == 200
    assert viewer.get(RS.format(ns=ns)).status_code == 200
    assert viewer.get(EP.format(ns=ns) + "/web").status_code == 200
    denied = viewer.patch(scale, json={"spec": {"replicas": 7}}, headers=MERGE)
    assert denied.status_code == 403, denied.text
    assert 'cannot patch resource "deployments/scale" in API group "apps"' in \
        denied.json()["message"]
    assert viewer.put(scale, json={"spec": {"replicas": 7}}).status_code == 403
    assert viewer.patch(DEPLOY.format(ns=ns) + "/web", json={"spec": {"paused": True}},
                        headers=MERGE).status_code == 403
    assert admin.get(scale).json()["spec"]["replicas"] == 2  # nothing changed

    assert editor.patch(scale, json={"spec": {"replicas": 7}}, headers=MERGE).status_code == 200
    assert admin.get(scale).json()["spec"]["replicas"] == 7
    # Endpoints steer Service traffic: edit may read them, not write (Kubernetes 1.22+)
    assert editor.get(EP.format(ns=ns) + "/web").status_code == 200
    assert editor.delete(EP.format(ns=ns) + "/web").status_code == 403


def test_controller_manager_may_keep_workloads(callers: Callers, admin: httpx.Client,
                                               ns: str) -> None:
    kcm = callers.certificate("system:kube-controller-manager")
    rs = create(kcm, RS.format(ns=ns), workload("ReplicaSet"))
    assert kcm.put(RS.format(ns=ns) + "/web/status",
                   json={**rs, "status": {"replicas": 1}}).status_code == 200
    pod = {"metadata": {"name": "web-x", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    assert kcm.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    ep = create(kcm, EP.format(ns=ns), {"metadata": {"name": "web"}, "subsets": []})
    assert kcm.put(EP.format(ns=ns) + "/web", json=ep).status_code == 200
    # Deployments are the user's: the controllers roll them out (status, annotations)
    # and the garbage collector may delete them, but never create one
    assert kcm.post(DEPLOY.format(ns=ns), json=workload("Deployment")).status_code == 403
    d = create(admin, DEPLOY.format(ns=ns), workload("Deployment"))
    assert kcm.patch(DEPLOY.format(ns=ns) + "/web/status", headers=MERGE,
                     json={"status": {"observedGeneration": 1}}).status_code == 200
    assert kcm.delete(DEPLOY.format(ns=ns) + "/web").status_code == 200, d


def test_pod_security_warns_on_templates_and_enforces_on_pods_only(admin: httpx.Client) -> None:
    """Kubernetes judges a pod controller's template at warn and audit, never enforce:
    the Deployment is stored (with a warning) and its pods meet enforcement."""
    ns = f"apps-psa-{next(_names)}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/warn": "restricted"}
    made = admin.post("/api/v1/namespaces", json={"metadata": {"name": ns, "labels": labels}})
    assert made.status_code == 201, made.text
    created = admin.post(DEPLOY.format(ns=ns), json=workload("Deployment"))
    assert created.status_code == 201, created.text
    warning = created.headers.get("warning", "").replace('\\"', '"')
    assert warning.startswith('299 - "would violate PodSecurity "restricted:latest": '
                              'allowPrivilegeEscalation != false'), warning
    scaled = admin.patch(DEPLOY.format(ns=ns) + "/web/scale", json={"spec": {"replicas": 2}},
                         headers=MERGE)
    assert scaled.status_code == 200 and "warning" not in scaled.headers
    relabelled = admin.patch(DEPLOY.format(ns=ns) + "/web", headers=MERGE,
                             json={"metadata": {"labels": {"team": "a"}}})
    assert relabelled.status_code == 200 and "warning" not in relabelled.headers
    pod = {"metadata": {"name": "p"},
           "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    assert admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 403
