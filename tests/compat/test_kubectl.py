"""The real kubectl (1.37) against mp-apiserver: what users type, what they read back."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from client.config import write_kubeconfig
from tests.compat.conftest import Kubectl, table
from tests.conftest import admin_http, session_pki, wait_until

SVC = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
"""

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: node-1
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
"""

SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True}}
                  for i in range(2, 7)],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
}


def test_get_prints_real_clusters_columns(kubectl: Kubectl, api_url: str):
    kubectl.out("apply", "-f", "-", stdin=SVC)
    kubectl.out("apply", "-f", "-", stdin=POD.format(name="p1"))
    kubectl.out("apply", "-f", "-", stdin=json.dumps(SLICE))
    admin_http.post(api_url + "/api/v1/nodes", json={"metadata": {"name": "node-1"}})

    svc = table(kubectl.out("get", "svc"))
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    web = next(r for r in svc if r[0] == "web")
    assert web[1] == "ClusterIP" and web[2].startswith("10.96.") and web[4] == "80/TCP"

    pods = table(kubectl.out("get", "po", "-o", "wide"))
    assert pods[0][:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert pods[1][:4] == ["p1", "0/1", "Pending", "0"] and pods[1][6] == "node-1"

    slices = table(kubectl.out("get", "endpointslices"))
    assert slices[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert slices[1][:4] == ["web-abcde", "IPv4", "8080",
                             "10.244.1.2,10.244.1.3,10.244.1.4 + 2 more..."]

    assert table(kubectl.out("get", "ns"))[0] == ["NAME", "STATUS", "AGE"]
    assert table(kubectl.out("get", "no"))[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]

    everywhere = table(kubectl.out("get", "svc", "-A"))
    assert everywhere[0][0] == "NAMESPACE" and everywhere[1][:2] == ["default", "kubernetes"]
    labelled = table(kubectl.out("get", "svc", "-l", "app=web", "--show-labels"))
    assert len(labelled) == 2 and labelled[1][0] == "web" and labelled[1][-1] == "app=web"
    assert kubectl.out("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}") == "80"
    as_json = json.loads(kubectl.out("get", "svc", "web", "-o", "json"))
    assert as_json["kind"] == "Service" and as_json["spec"]["selector"] == {"app": "web"}
    assert "kind: Service" in kubectl.out("get", "svc", "web", "-o", "yaml")
    version = json.loads(kubectl.out("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    everything = kubectl.out("get", "all")
    assert "pod/p1" in everything and "service/web" in everything


def test_kubeconfig_from_the_environment(kubectl: Kubectl, api_url: str):
    path = kubectl.home / "kubeconfig"
    pki = session_pki()
    write_kubeconfig(path, server=api_url, ca_pem=Path(pki.ca_file).read_bytes(),
                     cert_pem=Path(pki.cert_file).read_bytes(),
                     key_pem=Path(pki.key_file).read_bytes())
    env = {**kubectl.env(), "KUBECONFIG": str(path)}
    proc = kubectl.run("get", "ns", "default", env=env, server=False)
    assert table(proc.stdout)[1][:2] == ["default", "Active"]


def test_apply_create_update_unchanged_and_server_side(kubectl: Kubectl, api_url: str):
    assert kubectl.out("apply", "-f", "-", stdin=SVC).strip() == "service/web created"
    assert kubectl.out("apply", "-f", "-", stdin=SVC).strip() == "service/web unchanged"
    changed = SVC.replace("port: 80", "port: 81")
    assert kubectl.out("apply", "-f", "-", stdin=changed).strip() == "service/web configured"
    stored = admin_http.get(api_url + "/api/v1/namespaces/default/services/web").json()
    assert stored["spec"]["ports"] == [{"name": "http", "port": 81, "protocol": "TCP",
                                        "targetPort": 8080}]
    last = stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(last)["spec"]["ports"][0]["port"] == 81

    db = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  ports: [{port: 5432}]\n"
    out = kubectl.out("apply", "--server-side", "-f", "-", stdin=db)
    assert out.strip() == "service/db serverside-applied"
    managed = admin_http.get(api_url + "/api/v1/namespaces/default/services/db").json()[
        "metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [("kubectl", "Apply")]
    assert "f:ports" in managed[0]["fieldsV1"]["f:spec"]


def test_create_label_annotate_and_delete_from_file(kubectl: Kubectl, api_url: str, tmp_path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SVC)
    assert kubectl.out("create", "-f", str(manifest)).strip() == "service/web created"
    assert kubectl.out("label", "svc", "web", "tier=fe").strip() == "service/web labeled"
    assert kubectl.out("annotate", "svc", "web", "note=hi").strip() == "service/web annotated"
    meta = admin_http.get(api_url + "/api/v1/namespaces/default/services/web").json()["metadata"]
    assert meta["labels"] == {"app": "web", "tier": "fe"} and meta["annotations"]["note"] == "hi"
    out = kubectl.out("delete", "-f", str(manifest))
    assert 'service "web" deleted' in out
    assert admin_http.get(api_url + "/api/v1/namespaces/default/services/web").status_code == 404


def test_delete_that_has_to_wait_for_the_node(kubectl: Kubectl, api_url: str):
    kubectl.out("apply", "-f", "-", stdin=POD.format(name="slow"))
    path = api_url + "/api/v1/namespaces/default/pods/slow"

    def node_finalises() -> None:  # what the pod's node agent does once it stopped the pod
        wait_until(lambda: admin_http.get(path).json()["metadata"].get("deletionTimestamp"),
                   what="the pod to be marked for deletion")
        admin_http.delete(path, params={"gracePeriodSeconds": "0"})

    agent = threading.Thread(target=node_finalises)
    agent.start()
    out = kubectl.out("delete", "pod", "slow")
    agent.join(timeout=30)
    assert 'pod "slow" deleted' in out
    assert admin_http.get(path).status_code == 404


def test_describe_service_and_pod(kubectl: Kubectl):
    kubectl.out("apply", "-f", "-", stdin=SVC)
    kubectl.out("apply", "-f", "-", stdin=json.dumps(SLICE))
    kubectl.out("apply", "-f", "-", stdin=POD.format(name="p1"))
    svc = kubectl.out("describe", "svc", "web")
    assert "Selector:                 app=web" in svc
    assert "Endpoints:                10.244.1.2:8080,10.244.1.3:8080,10.244.1.4:8080 + 2 more..." \
        in svc
    assert "Events:                   <none>" in svc
    pod = {k.strip(): v.strip() for k, _, v in (
        line.partition(":") for line in kubectl.out("describe", "pod", "p1").splitlines())}
    assert pod["Node"].startswith("node-1") and pod["Status"] == "Pending"
    assert pod["Labels"] == "app=web"


def test_get_watch_prints_a_row_per_change(kubectl: Kubectl, api_url: str):
    proc = subprocess.Popen(kubectl.args("get", "svc", "-w"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=kubectl.env())
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split()[:3] == ["NAME", "TYPE", "CLUSTER-IP"]
        assert proc.stdout.readline().split()[0] == "kubernetes"
        admin_http.post(api_url + "/api/v1/namespaces/default/services",
                   json={"metadata": {"name": "late"}, "spec": {"ports": [{"port": 80}]}})
        row = proc.stdout.readline().split()
        assert row[0] == "late" and row[1] == "ClusterIP" and row[4] == "80/TCP"
        admin_http.patch(api_url + "/api/v1/namespaces/default/services/late",
                    json={"spec": {"ports": [{"port": 81}]}},
                    headers={"content-type": "application/merge-patch+json"})
        assert proc.stdout.readline().split()[4] == "81/TCP"
        admin_http.delete(api_url + "/api/v1/namespaces/default/services/late")
        assert proc.stdout.readline().split()[0] == "late"  # the deletion prints a row too
        assert proc.poll() is None, "kubectl get -w must stay open"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bad_input_is_one_clear_line(kubectl: Kubectl, api_url: str):
    unknown = kubectl.run("get", "widgets", check=False)
    assert unknown.returncode != 0
    assert 'the server doesn\'t have a resource type "widgets"' in unknown.stderr

    # generators whose protobuf body the server does not read: one line saying so
    protobuf = kubectl.run("create", "service", "clusterip", "gen1", "--tcp=80:8080",
                           check=False)
    assert protobuf.returncode != 0
    assert protobuf.stderr.strip() == (
        "error: failed to create ClusterIP service: protobuf request bodies are not "
        "supported by miniplane; send JSON (kubectl apply -f / kubectl create -f do)")
    # and a kind the server does not serve at all
    quota = kubectl.run("create", "quota", "x", "--hard=pods=1", check=False)
    assert quota.returncode != 0
    assert quota.stderr.strip() == (
        "error: failed to create quota: the server could not find the requested resource")

    strict = kubectl.run("apply", "-f", "-", check=False,
                         stdin=SVC.replace("  selector:", "  bogus: 1\n  selector:"))
    assert strict.returncode != 0 and 'unknown field "spec.bogus"' in strict.stderr
    assert admin_http.get(api_url + "/api/v1/namespaces/default/services/web").status_code == 404

    kubectl.out("apply", "-f", "-", stdin=SVC)
    before = admin_http.get(api_url + "/api/v1/namespaces/default/services/web").json()
    bad = kubectl.run("patch", "svc", "web", "--type", "merge", "-p",
                      '{"spec":{"ports":[{"port":70000}]}}', check=False)
    assert bad.returncode != 0 and "Invalid" in bad.stderr and "70000" in bad.stderr
    after = admin_http.get(api_url + "/api/v1/namespaces/default/services/web").json()
    assert after == before


@pytest.mark.parametrize("accept", [
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
])
def test_table_watch_events_carry_one_row_tables(api_url: str, accept: str):
    path = "/api/v1/namespaces/default/services"
    start = admin_http.get(api_url + path).json()["metadata"]["resourceVersion"]
    admin_http.post(api_url + path, json={"metadata": {"name": "t"}, "spec": {"ports": [{"port": 1}]}})
    with admin_http.stream("GET", api_url + path, params={"watch": "1", "resourceVersion": start,
                                                     "timeoutSeconds": "3"},
                      headers={"accept": accept}) as resp:
        event = json.loads(next(resp.iter_lines()))
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert len(event["object"]["rows"]) == 1
    assert event["object"]["rows"][0]["cells"][0] == "t"
