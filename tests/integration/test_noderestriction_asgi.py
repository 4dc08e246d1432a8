"""NodeRestriction through the real app and store, as a node agent would be refused.

Until authentication is in, nothing on the wire says "this is node-1", so these
tests run the real ASGI app (real store in a temporary SQLite file, real write
path) behind a two-line wrapper that puts the caller's ``UserInfo`` in the scope,
where authentication will put it. Once client certificates authenticate nodes,
the same requests belong over HTTPS with node-1's certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.types import Receive, Scope, Send

from apiserver.app import Config, ResourceFastPath, create_app
from apiserver.auth.user import USER_KEY, UserInfo

ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
NODE1 = UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))
PODS = "/api/v1/namespaces/default/pods"


class AsUser:
    """The app with a chosen caller in the scope (the header names which one)."""

    def __init__(self, app: ResourceFastPath) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            who = NODE1 if headers.get(b"x-test-user") == b"node-1" else ADMIN
            scope = {**scope, USER_KEY: who}
        await self.app(scope, receive, send)


@asynccontextmanager
async def server(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    app = create_app(Config(storage_url=f"sqlite:///{tmp_path / 'state.db'}"))
    async with app.app.router.lifespan_context(app.app):
        transport = httpx.ASGITransport(app=AsUser(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://apiserver") as admin, \
                httpx.AsyncClient(transport=transport, base_url="http://apiserver",
                                  headers={"x-test-user": "node-1"}) as node1:
            yield admin, node1


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def bound_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


async def setup(admin: httpx.AsyncClient) -> None:
    for name in ("node-1", "node-2"):
        assert (await admin.post("/api/v1/nodes", json=node(name))).status_code == 201
    for pod_name, node_name in (("mine", "node-1"), ("theirs", "node-2")):
        assert (await admin.post(PODS, json=bound_pod(pod_name))).status_code == 201
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod_name},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        resp = await admin.post(f"{PODS}/{pod_name}/binding", json=binding)
        assert resp.status_code == 201, resp.text


MERGE = {"content-type": "application/merge-patch+json"}


def test_node_writes_only_its_own_node_and_the_status_of_its_own_pods(tmp_path):
    async def run() -> None:
        async with server(tmp_path) as (admin, node1):
            await setup(admin)
            ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}

            resp = await node1.patch("/api/v1/nodes/node-2/status", json=ready, headers=MERGE)
            assert resp.status_code == 403, resp.text
            assert resp.json()["message"] == ('nodes "node-2" is forbidden: node "node-1" is '
                                              'not allowed to modify node "node-2"')
            assert (await node1.patch("/api/v1/nodes/node-1/status", json=ready,
                                      headers=MERGE)).status_code == 200

            taint = {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
            resp = await node1.patch("/api/v1/nodes/node-1", json=taint, headers=MERGE)
            assert resp.status_code == 403
            assert resp.json()["message"] == ('nodes "node-1" is forbidden: node "node-1" is '
                                              "not allowed to modify taints")

            running = {"status": {"phase": "Running"}}
            resp = await node1.patch(f"{PODS}/theirs/status", json=running, headers=MERGE)
            assert resp.status_code == 403, resp.text
            assert resp.json()["message"] == (
                'pods "theirs" is forbidden: node "node-1" can only update pod status for '
                "pods with spec.nodeName set to itself")
            resp = await node1.patch(f"{PODS}/mine/status", json=running, headers=MERGE)
            assert resp.status_code == 200, resp.text

            resp = await node1.request("DELETE", f"{PODS}/theirs",
                                       json={"gracePeriodSeconds": 0})
            assert resp.status_code == 403
            assert resp.json()["message"] == ('pods "theirs" is forbidden: node "node-1" can '
                                              "only delete pods with spec.nodeName set to itself")

            resp = await node1.post(PODS, json=bound_pod("new"))
            assert resp.status_code == 403
            assert "can only create mirror pods" in resp.json()["message"]

            # nothing the refused requests asked for happened
            theirs = (await admin.get(f"{PODS}/theirs")).json()
            assert theirs["status"]["phase"] == "Pending"
            assert "conditions" not in (await admin.get("/api/v1/nodes/node-2")).json().get(
                "status", {})
            assert (await admin.get(f"{PODS}/new")).status_code == 404
            assert "taints" not in (await admin.get("/api/v1/nodes/node-1")).json().get(
                "spec", {})

            resp = await node1.request("DELETE", f"{PODS}/mine", json={"gracePeriodSeconds": 0})
            assert resp.status_code == 200, resp.text

    asyncio.run(run())


def test_other_users_are_not_restricted(tmp_path):
    async def run() -> None:
        async with server(tmp_path) as (admin, _node1):
            await setup(admin)
            resp = await admin.patch("/api/v1/nodes/node-2", json={"spec": {"taints": [
                {"key": "k", "effect": "NoSchedule"}]}}, headers=MERGE)
            assert resp.status_code == 200, resp.text

    asyncio.run(run())
