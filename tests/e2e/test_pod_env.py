"""End to end: a container's environment and probes as kubelet gives them, on a real cluster.

One 2-node ``mpctl cluster up`` for the module; each test in its own namespace.
A pod reads a ConfigMap key, a Secret key and ``envFrom`` as variables, its own
name, IP and node through ``fieldRef``, with ``$(VAR)`` expanded in its args; a
missing ConfigMap keeps it Waiting (``CreateContainerConfigError``) until the
ConfigMap exists; a Service created before a pod shows in its variables unless
``enableServiceLinks: false``; a ``startupProbe`` holds readiness back until it
passes, then an ``httpGet`` readiness probe that needs a header makes it Ready.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.kinds import CONFIGMAP, NAMESPACE, POD, SECRET, SERVICE, SERVICEACCOUNT
from client.config import load_config
from client.errors import ApiError, Forbidden, NotFound
from client.http import Client
from tests.conftest import wait_until
from tests.e2e.test_local_cluster import LocalCluster, running_cluster
from tests.netns import have_root_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

PY = "/usr/bin/python3"
# prints the named variables, one "NAME=value" line each ("NAME unset" if absent)
SHOW = ("import os, sys\nfor n in sys.argv[1:]:\n"
        "    print(f'{n}={os.environ[n]}' if n in os.environ else f'{n} unset')")
# answers 200 to a GET carrying "X-Probe: yes", 401 to any other
PICKY_SERVER = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.headers.get("X-Probe") == "yes" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("podenv"), prefix="v") as c:
        yield c


@pytest.fixture
def ns(cluster: LocalCluster) -> Iterator[str]:
    """A namespace of its own (with its default ServiceAccount), deleted afterwards."""
    name = f"env-{secrets.token_hex(3)}"
    cluster.client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name}})
    wait_until(lambda: _exists(cluster, SERVICEACCOUNT, "default", name), timeout=20,
               what=f"the default ServiceAccount of {name}")
    yield name
    with contextlib.suppress(ApiError):
        for pod in cluster.client.list(POD, name)["items"]:
            with contextlib.suppress(NotFound):
                cluster.client.delete(POD, pod["metadata"]["name"], name,
                                      grace_period_seconds=0)
        cluster.client.delete(NAMESPACE, name)


def _exists(cluster: LocalCluster, kind: Any, name: str, namespace: str) -> bool:
    try:
        cluster.client.get(kind, name, namespace)
    except NotFound:
        return False
    return True


def node_client(cluster: LocalCluster, node: str) -> Client:
    """As the node agent: the kubeconfig ``up`` made for it."""
    return Client(load_config(kubeconfig=cluster.state_dir / "pki" / node / "kubeconfig"))


def pod(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x", **container}], **spec}}


def finished(cluster: LocalCluster, ns: str, name: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        p = cluster.client.get(POD, name, ns)
        return p if p["status"].get("phase") in ("Succeeded", "Failed") else None
    return wait_until(done, timeout=timeout, what=f"pod {name} to finish")


def printed(cluster: LocalCluster, ns: str, body: dict[str, Any]) -> list[str]:
    """Run the pod to its end; what it printed."""
    name = body["metadata"]["name"]
    cluster.client.create(POD, {**body, "spec": {"restartPolicy": "Never", **body["spec"]}},
                          ns)
    done = finished(cluster, ns, name)
    out = cluster.mpctl("logs", "-n", ns, name, check=True).stdout
    assert done["status"]["phase"] == "Succeeded", out
    return out.splitlines()


def waiting(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any] | None:
    statuses = cluster.client.get(POD, name, ns)["status"].get("containerStatuses") or []
    return statuses[0]["state"].get("waiting") if statuses else None


def test_config_map_secret_and_pod_fields_as_variables(cluster: LocalCluster, ns: str) -> None:
    cluster.client.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "app"},
                                      "data": {"mode": "fast", "level": "3"}}, ns)
    cluster.client.create(SECRET, {"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "creds"},
                                   "data": {"password": base64.b64encode(b"s3cret").decode()}},
                          ns)
    field = {"POD_NAME": "metadata.name", "POD_IP": "status.podIP",
             "NODE": "spec.nodeName", "POD_NS": "metadata.namespace"}
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "mode"}}},
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                               "key": "password"}}},
           *({"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in field.items())]
    lines = printed(cluster, ns, pod("reader", {
        "command": [PY, "-c", SHOW], "env": env,
        "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "APP_"}],
        "args": ["MODE", "PASSWORD", "APP_level", "POD_NAME", "POD_NS", "NODE", "POD_IP",
                 "$(MODE)"]}))
    got = cluster.client.get(POD, "reader", ns)
    assert lines == ["MODE=fast", "PASSWORD=s3cret", "APP_level=3", "POD_NAME=reader",
                     f"POD_NS={ns}", f"NODE={got['spec']['nodeName']}",
                     f"POD_IP={got['status']['podIP']}", "fast unset"]
    # the node read them as itself; the other node, whose pods reference neither, may not
    node = got["spec"]["nodeName"]
    other = "node-2" if node == "node-1" else "node-1"
    with node_client(cluster, node) as mine:
        assert mine.get(SECRET, "creds", ns)["metadata"]["name"] == "creds"
    with node_client(cluster, other) as theirs:
        for kind, name in ((CONFIGMAP, "app"), (SECRET, "creds")):
            with pytest.raises(Forbidden) as refused:
                theirs.get(kind, name, ns)
            assert f"no relationship found between node '{other}'" in refused.value.message


def test_a_missing_config_map_keeps_the_container_waiting_until_it_exists(
        cluster: LocalCluster, ns: str) -> None:
    cluster.client.create(POD, pod("early", {
        "command": [PY, "-c", SHOW, "LATE"],
        "env": [{"name": "LATE", "valueFrom": {"configMapKeyRef": {"name": "later",
                                                                   "key": "k"}}}]},
        restartPolicy="Never"), ns)
    state = wait_until(lambda: (w := waiting(cluster, ns, "early")) and
                       w.get("reason") == "CreateContainerConfigError" and w,
                       timeout=30, what="CreateContainerConfigError")
    assert state["message"] == 'configmap "later" not found'
    cluster.client.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "later"}, "data": {"k": "v"}}, ns)
    assert finished(cluster, ns, "early")["status"]["phase"] == "Succeeded"
    assert cluster.mpctl("logs", "-n", ns, "early", check=True).stdout == "LATE=v\n"


def test_service_variables_for_a_service_created_before_the_pod(
        cluster: LocalCluster, ns: str) -> None:
    svc = cluster.client.create(SERVICE, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-db"},
        "spec": {"selector": {"app": "db"},
                 "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}}, ns)
    ip = svc["spec"]["clusterIP"]
    names = ["MY_DB_SERVICE_HOST", "MY_DB_SERVICE_PORT", "MY_DB_SERVICE_PORT_SQL",
             "MY_DB_PORT", "MY_DB_PORT_5432_TCP_ADDR", "KUBERNETES_SERVICE_HOST"]
    linked = printed(cluster, ns, pod("linked", {"command": [PY, "-c", SHOW, *names]}))
    assert linked == [f"MY_DB_SERVICE_HOST={ip}", "MY_DB_SERVICE_PORT=5432",
                      "MY_DB_SERVICE_PORT_SQL=5432", f"MY_DB_PORT=tcp://{ip}:5432",
                      f"MY_DB_PORT_5432_TCP_ADDR={ip}", "KUBERNETES_SERVICE_HOST=10.96.0.1"]
    unlinked = printed(cluster, ns, pod("unlinked", {"command": [PY, "-c", SHOW, *names]},
                                        enableServiceLinks=False))
    assert unlinked == [f"{n} unset" for n in names[:-1]] + [
        "KUBERNETES_SERVICE_HOST=10.96.0.1"]


def test_startup_probe_gates_readiness_then_a_header_makes_it_ready(
        cluster: LocalCluster, ns: str, tmp_path: Path) -> None:
    gate = tmp_path / "started"
    cluster.client.create(POD, pod("gated", {
        "command": [PY, "-c", PICKY_SERVER],
        "ports": [{"name": "http", "containerPort": 8080}],
        "startupProbe": {"exec": {"command": ["test", "-e", str(gate)]},
                         "periodSeconds": 1, "failureThreshold": 600},
        "readinessProbe": {"httpGet": {"port": "http", "path": "/ready",
                                       "httpHeaders": [{"name": "X-Probe", "value": "yes"}]},
                           "periodSeconds": 1}}), ns)

    def status() -> dict[str, Any]:
        got = cluster.client.get(POD, "gated", ns)["status"]
        return (got.get("containerStatuses") or [{}])[0]

    wait_until(lambda: "running" in (status().get("state") or {}), timeout=30,
               what="the container to run")
    # the server answers the readiness probe already; only the startup probe holds it
    assert (status()["started"], status()["ready"]) == (False, False)
    gate.touch()
    wait_until(lambda: status().get("started") and status().get("ready"), timeout=30,
               what="started, then ready")
    assert status()["restartCount"] == 0


def test_a_startup_probe_that_never_passes_restarts_the_container(
        cluster: LocalCluster, ns: str) -> None:
    cluster.client.create(POD, pod("never", {
        "command": ["sleep", "600"],
        "startupProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                         "failureThreshold": 2}}), ns)

    def restarted() -> dict[str, Any] | None:
        statuses = cluster.client.get(POD, "never", ns)["status"].get("containerStatuses")
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    status = wait_until(restarted, timeout=30, what="a restart after failureThreshold")
    assert status["ready"] is False and status["started"] is False
    assert status["lastState"]["terminated"]["exitCode"] == 137
