"""A pod's ConfigMap volumes against a real mp-apiserver: written once every object
has been listed, rewritten when one changes (one watch per object, shared by the
pods that use it), and an immutable object read once and no longer watched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from apimachinery.kinds import CONFIGMAP
from client.http import AsyncClient, Client
from nodeagent.pods import events
from nodeagent.pods.volumemanager import ObjectWatches, PodVolumes
from tests.conftest import admin_config

DEADLINE = 10.0  # seconds for the agent side to see an API change


def config_map(name: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"value": value}, **extra}


def volume_pod(uid: str) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid},
            "spec": {"containers": [], "volumes": [
                {"name": "live", "configMap": {"name": "live"}},
                {"name": "frozen", "configMap": {"name": "frozen"}}]}}


async def until(predicate: Any, what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not predicate():
            await asyncio.sleep(0.05)
    assert predicate(), what


def test_volumes_follow_their_objects_and_an_immutable_one_is_read_once(
        api_url: str, tmp_path: Path) -> None:
    admin = Client(admin_config(api_url))
    admin.create(CONFIGMAP, config_map("live", "one"), "default")
    admin.create(CONFIGMAP, config_map("frozen", "one", immutable=True), "default")

    async def main() -> None:
        async with AsyncClient(admin_config(api_url), timeout=5) as client:
            watches = ObjectWatches(client)
            pods = [PodVolumes(volume_pod(uid), tmp_path / uid, watches=watches, access=None,
                               pod_events=events.PodEvents(None)) for uid in ("a", "b")]
            tasks = [asyncio.create_task(p.run()) for p in pods]
            try:
                for p in pods:
                    await asyncio.wait_for(p.ready.wait(), DEADLINE)
                    assert p.problem is None
                live = [tmp_path / uid / "live" / "value" for uid in ("a", "b")]
                frozen = tmp_path / "a" / "frozen" / "value"
                assert [f.read_text() for f in live] == ["one", "one"]
                assert frozen.read_text() == "one"
                await until(lambda: watches.watched() == {("configmaps", "default", "live")},
                            "one watch per object, none for the immutable one")
                await asyncio.to_thread(admin.delete, CONFIGMAP, "frozen", "default")
                await asyncio.to_thread(admin.create, CONFIGMAP,
                                        config_map("frozen", "two", immutable=True), "default")
                await asyncio.to_thread(admin.patch, CONFIGMAP, "live",
                                        {"data": {"value": "two"}}, namespace="default")
                await until(lambda: all(f.read_text() == "two" for f in live),
                            "both pods' volumes to be updated")
                assert frozen.read_text() == "one"
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            assert watches.watched() == set()  # the last pod gone, its watches stop

    try:
        asyncio.run(main())
    finally:
        admin.close()
