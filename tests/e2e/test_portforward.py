"""End to end: ``kubectl port-forward`` and the proxy subresources on a real cluster.

One 2-node cluster from ``mpctl cluster up`` for the module, with the demo
(``examples/``: Service ``web`` over a Deployment's three pods, each answering
"<name> <local address>"), driven by the real kubectl at /usr/bin/kubectl
(v1.32, as a user has it). What is checked is what a user sees: a local port on
the host's 127.0.0.1 that answers as the pod does, through kubectl's WebSocket
tunnel, the API server, the node agent and a socket inside the pod's network
namespace; ``kubectl get --raw .../proxy/`` answering with the page; and a
user bound to ``view`` refused both.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from componentbase.ports import free_port
from tests.conftest import BIN, USER_KUBECTL, wait_until
from tests.e2e.test_local_cluster import REPLICAS, LocalCluster, running_cluster
from tests.netns import have_root_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

SYSTEM_KUBECTL = Path("/usr/bin/kubectl")
KUBECTL = USER_KUBECTL
VIEWER, EDITOR, GETTER = "pf-viewer", "pf-editor", "pf-getter"


def binding(user: str, role: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


# May read pods and open pods/portforward with GET, but not "create" it.
GET_ONLY = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": GETTER},
            "rules": [{"apiGroups": [""], "resources": ["pods", "pods/portforward"],
                       "verbs": ["get", "list"]}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), "p") as c:
        c.apply_demo()
        path = c.state_dir / "users.yaml"
        path.write_text(yaml.safe_dump_all([binding(VIEWER, "view"), binding(EDITOR, "edit"),
                                            GET_ONLY, binding(GETTER, GETTER)]))
        kubectl(c, "apply", "-f", str(path), check=True)
        yield c


@pytest.fixture
def web(cluster: LocalCluster) -> list[str]:
    """The demo Deployment's Ready pods, by name (generated names, sorted)."""
    return sorted(cluster.wait_replicas("app=web", REPLICAS))


def kubectl(cluster: LocalCluster, *args: str, check: bool = False, timeout: float = 60,
            ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.state_dir / "kubeconfig"),
                             *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "HOME": str(cluster.state_dir)})
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


class Forward:
    """A running ``kubectl port-forward``; its output is collected as it comes."""

    def __init__(self, cluster: LocalCluster, *args: str, kubectl: Path = KUBECTL) -> None:
        self.proc = subprocess.Popen(
            [str(kubectl), "--kubeconfig", str(cluster.state_dir / "kubeconfig"),
             "port-forward", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "HOME": str(cluster.state_dir)})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(
            self.proc.stdout or ()), daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_listening(self, port: int) -> None:
        wait_until(lambda: f"Forwarding from 127.0.0.1:{port}" in self.output
                   or self.proc.poll() is not None, timeout=30,
                   what=f"kubectl to listen on {port}")
        assert self.proc.poll() is None, f"kubectl port-forward exited:\n{self.output}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)


@contextlib.contextmanager
def forwarding(cluster: LocalCluster, *args: str, kubectl: Path = KUBECTL
               ) -> Iterator[Forward]:
    forward = Forward(cluster, *args, kubectl=kubectl)
    try:
        yield forward
    finally:
        forward.stop()  # by its pid, also when the test failed


def http_get(port: int, path: str = "/") -> str:
    """One HTTP/1.1 GET on its own connection to the host's 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> str:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def body(answer: str) -> str:
    head, _, rest = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), answer
    return rest


# the kubectl the issue names, and the newer one the compatibility suite drives
KUBECTLS = [k for k in dict.fromkeys((KUBECTL, BIN / "kubectl")) if k.exists()]


@pytest.mark.parametrize("which", KUBECTLS,
                         ids=lambda k: "system" if k == SYSTEM_KUBECTL else "venv")
def test_port_forward_to_a_pod_answers_on_the_hosts_loopback(
        cluster: LocalCluster, web: list[str], which: Path) -> None:
    port = free_port()
    with forwarding(cluster, f"pod/{web[0]}", f"{port}:8080", kubectl=which) as forward:
        forward.wait_listening(port)
        # the pod sees the connection on its own loopback: it was made inside its namespace
        assert body(http_get(port)) == f"{web[0]} 127.0.0.1 v1\n"
        assert body(http_get(port, "/again")) == f"{web[0]} 127.0.0.1 v1\n"
        assert forward.proc.poll() is None
        assert f"Handling connection for {port}" in forward.output


def test_port_forward_to_a_service_with_two_connections_at_once(
        cluster: LocalCluster, web: list[str]) -> None:
    port = free_port()
    with forwarding(cluster, "svc/web", f"{port}:80") as forward:
        forward.wait_listening(port)
        # kubectl picked one pod of the Service and its named targetPort (http: 8080)
        assert "-> 8080" in forward.output
        with socket.create_connection(("127.0.0.1", port), timeout=10) as one, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as two:
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            two.sendall(request)  # both open at once, answered out of order
            one.sendall(request)
            answers = [body(read_to_end(two)), body(read_to_end(one))]
        names = {a.split()[0] for a in answers}
        assert len(names) == 1 and names <= set(web), answers  # one pod serves the forward
        assert all(a.split()[1] == "127.0.0.1" for a in answers)


def test_port_forward_to_a_closed_port_reports_the_pods_refusal(
        cluster: LocalCluster, web: list[str]) -> None:
    port = free_port()
    with forwarding(cluster, f"pod/{web[1]}", f"{port}:9999") as forward:
        forward.wait_listening(port)
        with contextlib.suppress(OSError):
            http_get(port)
        # as with a kubelet: the error arrives on the error stream and kubectl gives up
        wait_until(lambda: forward.proc.poll() is not None, timeout=30,
                   what="kubectl to end the forward")
        assert forward.proc.returncode != 0
        assert f"error forwarding port 9999 to pod {web[1]}" in forward.output
        assert "connect: connection refused" in forward.output


def test_services_and_pods_proxy_return_the_page(
        cluster: LocalCluster, web: list[str]) -> None:
    page = kubectl(cluster, "get", "--raw", "/api/v1/namespaces/default/services/web:80/proxy/",
                   check=True).stdout
    name, address, _version = page.split()
    pods = cluster.ready_pods("app=web")
    assert name in web and pods[name] == address  # it reached the pod at its IP
    named = kubectl(cluster, "get", "--raw",
                    "/api/v1/namespaces/default/services/http:web:http/proxy/some/path",
                    check=True).stdout
    assert named.split()[0] in web
    direct = kubectl(cluster, "get", "--raw",
                     f"/api/v1/namespaces/default/pods/{web[2]}:8080/proxy/", check=True).stdout
    assert direct.split() == [web[2], pods[web[2]], "v1"]
    # no such service port: kube-apiserver's 503
    missing = kubectl(cluster, "get", "--raw",
                      "/api/v1/namespaces/default/services/web:81/proxy/")
    assert missing.returncode != 0
    assert 'no service port "81" found for service "web"' in missing.stderr


def test_port_forward_and_proxy_need_the_edit_role(
        cluster: LocalCluster, web: list[str]) -> None:
    """``create`` on pods/portforward (the WebSocket opens with GET, and ``get``
    alone is not enough, as Kubernetes 1.34+ checks), ``get`` on the proxies:
    the bootstrap ``edit`` role has them, ``view`` has neither."""
    port = free_port()
    for user in (VIEWER, GETTER):
        refused = kubectl(cluster, "--as", user, "port-forward", f"pod/{web[0]}", f"{port}:8080",
                          timeout=30)
        assert refused.returncode != 0
        # kubectl falls back to SPDY (a POST) after the refused WebSocket: "create" again
        assert f'User "{user}" cannot create resource "pods/portforward"' in refused.stderr, \
            refused.stderr
    paths = {"services/proxy": "/api/v1/namespaces/default/services/web:80/proxy/",
             "pods/proxy": f"/api/v1/namespaces/default/pods/{web[0]}:8080/proxy/"}
    for resource, path in paths.items():
        denied = kubectl(cluster, "--as", VIEWER, "get", "--raw", path)
        assert denied.returncode != 0
        assert f'User "{VIEWER}" cannot get resource "{resource}"' in denied.stderr, denied.stderr
    # the viewer may read the pod itself: the refusal is about the subresources
    kubectl(cluster, "--as", VIEWER, "get", "pod", web[0], check=True)
    # and an editor may do all of it
    for path in paths.values():
        assert kubectl(cluster, "--as", EDITOR, "get", "--raw", path,
                       check=True).stdout.split()[0] in web
    forward = Forward(cluster, "--as", EDITOR, f"pod/{web[0]}", f"{port}:8080")
    try:
        forward.wait_listening(port)
        assert body(http_get(port)) == f"{web[0]} 127.0.0.1 v1\n"
    finally:
        forward.stop()
