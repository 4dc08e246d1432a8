"""The shared event recorder against a real mp-apiserver: one Event per repeated
occurrence with a growing ``count``, recreated when deleted, and the field selectors
``kubectl describe`` and ``kubectl get events --field-selector`` send."""

from __future__ import annotations

import asyncio
from typing import Any

from apimachinery.kinds import EVENT, POD
from client.http import AsyncClient, Client
from controllers.events import Recorder
from tests.conftest import ApiServer, admin_config, wait_until

NS = "default"


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pod(client: Client, name: str) -> dict[str, Any]:
    return client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": NS},
                               "spec": {"containers": [{"name": "c", "image": "x"}]}}, NS)


def events_of(client: Client, name: str, **params: str) -> list[dict[str, Any]]:
    return client.list(EVENT, NS, field_selector=f"involvedObject.name={name}",
                       **params)["items"]


async def record_all(url: str, calls: list[tuple[float, dict[str, Any]]], *,
                     component: str = "mp-controllers", host: str = "",
                     between: Any = None) -> None:
    """Record each (time, arguments) with one recorder, waiting for every write."""
    clock = Clock()
    async with AsyncClient(admin_config(url)) as client:
        recorder = Recorder(client, component, wall=clock, host=host)
        try:
            for i, (at, kwargs) in enumerate(calls):
                clock.now = at
                recorder.record(**kwargs)
                await recorder.flush(10.0)
                if between is not None:
                    await asyncio.to_thread(between, i)
        finally:
            await recorder.close()


def test_a_repeated_controller_event_is_one_event_with_a_count(apiserver: ApiServer) -> None:
    client = Client(admin_config(apiserver.url))
    pod = make_pod(client, "web-1")
    args = {"obj": pod, "kind": "Pod", "type_": "Warning", "reason": "FailedScheduling",
            "message": "0/0 nodes are available."}
    t0 = 1_760_000_000.0
    asyncio.run(record_all(apiserver.url, [(t0, args), (t0 + 5, args), (t0 + 9, args)]))
    [ev] = events_of(client, "web-1")
    assert ev["count"] == 3
    assert ev["firstTimestamp"] == "2025-10-09T08:53:20Z"
    assert ev["lastTimestamp"] == "2025-10-09T08:53:29Z"
    assert ev["metadata"]["name"] == f"web-1.{int(t0 * 1e9):x}"
    assert ev["source"] == {"component": "mp-controllers"}
    assert ev["involvedObject"]["uid"] == pod["metadata"]["uid"]
    client.close()


def test_a_deleted_event_is_written_again(apiserver: ApiServer) -> None:
    """client-go falls back to a create when the patched Event is gone (expired)."""
    client = Client(admin_config(apiserver.url))
    pod = make_pod(client, "web-2")
    args = {"obj": pod, "kind": "Pod", "type_": "Normal", "reason": "Killing",
            "message": "Stopping container c"}

    def delete_first(i: int) -> None:
        if i == 0:
            [ev] = events_of(client, "web-2")
            client.delete(EVENT, ev["metadata"]["name"], NS)

    t0 = 1_760_000_000.0
    asyncio.run(record_all(apiserver.url, [(t0, args), (t0 + 1, args)], between=delete_first))
    [ev] = events_of(client, "web-2")
    assert ev["count"] == 2 and ev["reason"] == "Killing"
    client.close()


def test_field_selectors_kubectl_sends(apiserver: ApiServer) -> None:
    client = Client(admin_config(apiserver.url))
    pod = make_pod(client, "web-3")
    other = make_pod(client, "web-4")
    t0 = 1_760_000_000.0

    def call(obj: dict[str, Any], reason: str, message: str, at: float
             ) -> tuple[float, dict[str, Any]]:
        return at, {"obj": obj, "kind": "Pod", "type_": "Warning", "reason": reason,
                    "message": message}

    asyncio.run(record_all(apiserver.url, [
        call(pod, "Unhealthy", "Readiness probe failed: no", t0),
        call(pod, "BackOff", "Back-off restarting failed container", t0 + 1),
        call(other, "Unhealthy", "Readiness probe failed: no", t0 + 2),
    ], component="kubelet", host="node-a"))
    m = pod["metadata"]
    describe = (f"involvedObject.name=web-3,involvedObject.namespace={NS},"
                f"involvedObject.kind=Pod,involvedObject.uid={m['uid']}")
    assert sorted(e["reason"] for e in client.list(EVENT, NS, field_selector=describe)
                  ["items"]) == ["BackOff", "Unhealthy"]
    unhealthy = client.list(EVENT, NS, field_selector="reason=Unhealthy")["items"]
    assert sorted(e["involvedObject"]["name"] for e in unhealthy) == ["web-3", "web-4"]
    # ``source`` is source.component, as in Kubernetes
    assert len(client.list(EVENT, NS, field_selector="source=kubelet")["items"]) == 3
    assert client.list(EVENT, NS, field_selector="source=other")["items"] == []
    wait_until(lambda: len(client.list(EVENT, NS, field_selector="type=Warning,"
                                       "involvedObject.name!=web-3")["items"]) == 1)
    client.close()


def test_table_rows_carry_what_include_object_asks_for(apiserver: ApiServer) -> None:
    """kubectl get --sort-by asks for Object (it sorts on the rows' objects)."""
    client = Client(admin_config(apiserver.url))
    make_pod(client, "web-5")
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    with apiserver.http(headers=accept) as http:
        def rows(**params: str) -> list[dict[str, Any]]:
            resp = http.get("/api/v1/namespaces/default/pods", params=params)
            assert resp.status_code == 200, resp.text
            return resp.json()["rows"]

        assert rows()[0]["object"]["kind"] == "PartialObjectMetadata"
        assert rows(includeObject="Metadata")[0]["object"]["kind"] == "PartialObjectMetadata"
        full = rows(includeObject="Object")[0]["object"]
        assert full["kind"] == "Pod" and full["spec"]["containers"][0]["name"] == "c"
        assert "object" not in rows(includeObject="None")[0]
        resp = http.get("/api/v1/namespaces/default/pods", params={"includeObject": "All"})
        assert resp.status_code == 400
        assert resp.json()["message"] == ('invalid includeObject "All": must be one of None, '
                                          "Metadata, Object")
    client.close()
