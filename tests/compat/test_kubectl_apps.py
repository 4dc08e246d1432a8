"""The real kubectl with Deployments, ReplicaSets and Endpoints on mp-apiserver: apply,
get (kubectl's columns), scale, rollout pause/resume/restart, patch, describe.

No controllers run here: these are the API's part (what the server stores and
answers); rollouts themselves are the controllers' tests.
"""

from __future__ import annotations

import json

from tests.compat.conftest import Kubectl, table

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
      - name: log
        image: busybox
        command: [sleep, "3600"]
"""

REPLICASET = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "api-7d9f8", "labels": {"app": "api"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
             "template": {"metadata": {"labels": {"app": "api"}},
                          "spec": {"containers": [{"name": "api", "image": "api:v1"}]}}},
}

ENDPOINTS = {
    "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
    "subsets": [{"addresses": [{"ip": f"10.244.1.{i}"} for i in range(2, 7)],
                 "ports": [{"name": "http", "port": 8080}]}],
}


def get_json(kubectl: Kubectl, *args: str) -> dict:
    return json.loads(kubectl.out("get", *args, "-o", "json"))


def test_apply_get_and_describe(kubectl: Kubectl) -> None:
    assert kubectl.out("apply", "-f", "-", stdin=DEPLOYMENT).strip() == \
        "deployment.apps/web created"
    kubectl.out("apply", "-f", "-", stdin=json.dumps(REPLICASET))
    kubectl.out("apply", "-f", "-", stdin=json.dumps(ENDPOINTS))

    rows = table(kubectl.out("get", "deploy,rs"))
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["deployment.apps/web", "0/3", "0", "0"]
    assert rows[3] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rows[4][:4] == ["replicaset.apps/api-7d9f8", "2", "0", "0"]
    wide = table(kubectl.out("get", "deploy", "web", "-o", "wide"))
    assert wide[0][5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1][5:] == ["web,log", "nginx:1.27,busybox", "app=web"]
    ep = table(kubectl.out("get", "ep"))
    assert ep[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert ep[1][:2] == ["web", "10.244.1.2:8080,10.244.1.3:8080,10.244.1.4:8080 + 2 more..."]

    described = kubectl.out("describe", "deploy", "web")
    assert "Replicas:               3 desired" in described
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in described
    assert "nginx:1.27" in described
    assert "Pods Status:" in kubectl.out("describe", "rs", "api-7d9f8")
    assert "10.244.1.2,10.244.1.3" in kubectl.out("describe", "ep", "web")

    # apply again with a changed image: the containers merge by name, nothing else moves
    kubectl.out("apply", "-f", "-", stdin=DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"))
    d = get_json(kubectl, "deploy", "web")
    assert [c["image"] for c in d["spec"]["template"]["spec"]["containers"]] == \
        ["nginx:1.28", "busybox"]
    assert d["metadata"]["generation"] == 2


def test_scale_and_rollout_verbs(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", "-", stdin=DEPLOYMENT)
    assert kubectl.out("scale", "deploy/web", "--replicas=5").strip() == \
        "deployment.apps/web scaled"
    assert get_json(kubectl, "deploy", "web")["spec"]["replicas"] == 5
    kubectl.out("scale", "deploy/web", "--replicas=2", "--current-replicas=5")
    assert get_json(kubectl, "deploy", "web")["spec"]["replicas"] == 2
    wrong = kubectl.run("scale", "deploy/web", "--replicas=1", "--current-replicas=5",
                        check=False)
    assert wrong.returncode != 0
    assert get_json(kubectl, "deploy", "web")["spec"]["replicas"] == 2
    refused = kubectl.run("scale", "deploy/web", "--replicas=-1", check=False)
    assert refused.returncode != 0 and get_json(kubectl, "deploy", "web")["spec"]["replicas"] == 2

    kubectl.out("apply", "-f", "-", stdin=json.dumps(REPLICASET))
    kubectl.out("scale", "rs/api-7d9f8", "--replicas=0")
    assert get_json(kubectl, "rs", "api-7d9f8")["spec"]["replicas"] == 0

    assert "deployment.apps/web paused" in kubectl.out("rollout", "pause", "deploy/web")
    assert get_json(kubectl, "deploy", "web")["spec"]["paused"] is True
    assert "deployment.apps/web resumed" in kubectl.out("rollout", "resume", "deploy/web")
    assert not get_json(kubectl, "deploy", "web")["spec"].get("paused")
    assert "deployment.apps/web restarted" in kubectl.out("rollout", "restart", "deploy/web")
    annotations = get_json(kubectl, "deploy", "web")["spec"]["template"]["metadata"][
        "annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations

    # kubectl edit's write is a patch; a bad one is refused with the field named
    bad = kubectl.run("patch", "deploy", "web", "--type=merge", "-p",
                      '{"spec":{"strategy":{"type":"Recreate"}}}', check=False)
    assert bad.returncode != 0 and "spec.strategy.rollingUpdate" in bad.stderr
    kubectl.out("patch", "deploy", "web", "--type=json", "-p",
                '[{"op":"replace","path":"/spec/strategy","value":{"type":"Recreate"}}]')
    assert get_json(kubectl, "deploy", "web")["spec"]["strategy"] == {"type": "Recreate"}

    # what kubectl's scale client reads: the /scale subresource is an autoscaling/v1 Scale
    listed = json.loads(kubectl.out("get", "--raw", "/apis/apps/v1"))["resources"]
    scale = next(r for r in listed if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert ["replicasets", "rs"] in [r[:2] for r in table(kubectl.out("api-resources"))]


def test_create_deployment_imperatively(kubectl: Kubectl) -> None:
    """``kubectl create deployment`` posts protobuf (``apiserver/protobuf.py`` reads it)."""
    out = kubectl.out("create", "deployment", "hello", "--image=nginx:1.27", "--replicas=3",
                      "--port=8080", "--", "sleep", "3600")
    assert out.strip() == "deployment.apps/hello created"
    d = get_json(kubectl, "deploy", "hello")
    assert d["spec"]["replicas"] == 3 and d["spec"]["selector"] == {
        "matchLabels": {"app": "hello"}}
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    [container] = d["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["command"], container["ports"]) == (
        "nginx:1.27", ["sleep", "3600"], [{"containerPort": 8080, "protocol": "TCP"}])
    taken = kubectl.run("create", "deployment", "hello", "--image=nginx", check=False)
    assert taken.returncode != 0 and "already exists" in taken.stderr

