"""ClusterIP / NodePort allocation: requests honoured, never shared, freed, kept across restarts."""

from __future__ import annotations

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import admin_tls
from tests.integration.rest import SVC, service, status_of

PATH = SVC.format(ns="default")


@pytest.fixture
def api(api_url: str):
    with httpx.Client(verify=admin_tls(), base_url=api_url, timeout=10) as client:
        yield client


def test_fifty_concurrent_creates_get_distinct_addresses_and_ports(api_url):
    def create(i: int) -> dict:
        body = service(f"c{i}", type="NodePort")
        resp = httpx.post(api_url + PATH, json=body, timeout=30, verify=admin_tls())
        assert resp.status_code == 201, resp.text
        return resp.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        created = list(pool.map(create, range(50)))
    ips = [s["spec"]["clusterIP"] for s in created]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in created]
    assert len(set(ips)) == 50 and len(set(ports)) == 50
    net = ipaddress.ip_network("10.96.0.0/16")
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    assert "10.96.0.1" not in ips and "10.96.0.10" not in ips
    assert all(30000 <= p <= 32767 for p in ports)
    assert all(s["spec"]["clusterIPs"] == [s["spec"]["clusterIP"]] for s in created)


def test_requested_cluster_ip_and_node_port(api):
    resp = api.post(PATH, json=service("dns", clusterIP="10.96.0.10"))
    assert resp.status_code == 201 and resp.json()["spec"]["clusterIP"] == "10.96.0.10"
    taken = api.post(PATH, json=service("dns2", clusterIP="10.96.0.10"))
    assert taken.status_code == 422
    assert status_of(taken)["details"]["causes"][0]["field"] == "spec.clusterIPs"
    assert "already allocated" in status_of(taken)["message"]
    outside = api.post(PATH, json=service("far", clusterIP="192.168.0.1"))
    assert outside.status_code == 422 and "range" in status_of(outside)["message"]

    body = service("np", type="NodePort")
    body["spec"]["ports"][0]["nodePort"] = 30080
    assert api.post(PATH, json=body).json()["spec"]["ports"][0]["nodePort"] == 30080
    clash = service("np2", type="NodePort")
    clash["spec"]["ports"][0]["nodePort"] = 30080
    assert api.post(PATH, json=clash).status_code == 422
    out = service("np3", type="NodePort")
    out["spec"]["ports"][0]["nodePort"] = 80
    assert api.post(PATH, json=out).status_code == 422
    # a rejected create holds nothing: the address it was given is still free
    assert api.post(PATH, json=service("np4", clusterIP="10.96.5.5")).status_code == 201


def test_headless_and_external_name_get_no_address(api):
    headless = api.post(PATH, json=service("h", clusterIP="None")).json()
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    # validation calls a Service headless when only clusterIPs says so; so does the allocator
    plural = api.post(PATH, json=service("h2", clusterIPs=["None"])).json()
    assert plural["spec"]["clusterIP"] == "None" and plural["spec"]["clusterIPs"] == ["None"]
    ext = {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName",
                                                  "externalName": "example.com"}}
    created = api.post(PATH, json=ext).json()
    assert "clusterIP" not in created["spec"]
    bad = api.post(PATH, json={"metadata": {"name": "hnp"},
                               "spec": {"type": "NodePort", "clusterIP": "None",
                                        "ports": [{"port": 80}]}})
    assert bad.status_code == 422


def test_addresses_are_freed_on_delete_and_kept_on_update(api):
    created = api.post(PATH, json=service("a", clusterIP="10.96.7.7", type="NodePort")).json()
    port = created["spec"]["ports"][0]["nodePort"]
    # an update that omits clusterIP and nodePort keeps them
    replacement = {"metadata": {"name": "a", "resourceVersion":
                                created["metadata"]["resourceVersion"]},
                   "spec": {"type": "NodePort", "selector": {"app": "a"},
                            "ports": [{"port": 80}]}}
    updated = api.put(f"{PATH}/a", json=replacement).json()
    assert updated["spec"]["clusterIP"] == "10.96.7.7"
    assert updated["spec"]["ports"][0]["nodePort"] == port
    # changing the address is refused
    changed = api.patch(f"{PATH}/a", content=json.dumps({"spec": {"clusterIP": "10.96.7.8"}}),
                        headers={"content-type": "application/merge-patch+json"})
    assert changed.status_code == 422
    # switching to ClusterIP frees the node port
    to_cluster_ip = api.patch(f"{PATH}/a", content=json.dumps({"spec": {"type": "ClusterIP"}}),
                              headers={"content-type": "application/merge-patch+json"})
    assert to_cluster_ip.status_code == 200, to_cluster_ip.text
    assert "nodePort" not in to_cluster_ip.json()["spec"]["ports"][0]
    reuse = service("b", type="NodePort")
    reuse["spec"]["ports"][0]["nodePort"] = port
    assert api.post(PATH, json=reuse).status_code == 201
    api.delete(f"{PATH}/a")
    again = api.post(PATH, json=service("c", clusterIP="10.96.7.7"))
    assert again.status_code == 201


def test_restart_keeps_allocations_and_revisions_increase(apiserver):
    with httpx.Client(verify=admin_tls(), base_url=apiserver.url, timeout=10) as api:
        before = [api.post(PATH, json=service(f"r{i}", type="NodePort")).json()
                  for i in range(20)]
        last_rv = int(api.get(PATH).json()["metadata"]["resourceVersion"])
    apiserver.restart()
    with httpx.Client(verify=admin_tls(), base_url=apiserver.url, timeout=10) as api:
        survivors = {s["metadata"]["name"]: s for s in api.get(PATH).json()["items"]}
        for s in before:
            assert survivors[s["metadata"]["name"]]["spec"] == s["spec"]
        after = [api.post(PATH, json=service(f"n{i}", type="NodePort")).json()
                 for i in range(20)]
        old_ips = {s["spec"]["clusterIP"] for s in before}
        old_ports = {s["spec"]["ports"][0]["nodePort"] for s in before}
        assert not old_ips & {s["spec"]["clusterIP"] for s in after}
        assert not old_ports & {s["spec"]["ports"][0]["nodePort"] for s in after}
        assert int(after[0]["metadata"]["resourceVersion"]) > last_rv
        taken = api.post(PATH, json=service("dup", clusterIP=before[0]["spec"]["clusterIP"]))
        assert taken.status_code == 422


def test_headless_stays_headless_when_an_update_omits_cluster_ip(api):
    api.post(PATH, json=service("hl", clusterIP="None"))
    replacement = {"metadata": {"name": "hl"}, "spec": {"selector": {"app": "hl"},
                                                         "ports": [{"port": 80}]}}
    updated = api.put(f"{PATH}/hl", json=replacement).json()
    assert updated["spec"]["clusterIP"] == "None"
    assert updated["spec"]["clusterIPs"] == ["None"]


def test_a_headless_service_turned_node_port_without_cluster_ip_is_refused(api):
    api.post(PATH, json=service("hn", clusterIP="None"))
    replacement = {"metadata": {"name": "hn"},
                   "spec": {"type": "NodePort", "selector": {"app": "hn"},
                            "ports": [{"port": 80}]}}
    resp = api.put(f"{PATH}/hn", json=replacement)
    assert resp.status_code == 422, resp.text
    assert "spec.clusterIP" in {c["field"] for c in resp.json()["details"]["causes"]}
    assert api.get(f"{PATH}/hn").json()["spec"]["type"] == "ClusterIP"
