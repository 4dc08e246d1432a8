"""CRUD, metadata, subresources, patches and every error case, against a real mp-apiserver."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import admin_tls
from tests.integration.rest import NODE, NS, POD, SLICE, SVC, pod, service, status_of


@pytest.fixture
def api(api_url: str):
    with httpx.Client(verify=admin_tls(), base_url=api_url, timeout=10) as client:
        yield client


def test_system_namespaces_and_kubernetes_service_exist_from_first_start(api):
    names = {n["metadata"]["name"] for n in api.get(NS).json()["items"]}
    assert {"default", "kube-system"} <= names
    ns = api.get(f"{NS}/default").json()
    assert ns["status"]["phase"] == "Active"
    svc = api.get(SVC.format(ns="default") + "/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443


def test_create_fills_server_owned_metadata_and_get_returns_it(api):
    body = service("web")
    body["metadata"].update(uid="client-uid", resourceVersion="", annotations={"a": "b"},
                            finalizers=["example.com/keep"])
    resp = api.post(SVC.format(ns="default"), json=body)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    m = created["metadata"]
    assert m["uid"] != "client-uid" and len(m["uid"]) == 36
    assert m["creationTimestamp"].endswith("Z") and m["generation"] == 1
    assert int(m["resourceVersion"]) > 0
    assert m["annotations"] == {"a": "b"} and m["finalizers"] == ["example.com/keep"]
    assert created["apiVersion"] == "v1" and created["kind"] == "Service"
    spec = created["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    got = api.get(SVC.format(ns="default") + "/web").json()
    assert got == created


def test_generate_name(api):
    body = service("")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "web-"
    a = api.post(SVC.format(ns="default"), json=body).json()
    b = api.post(SVC.format(ns="default"), json=body).json()
    assert a["metadata"]["name"].startswith("web-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]


def test_every_kind_round_trips(api):
    assert api.post(NODE, json={"metadata": {"name": "node-1"},
                                "spec": {"podCIDR": "10.244.1.0/24"}}).status_code == 201
    assert api.post(NS, json={"metadata": {"name": "team-a"}}).status_code == 201
    assert api.post(POD.format(ns="team-a"), json=pod("p1", ns="team-a")).status_code == 201
    eps = {"metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    resp = api.post(SLICE.format(ns="team-a"), json=eps)
    assert resp.status_code == 201, resp.text
    assert resp.json()["apiVersion"] == "discovery.k8s.io/v1"
    for path in (f"{NODE}/node-1", f"{NS}/team-a", POD.format(ns="team-a") + "/p1",
                 SLICE.format(ns="team-a") + "/web-abc"):
        assert api.get(path).status_code == 200, path
    all_pods = api.get("/api/v1/pods").json()
    assert [p["metadata"]["name"] for p in all_pods["items"]] == ["p1"]
    assert all_pods["kind"] == "PodList"


def test_error_statuses_and_nothing_changes(api):
    path = SVC.format(ns="default")
    created = api.post(path, json=service("web")).json()
    rv = created["metadata"]["resourceVersion"]

    dup = api.post(path, json=service("web"))
    assert dup.status_code == 409 and status_of(dup)["reason"] == "AlreadyExists"
    assert status_of(dup)["message"] == 'services "web" already exists'

    missing = api.get(path + "/nope")
    assert missing.status_code == 404 and status_of(missing)["reason"] == "NotFound"
    assert status_of(missing)["details"] == {"name": "nope", "kind": "services"}

    bad = service("web2", port=70000)
    resp = api.post(path, json=bad)
    assert resp.status_code == 422
    st = status_of(resp)
    assert st["reason"] == "Invalid"
    # targetPort defaults to the port, so it is out of range too, as in Kubernetes
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.ports[0].port",
                                                             "spec.ports[0].targetPort"]
    assert api.get(path + "/web2").status_code == 404

    resp = api.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and status_of(resp)["reason"] == "BadRequest"

    big = service("huge")
    big["metadata"]["annotations"] = {"x": "a" * (3 * 1024 * 1024)}
    resp = api.post(path, json=big)
    assert resp.status_code == 413
    assert api.get(path + "/huge").status_code == 404

    stale = dict(created)
    stale["metadata"] = {**created["metadata"], "resourceVersion": str(int(rv) - 1)}
    stale["spec"] = {**created["spec"], "selector": {"app": "other"}}
    resp = api.put(path + "/web", json=stale)
    assert resp.status_code == 409 and status_of(resp)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(resp)["message"]

    bad_name = service("Not_A_Name")
    resp = api.post(path, json=bad_name)
    assert resp.status_code == 422
    assert status_of(resp)["details"]["causes"][0]["field"] == "metadata.name"

    wrong_ns = service("x", ns="kube-system")
    resp = api.post(path, json=wrong_ns)
    assert resp.status_code == 400

    resp = api.post(SVC.format(ns="no-such-ns"), json=service("x", ns="no-such-ns"))
    assert resp.status_code == 404 and "namespaces" in status_of(resp)["message"]

    after = api.get(path + "/web").json()
    assert after == created, "rejected requests must change nothing"


def test_replace_keeps_status_and_status_subresource_keeps_spec(api):
    path = POD.format(ns="default")
    created = api.post(path, json=pod("p")).json()
    assert created["status"]["phase"] == "Pending"

    # main resource write: spec.containers[0].image changes, status is ignored
    new = json.loads(json.dumps(created))
    new["spec"]["containers"][0]["image"] = "busybox:2"
    new["status"] = {"phase": "Running"}
    updated = api.put(f"{path}/p", json=new).json()
    assert updated["spec"]["containers"][0]["image"] == "busybox:2"
    assert updated["status"]["phase"] == "Pending"
    assert updated["metadata"]["generation"] == 2

    # status write: status changes, spec and generation don't
    st = json.loads(json.dumps(updated))
    st["status"] = {"phase": "Running", "podIP": "10.244.1.7"}
    st["spec"]["containers"][0]["image"] = "ignored"
    resp = api.put(f"{path}/p/status", json=st)
    assert resp.status_code == 200, resp.text
    after = resp.json()
    assert after["status"]["phase"] == "Running"
    assert after["spec"]["containers"][0]["image"] == "busybox:2"
    assert after["metadata"]["generation"] == 2


def test_unchanged_write_is_not_persisted(api):
    path = SVC.format(ns="default")
    created = api.post(path, json=service("same")).json()
    again = api.put(f"{path}/same", json=created).json()
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_patches_merge_json_strategic_and_status(api):
    path = SVC.format(ns="default")
    api.post(path, json=service("web", port=80))
    merge = api.patch(f"{path}/web", content=json.dumps({"metadata": {"labels": {"tier": "fe"}}}),
                      headers={"content-type": "application/merge-patch+json"})
    assert merge.status_code == 200 and merge.json()["metadata"]["labels"] == {"tier": "fe"}
    assert merge.json()["metadata"]["generation"] == 1  # metadata only

    ops = [{"op": "replace", "path": "/spec/selector", "value": {"app": "v2"}}]
    jp = api.patch(f"{path}/web", content=json.dumps(ops),
                   headers={"content-type": "application/json-patch+json"})
    assert jp.json()["spec"]["selector"] == {"app": "v2"}
    assert jp.json()["metadata"]["generation"] == 2

    # what kubectl apply sends when a port changes 80 -> 81
    smp = {"spec": {"$setElementOrder/ports": [{"port": 81}],
                    "ports": [{"name": "http", "port": 81, "protocol": "TCP", "targetPort": 8080},
                              {"$patch": "delete", "port": 80}]}}
    resp = api.patch(f"{path}/web", content=json.dumps(smp),
                     headers={"content-type": "application/strategic-merge-patch+json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"]["ports"] == [{"name": "http", "port": 81, "protocol": "TCP",
                                             "targetPort": 8080}]

    failing = [{"op": "test", "path": "/spec/type", "value": "NodePort"}]
    resp = api.patch(f"{path}/web", content=json.dumps(failing),
                     headers={"content-type": "application/json-patch+json"})
    assert resp.status_code == 422

    resp = api.patch(f"{path}/web", content="{}", headers={"content-type": "text/csv"})
    assert resp.status_code == 415

    api.post(path, json=service("lb", type="LoadBalancer"))
    st = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    resp = api.patch(f"{path}/lb/status", content=json.dumps(st),
                     headers={"content-type": "application/merge-patch+json"})
    assert resp.status_code == 200, resp.text
    assert [i["ip"] for i in resp.json()["status"]["loadBalancer"]["ingress"]] == ["192.0.2.1"]
    # a main-resource patch cannot write status
    resp = api.patch(f"{path}/lb", content=json.dumps({"status": {"loadBalancer": {}}}),
                     headers={"content-type": "application/merge-patch+json"})
    assert [i["ip"] for i in resp.json()["status"]["loadBalancer"]["ingress"]] == ["192.0.2.1"]


def test_server_side_apply_creates_when_absent(api):
    path = SVC.format(ns="default")
    body = json.dumps(service("db", port=5432))
    resp = api.patch(f"{path}/db", params={"fieldManager": "kubectl"}, content=body,
                     headers={"content-type": "application/apply-patch+yaml"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["spec"]["ports"][0]["port"] == 5432
    missing_manager = api.patch(f"{path}/db", content=body,
                                headers={"content-type": "application/apply-patch+yaml"})
    assert missing_manager.status_code == 400


def test_graceful_pod_deletion(api):
    path = POD.format(ns="default")
    api.post(path, json=pod("bound", node="node-1"))
    resp = api.delete(f"{path}/bound")
    assert resp.status_code == 200
    marked = resp.json()
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert api.get(f"{path}/bound").status_code == 200  # still there until its node finalises
    # a second delete with a shorter grace period shortens it
    again = api.delete(f"{path}/bound", params={"gracePeriodSeconds": "5"}).json()
    assert again["metadata"]["deletionGracePeriodSeconds"] == 5
    # the node finalises it
    final = api.delete(f"{path}/bound", params={"gracePeriodSeconds": "0"})
    assert final.status_code == 200
    assert api.get(f"{path}/bound").status_code == 404

    api.post(path, json=pod("unbound"))
    assert api.delete(f"{path}/unbound").status_code == 200
    assert api.get(f"{path}/unbound").status_code == 404

    api.post(path, json=pod("forced", node="node-1"))
    api.request("DELETE", f"{path}/forced", json={"gracePeriodSeconds": 0})
    assert api.get(f"{path}/forced").status_code == 404


def test_finalizers_hold_deletion_until_removed(api):
    path = SVC.format(ns="default")
    body = service("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    api.post(path, json=body)
    marked = api.delete(f"{path}/held").json()
    assert marked["metadata"]["deletionTimestamp"]
    assert api.get(f"{path}/held").status_code == 200
    resp = api.patch(f"{path}/held", content=json.dumps({"metadata": {"finalizers": None}}),
                     headers={"content-type": "application/merge-patch+json"})
    assert resp.status_code == 200
    assert api.get(f"{path}/held").status_code == 404


def test_binding_assigns_a_node_once(api):
    path = POD.format(ns="default")
    api.post(path, json=pod("p"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    assert api.post(f"{path}/p/binding", json=binding).status_code == 201
    assert api.get(f"{path}/p").json()["spec"]["nodeName"] == "node-1"
    again = api.post(f"{path}/p/binding", json=binding)
    assert again.status_code == 409


def test_namespace_deletion_removes_its_objects(api):
    assert api.post(NS, json={"metadata": {"name": "gone"}}).status_code == 201
    api.post(SVC.format(ns="gone"), json=service("a", ns="gone"))
    api.post(POD.format(ns="gone"), json=pod("p", ns="gone"))
    resp = api.delete(f"{NS}/gone")
    assert resp.status_code == 200
    assert api.get(f"{NS}/gone").status_code == 404
    assert api.get(SVC.format(ns="gone") + "/a").status_code == 404
    assert api.get(POD.format(ns="gone") + "/p").status_code == 404

    # a bound pod keeps its namespace Terminating until its node finalises it
    api.post(NS, json={"metadata": {"name": "slow"}})
    api.post(POD.format(ns="slow"), json=pod("p", ns="slow", node="node-1"))
    api.delete(f"{NS}/slow")
    ns = api.get(f"{NS}/slow").json()
    assert ns["status"]["phase"] == "Terminating"
    resp = api.post(SVC.format(ns="slow"), json=service("late", ns="slow"))
    assert resp.status_code == 403 and status_of(resp)["reason"] == "Forbidden"
    api.delete(POD.format(ns="slow") + "/p", params={"gracePeriodSeconds": "0"})
    assert api.get(f"{NS}/slow").status_code == 404


def test_protected_namespaces_cannot_be_deleted(api):
    resp = api.delete(f"{NS}/default")
    assert resp.status_code == 403
    assert api.get(f"{NS}/default").json()["status"]["phase"] == "Active"


def test_unknown_paths_and_verbs(api):
    assert api.get("/api/v1/widgets").status_code == 404
    assert status_of(api.get("/api/v1/widgets"))["reason"] == "NotFound"
    resp = api.post("/api/v1/pods", json=pod("x"))
    assert resp.status_code == 405
    assert api.get("/version").json()["major"] == "1"
    assert api.get("/healthz").text == "ok"
    assert "apiserver_request_total" in api.get("/metrics").text


def test_generated_namespace_gets_its_name_label(api):
    created = api.post(NS, json={"metadata": {"generateName": "gen-"}}).json()
    name = created["metadata"]["name"]
    assert created["metadata"]["labels"]["kubernetes.io/metadata.name"] == name


@pytest.mark.parametrize(("resources", "qos"), [
    ({}, "BestEffort"),
    ({"limits": {"cpu": "500m", "memory": "64Mi"}}, "Guaranteed"),
    ({"requests": {"memory": "32Mi"}, "limits": {"memory": "64Mi"}}, "Burstable"),
])
def test_a_new_pod_gets_the_qos_class_of_its_resources(api, resources, qos):
    body = pod(f"q-{qos.lower()}")
    body["spec"]["containers"][0]["resources"] = resources
    created = api.post(POD.format(ns="default"), json=body).json()
    assert created["status"]["qosClass"] == qos


def test_a_request_over_its_limit_is_refused(api):
    body = pod("greedy")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    resp = api.post(POD.format(ns="default"), json=body)
    assert resp.status_code == 422
    assert status_of(resp)["details"]["causes"][0]["field"] == \
        "spec.containers[0].resources.requests[cpu]"
    assert api.get(POD.format(ns="default") + "/greedy").status_code == 404
