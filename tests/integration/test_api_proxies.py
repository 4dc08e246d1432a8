"""pods/proxy, services/proxy and pods/portforward on a real mp-apiserver, up to the agent.

No node agent runs here (tests/e2e/test_portforward.py has the whole path with
kubectl): these are the answers the API server gives before it hands a request
on, as ``Status`` objects with Kubernetes' codes and words, and what discovery
lists. The server has the kubelet client flags (any certificate of the test CA
will do) and dials agents on 127.0.0.1, where the "agent" port is closed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import ApiServer, session_pki

NS = "proxies"


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("proxies")
    pki = session_pki()
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log", extra_args=[
        "--kubelet-client-certificate", pki.cert_file, "--kubelet-client-key", pki.key_file,
        "--kubelet-certificate-authority", pki.ca_file, "--kubelet-dial-host", "127.0.0.1"])
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture(scope="module")
def admin(server: ApiServer, closed_port: int) -> Iterator[httpx.Client]:
    with server.http(timeout=30) as client:
        assert client.post("/api/v1/namespaces",
                           json={"metadata": {"name": NS}}).status_code == 201
        node = {"metadata": {"name": "n1"},
                "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": closed_port}}}}
        assert client.post("/api/v1/nodes", json=node).status_code == 201
        assert client.post("/api/v1/nodes", json={"metadata": {"name": "n-silent"}}
                           ).status_code == 201
        for name, node_name in (("web-1", "n1"), ("unscheduled", None), ("on-silent",
                                                                         "n-silent")):
            spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x",
                                                    "ports": [{"containerPort": 8080}]}]}
            if node_name:
                spec["nodeName"] = node_name
            made = client.post(f"/api/v1/namespaces/{NS}/pods",
                               json={"metadata": {"name": name}, "spec": spec})
            assert made.status_code == 201, made.text
        for name in ("web", "empty"):
            service = {"metadata": {"name": name}, "spec": {
                "selector": {"app": name}, "ports": [{"name": "http", "port": 80,
                                                      "targetPort": 8080}]}}
            assert client.post(f"/api/v1/namespaces/{NS}/services",
                               json=service).status_code == 201
        eps = {"metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": True},
                              "nodeName": "n1",
                              "targetRef": {"kind": "Pod", "namespace": NS, "name": "web-1"}}]}
        made = client.post(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices", json=eps)
        assert made.status_code == 201, made.text
        yield client


@pytest.mark.parametrize(("path", "code", "reason", "message"), [
    ("services/ftp:web:21/proxy/", 400, "BadRequest", "invalid service proxy id 'ftp:web:21'"),
    ("pods/nope/proxy/", 404, "NotFound", 'pods "nope" not found'),
    ("services/nope:80/proxy/", 404, "NotFound", 'services "nope" not found'),
    ("pods/unscheduled/proxy/", 400, "BadRequest", "pod unscheduled does not have a host"),
    ("pods/web-1:admin/proxy/", 400, "BadRequest", "pod web-1 has no port 'admin'"),
    ("services/web:81/proxy/", 503, "ServiceUnavailable",
     'no service port "81" found for service "web"'),
    ("services/empty:http/proxy/", 503, "ServiceUnavailable",
     'no endpoints available for service "empty:http"'),
    ("pods/on-silent/proxy/", 503, "ServiceUnavailable", "publishes no agent API port"),
    ("services/web:80/proxy/x", 503, "ServiceUnavailable", "cannot reach the node agent of n1"),
    ("pods/web-1:8080/proxy/", 503, "ServiceUnavailable", "cannot reach the node agent of n1"),
])
def test_proxy_errors_are_statuses(admin: httpx.Client, path: str, code: int, reason: str,
                                   message: str) -> None:
    got = admin.get(f"/api/v1/namespaces/{NS}/{path}")
    assert got.status_code == code, got.text
    status = got.json()
    assert status["kind"] == "Status" and status["reason"] == reason
    assert message in status["message"]


def test_discovery_lists_the_subresources(admin: httpx.Client) -> None:
    resources = {r["name"]: r for r in admin.get("/api/v1").json()["resources"]}
    assert resources["pods/portforward"]["verbs"] == ["create", "get"]
    assert resources["pods/portforward"]["kind"] == "PodPortForwardOptions"
    for name, kind in (("pods/proxy", "PodProxyOptions"),
                       ("services/proxy", "ServiceProxyOptions")):
        assert resources[name]["kind"] == kind
        assert resources[name]["verbs"] == ["create", "delete", "get", "patch", "update"]


def test_port_forward_over_plain_spdy_is_refused_with_the_way_that_works(
        admin: httpx.Client) -> None:
    # kubectl's fallback after a refused WebSocket: a POST asking for SPDY/3.1
    got = admin.post(f"/api/v1/namespaces/{NS}/pods/web-1/portforward",
                     headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                              "X-Stream-Protocol-Version": "portforward.k8s.io"})
    assert got.status_code == 400
    assert got.json()["message"] == ("portforward is served over WebSocket only "
                                     "(SPDY/3.1+portforward.k8s.io); SPDY is not supported")


def websocket_refusal(server: ApiServer, path: str, subprotocols: list[str]) -> tuple[int, str]:
    async def attempt() -> tuple[int, str]:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"wss://127.0.0.1:{server.port}{path}", ssl=server.tls(),
                               subprotocols=subprotocols or None):  # type: ignore[arg-type]
                pass
        response = caught.value.response
        return response.status_code, (response.body or b"").decode()

    return asyncio.run(attempt())


def test_a_port_forward_websocket_without_the_tunnel_protocol_is_refused(
        server: ApiServer, admin: httpx.Client) -> None:
    code, text = websocket_refusal(server, f"/api/v1/namespaces/{NS}/pods/web-1/portforward",
                                   ["v4.channel.k8s.io"])
    assert code == 400
    assert "SPDY/3.1+portforward.k8s.io" in text


def test_a_port_forward_websocket_to_an_unreachable_agent_is_a_503(
        server: ApiServer, admin: httpx.Client) -> None:
    code, text = websocket_refusal(server, f"/api/v1/namespaces/{NS}/pods/web-1/portforward",
                                   [])
    assert code == 503, text
    assert "cannot reach the node agent" in text


def raw_handshake(server: ApiServer, path: str, protocols: str) -> tuple[int, str]:
    """A WebSocket handshake sent by hand (a client library refuses non-token
    subprotocols); the status code and body of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw, \
            server.tls().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n").encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_a_subprotocol_that_is_no_token_is_not_offered_to_the_agent(
        server: ApiServer, admin: httpx.Client) -> None:
    # "/" is not an RFC 7230 token character: kubectl's port-forward protocol has one,
    # and any client may send others; the relay offers the agent only what it can send
    code, text = raw_handshake(
        server, f"/api/v1/namespaces/{NS}/pods/web-1/exec?command=true&stdout=true",
        "bad/proto, v5.channel.k8s.io")
    assert code == 503, text
    assert "cannot reach the node agent" in text
