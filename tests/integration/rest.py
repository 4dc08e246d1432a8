"""Tiny raw-HTTP helpers for API server tests: the wire format is what is under test."""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

SVC = "/api/v1/namespaces/{ns}/services"
POD = "/api/v1/namespaces/{ns}/pods"
NS = "/api/v1/namespaces"
NODE = "/api/v1/nodes"
SLICE = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"


def service(name: str, *, ns: str = "default", port: int = 80, labels: dict | None = None,
            **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"selector": {"app": name}, "ports": [{"port": port}], **spec}}
    return body


def pod(name: str, *, ns: str = "default", node: str | None = None, labels: dict | None = None
        ) -> dict:
    spec: dict = {"containers": [{"name": "main", "image": "busybox",
                                  "command": ["sleep", "3600"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec}


def gauge(client: httpx.Client, name: str) -> float | None:
    """An unlabelled series' value on ``/metrics`` (None: not there)."""
    m = re.search(rf"^{name} (\S+)$", client.get("/metrics").text, re.M)
    return float(m.group(1)) if m else None


def status_of(resp: httpx.Response) -> dict:
    body = resp.json()
    assert body["kind"] == "Status", body
    return body


@contextmanager
def watch(client: httpx.Client, path: str, **params) -> Iterator[Iterator[dict]]:
    """Open a watch stream; yields an iterator of decoded events (one JSON per line)."""
    params = {"watch": "true", **{k: str(v).lower() if isinstance(v, bool) else str(v)
                                  for k, v in params.items()}}
    with client.stream("GET", path, params=params, timeout=httpx.Timeout(30, read=30)) as resp:
        assert resp.status_code == 200, resp.read()

        def events() -> Iterator[dict]:
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)

        yield events()


def stalled_watch(port: int, path: str, resource_version: str, tls: ssl.SSLContext
                  ) -> ssl.SSLSocket:
    """A watch of ``path`` whose client never reads, with a 4 KiB receive buffer, so it
    falls behind as soon as events come; the caller closes it."""
    plain = socket.socket()
    plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    plain.connect(("127.0.0.1", port))
    stalled = tls.wrap_socket(plain, server_hostname="127.0.0.1")
    stalled.sendall(f"GET {path}?watch=1&resourceVersion={resource_version} HTTP/1.1\r\n"
                    "Host: x\r\n\r\n".encode())
    return stalled
