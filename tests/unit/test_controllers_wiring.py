"""Controller wiring without a server: caches fed by hand, API calls recorded.

As client-go's controller tests do, each test delivers watch events to the
informers (``deliver``), runs ``sync`` for a key, and checks which API calls the
controller made. Clocks are plain variables the test moves.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

import pytest

from apimachinery import status as api_status
from apimachinery.kinds import ENDPOINTSLICE, LEASE, NODE, POD, SERVICE, Kind
from client.errors import Conflict, Forbidden, NotFound
from client.informer import Informer
from controllers.endpointslice import STALE_RECHECK, EndpointSliceController
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.ipam import CidrSet
from controllers.metrics import Metrics
from controllers.nodeipam import NodeIpamController
from controllers.nodelifecycle import NodeLifecycleController
from controllers.objects import format_time, parse_time
from controllers.podgc import PodGcController
from controllers.scheduler import Scheduler
from controllers.slices import TRIGGER_TIME_ANNOTATION


class FakeApi:
    """Records calls; answers like the API server (names, resourceVersions)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []  # (verb, resource, name)
        self.bodies: list[Any] = []
        self.fail: dict[str, Exception] = {}  # verb → error to raise once
        self.objects: dict[str, dict] = {}  # for get
        self.listed: dict[str, list[dict]] = {}  # plural → objects, for list
        self._rv = itertools.count(1000)
        self._names = itertools.count(1)

    def _maybe_fail(self, verb: str) -> None:
        if verb in self.fail:
            raise self.fail.pop(verb)

    async def create(self, kind: Kind, obj: dict, namespace: str | None = None) -> dict:
        self._maybe_fail("create")
        out = copy.deepcopy(obj)
        m = out["metadata"]
        m.setdefault("name", f"{m.get('generateName', 'x-')}{next(self._names):05d}")
        m["resourceVersion"] = str(next(self._rv))
        self.calls.append(("create", kind.plural, m["name"]))
        self.bodies.append(out)
        return out

    async def replace(self, kind: Kind, obj: dict, namespace: str | None = None, *,
                      subresource: str = "") -> dict:
        self._maybe_fail("replace")
        out = copy.deepcopy(obj)
        out["metadata"]["resourceVersion"] = str(next(self._rv))
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        self.calls.append(("replace", resource, out["metadata"]["name"]))
        self.bodies.append(out)
        return out

    async def patch(self, kind: Kind, name: str, patch: Any, *, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "") -> dict:
        self._maybe_fail("patch")
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        self.calls.append(("patch", resource, name))
        self.bodies.append(patch)
        return {"metadata": {"name": name}}

    async def delete(self, kind: Kind, name: str, namespace: str | None = None,
                     **options: Any) -> dict:
        self._maybe_fail("delete")
        self.calls.append(("delete", kind.plural, name))
        self.bodies.append(options)
        return {}

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict:
        self.calls.append(("get", kind.plural, name))
        if name not in self.objects:
            raise NotFound(f"{name} not found")
        return copy.deepcopy(self.objects[name])

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   field_selector: str | None = None, **options: Any) -> dict:
        """Only ``metadata.name=`` field selectors, as the controllers use."""
        self.calls.append(("list", kind.plural, field_selector or ""))
        name = (field_selector or "").removeprefix("metadata.name=")
        return {"items": [copy.deepcopy(o) for o in self.listed.get(kind.plural, [])
                          if not name or o["metadata"]["name"] == name]}

    async def bind(self, name: str, node: str, namespace: str | None = None) -> dict:
        self._maybe_fail("bind")
        self.calls.append(("bind", "pods/binding", node))
        return {"kind": "Status", "status": "Success"}


def deliver(informer: Informer, kind: str, obj: dict) -> None:
    """One watch event through the informer: cache first, then handlers."""
    informer._apply({"type": kind, "object": obj})


_rvs = itertools.count(1)


def versioned(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"]["resourceVersion"] = str(next(_rvs))
    return obj


def service(name: str = "web") -> dict:
    return versioned({"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}"},
                      "spec": {"selector": {"app": name},
                               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})


def pod(name: str, *, app: str = "web", ip: str | None = "10.244.0.1", node: str = "n1",
        ready: bool = True, deletion: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "uid": f"u-{name}",
                  "labels": {"app": app}}
    if deletion:
        meta["deletionTimestamp"] = deletion
    status: dict = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    spec: dict = {"containers": [{"name": "c"}]}
    if node:
        spec["nodeName"] = node
    return versioned({"metadata": meta, "spec": spec, "status": status})


def node(name: str, *, ready: str = "True", heartbeat: str = "hb-1", **spec) -> dict:
    return versioned({"metadata": {"name": name, "labels": {}}, "spec": dict(spec),
                      "status": {"conditions": [{"type": "Ready", "status": ready,
                                                 "lastHeartbeatTime": heartbeat}]}})


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=5))


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def make_slices(api: FakeApi, wall: Clock, mono: Clock) -> tuple[EndpointSliceController,
                                                                 SharedInformers]:
    informers = SharedInformers(api)  # type: ignore[arg-type]
    controller = EndpointSliceController(api, informers, Metrics(),  # type: ignore[arg-type]
                                         max_endpoints=100, wall=wall, monotonic=mono)
    return controller, informers


# -- EndpointSlices ------------------------------------------------------------------------


def test_a_second_sync_waits_for_the_cache_instead_of_creating_a_duplicate(api):
    async def main():
        wall, mono = Clock(1714557600.0), Clock()
        controller, informers = make_slices(api, wall, mono)
        deliver(informers.get(SERVICE), "ADDED", service())
        deliver(informers.get(POD), "ADDED", pod("a"))
        assert controller.queue.len() == 1
        assert await controller.sync("default/web") is None
        assert api.calls == [("create", "endpointslices", "web-00001")]
        created = api.bodies[0]
        assert created["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] == \
            format_time(1714557600.0)

        deliver(informers.get(POD), "ADDED", pod("b", ip="10.244.0.2"))  # before the echo
        assert await controller.sync("default/web") == STALE_RECHECK
        assert len(api.calls) == 1  # no second create from a stale cache

        deliver(informers.get(ENDPOINTSLICE), "ADDED", created)  # the echo wakes it
        assert "default/web" in [await controller.queue.get()]
        controller.queue.done("default/web")
        assert await controller.sync("default/web") is None
        assert api.calls[1] == ("replace", "endpointslices", "web-00001")
        assert len(api.bodies[1]["endpoints"]) == 2

    run(main())


def test_echo_of_our_own_write_does_not_queue_the_service(api):
    async def main():
        controller, informers = make_slices(api, Clock(), Clock())
        deliver(informers.get(SERVICE), "ADDED", service())
        await controller.sync("default/web")
        await controller.queue.get()
        controller.queue.done("default/web")
        deliver(informers.get(ENDPOINTSLICE), "ADDED", api.bodies[0])
        assert controller.queue.len() == 0
        someone_else = versioned(api.bodies[0])  # a foreign edit does queue it
        someone_else["endpoints"] = [{"addresses": ["1.2.3.4"]}]
        deliver(informers.get(ENDPOINTSLICE), "MODIFIED", someone_else)
        assert controller.queue.len() == 1

    run(main())


def test_trigger_time_is_the_earliest_unreflected_change(api):
    async def main():
        wall = Clock(1714557600.0)
        controller, informers = make_slices(api, wall, Clock())
        deliver(informers.get(SERVICE), "ADDED", service())
        wall.now += 2
        deliver(informers.get(POD), "ADDED", pod("a"))
        wall.now += 3
        await controller.sync("default/web")
        annotation = api.bodies[0]["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION]
        assert parse_time(annotation) == 1714557600.0

    run(main())


def test_failed_write_keeps_the_trigger_time_for_the_retry(api):
    async def main():
        wall = Clock(1714557600.0)
        controller, informers = make_slices(api, wall, Clock())
        deliver(informers.get(SERVICE), "ADDED", service())
        api.fail["create"] = Conflict("try again")
        with pytest.raises(Conflict):
            await controller.sync("default/web")
        wall.now += 10
        await controller.sync("default/web")
        annotation = api.bodies[0]["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION]
        assert parse_time(annotation) == 1714557600.0

    run(main())


def test_terminating_namespace_is_not_retried(api):
    async def main():
        controller, informers = make_slices(api, Clock(), Clock())
        deliver(informers.get(SERVICE), "ADDED", service())
        message = "namespace default is being terminated"
        api.fail["create"] = Forbidden(message, status=api_status.failure(
            403, "Forbidden", message, details={"causes": [
                {"type": api_status.NAMESPACE_TERMINATING, "message": message}]}))
        assert await controller.sync("default/web") is None

    run(main())


def test_other_refusals_of_a_slice_are_retried(api):
    """A 403 for any other reason (RBAC, admission) is an error the queue retries."""
    async def main():
        controller, informers = make_slices(api, Clock(), Clock())
        deliver(informers.get(SERVICE), "ADDED", service())
        api.fail["create"] = Forbidden("endpointslices is forbidden")
        with pytest.raises(Forbidden):
            await controller.sync("default/web")

    run(main())


def test_deleted_service_takes_its_slices(api):
    async def main():
        controller, informers = make_slices(api, Clock(), Clock())
        svc = service()
        deliver(informers.get(SERVICE), "ADDED", svc)
        deliver(informers.get(POD), "ADDED", pod("a"))
        await controller.sync("default/web")
        deliver(informers.get(ENDPOINTSLICE), "ADDED", api.bodies[0])
        deliver(informers.get(SERVICE), "DELETED", svc)
        await controller.sync("default/web")
        assert api.calls[-1] == ("delete", "endpointslices", "web-00001")
        deliver(informers.get(ENDPOINTSLICE), "DELETED", api.bodies[0])
        assert await controller.sync("default/web") is None
        assert len(api.calls) == 2
        assert len(controller.tracker) == 0

    run(main())


def test_pod_events_queue_only_the_services_that_select_them(api):
    controller, informers = make_slices(api, Clock(), Clock())
    for name in ("web", "db", "cache"):
        deliver(informers.get(SERVICE), "ADDED", service(name))
    for _ in range(3):
        run(controller.queue.get())
    for key in ("default/web", "default/db", "default/cache"):
        controller.queue.done(key)
    old = pod("p", app="web")
    deliver(informers.get(POD), "ADDED", old)
    new = versioned(old)
    new["metadata"]["labels"] = {"app": "db"}
    deliver(informers.get(POD), "MODIFIED", new)
    assert sorted(run(_drain(controller.queue))) == ["default/db", "default/web"]


async def _drain(queue) -> list[str]:
    keys = []
    while queue.len():
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys


# -- scheduler -----------------------------------------------------------------------------


def make_scheduler(api: FakeApi) -> tuple[Scheduler, SharedInformers]:
    informers = SharedInformers(api)  # type: ignore[arg-type]
    recorder = Recorder(api, "test", wall=Clock())  # type: ignore[arg-type]
    return Scheduler(api, informers, Metrics(), recorder=recorder,  # type: ignore[arg-type]
                     wall=Clock()), informers


def test_assumed_pods_spread_before_any_binding_is_seen(api):
    async def main():
        scheduler, informers = make_scheduler(api)
        for name in ("n1", "n2", "n3"):
            deliver(informers.get(NODE), "ADDED", node(name))
        for i in range(6):
            deliver(informers.get(POD), "ADDED", pod(f"p{i}", node=""))
        for i in range(6):
            await scheduler.sync(f"default/p{i}")
        targets = [call[2] for call in api.calls if call[0] == "bind"]
        assert sorted(targets) == ["n1", "n1", "n2", "n2", "n3", "n3"]
        assert await scheduler.sync("default/p0") is None  # assumed: not bound twice
        assert len([c for c in api.calls if c[0] == "bind"]) == 6
        await scheduler.recorder.close()

    run(main())


def test_failed_binding_takes_the_assumption_back(api):
    async def main():
        scheduler, informers = make_scheduler(api)
        deliver(informers.get(NODE), "ADDED", node("n1"))
        deliver(informers.get(POD), "ADDED", pod("p", node=""))
        api.fail["bind"] = ConnectionError("down")
        with pytest.raises(ConnectionError):
            await scheduler.sync("default/p")
        assert scheduler.load("n1") == 0
        await scheduler.sync("default/p")
        assert scheduler.load("n1") == 1
        await scheduler.recorder.close()

    run(main())


def test_unschedulable_pod_is_reported_once_and_retried_on_node_changes(api):
    async def main():
        scheduler, informers = make_scheduler(api)
        down = node("n1", ready="False")
        deliver(informers.get(NODE), "ADDED", down)
        deliver(informers.get(POD), "ADDED", pod("p", node=""))
        await scheduler.sync("default/p")
        assert api.calls[0] == ("patch", "pods/status", "p")
        message = api.bodies[0]["status"]["conditions"][0]["message"]
        assert message == "0/1 nodes are available: 1 node(s) were not ready."
        await _drain(scheduler.queue)
        heartbeat_only = versioned(down)  # no room made: no retry
        heartbeat_only["status"]["conditions"][0]["lastHeartbeatTime"] = "hb-2"
        deliver(informers.get(NODE), "MODIFIED", heartbeat_only)
        assert scheduler.queue.len() == 0
        deliver(informers.get(NODE), "MODIFIED", node("n1"))
        assert await _drain(scheduler.queue) == ["default/p"]
        await scheduler.sync("default/p")
        assert api.calls[-1][0] == "bind"
        await scheduler.recorder.close()

    run(main())


# -- node IPAM -----------------------------------------------------------------------------


def test_ipam_rebuilds_before_allocating_and_releases_on_delete(api):
    async def main():
        informers = SharedInformers(api)  # type: ignore[arg-type]
        ipam = NodeIpamController(api, informers, Metrics(),  # type: ignore[arg-type]
                                  cidrs=CidrSet("10.244.0.0/16"))
        deliver(informers.get(NODE), "ADDED", node("old", podCIDR="10.244.0.0/24"))
        new = node("new")
        deliver(informers.get(NODE), "ADDED", new)
        await ipam.prepare()
        await ipam.sync("new")
        assert api.bodies[-1] == {"spec": {"podCIDR": "10.244.1.0/24",
                                           "podCIDRs": ["10.244.1.0/24"]}}
        deliver(informers.get(NODE), "DELETED", new)
        await ipam.sync("new")
        assert "10.244.1.0/24" not in ipam.cidrs and "10.244.0.0/24" in ipam.cidrs

    run(main())


# -- node lifecycle and pod GC -------------------------------------------------------------


def make_lifecycle(api: FakeApi, mono: Clock) -> tuple[NodeLifecycleController,
                                                       SharedInformers]:
    informers = SharedInformers(api)  # type: ignore[arg-type]
    recorder = Recorder(api, "test", wall=Clock())  # type: ignore[arg-type]
    controller = NodeLifecycleController(
        api, informers, Metrics(), grace_period=40.0,  # type: ignore[arg-type]
        recorder=recorder, monotonic=mono, wall=Clock(1714557600.0))
    return controller, informers


def test_healthy_node_is_rechecked_at_its_deadline_and_heartbeats_push_it_back(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        deliver(informers.get(NODE), "ADDED", node("n1"))
        assert await controller.sync("n1") == 40.0
        mono.now = 130.0
        deliver(informers.get(NODE), "MODIFIED", node("n1", heartbeat="hb-2"))
        assert await controller.sync("n1") == 40.0
        assert api.calls == []

    run(main())


def test_silent_node_is_read_fresh_then_marked_unknown_and_its_ready_pods_not_ready(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        silent = node("n1")
        deliver(informers.get(NODE), "ADDED", silent)
        deliver(informers.get(POD), "ADDED", pod("ready-pod"))
        deliver(informers.get(POD), "ADDED", pod("unready-pod", ready=False))
        deliver(informers.get(POD), "ADDED", pod("elsewhere", node="n2"))
        api.objects["n1"] = silent
        mono.now = 141.0
        await controller.sync("n1")
        assert api.calls[:3] == [("get", "nodes", "n1"),
                                 ("list", "leases", "metadata.name=n1"),
                                 ("replace", "nodes/status", "n1")]
        written = api.bodies[0]
        assert written["status"]["conditions"][0]["status"] == "Unknown"
        assert written["status"]["conditions"][0]["lastHeartbeatTime"] == "hb-1"
        assert api.calls[3:] == [("patch", "pods/status", "ready-pod")]
        patch = api.bodies[1]
        assert patch["metadata"]["resourceVersion"]  # a newer agent write wins
        assert patch["status"]["conditions"][0]["status"] == "False"
        await controller.recorder.close()

    run(main())


def test_heartbeat_seen_only_in_the_fresh_read_cancels_the_alarm(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        deliver(informers.get(NODE), "ADDED", node("n1"))
        api.objects["n1"] = node("n1", heartbeat="hb-9")  # the watch lags behind
        mono.now = 141.0
        assert await controller.sync("n1") == 40.0
        assert api.calls == [("get", "nodes", "n1"), ("list", "leases", "metadata.name=n1")]

    run(main())


def lease(name: str, renew: str) -> dict:
    return versioned({"metadata": {"name": name, "namespace": "kube-node-lease"},
                      "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                               "renewTime": renew}})


def test_lease_renewals_keep_a_node_whose_status_stands_still_alive(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        leases = informers.get(LEASE, "kube-node-lease")
        deliver(informers.get(NODE), "ADDED", node("n1"))
        deliver(leases, "ADDED", lease("n1", "2024-05-01T10:00:00.000000Z"))
        deliver(leases, "ADDED", lease("other", "2024-05-01T10:00:00.000000Z"))  # no node
        assert await controller.sync("n1") == 40.0
        for t in (110.0, 120.0, 130.0):
            mono.now = t
            deliver(leases, "MODIFIED", lease("n1", f"2024-05-01T10:00:{t - 100:02.0f}"
                                                    ".000000Z"))
        mono.now = 169.0  # 69 s after the last status heartbeat, 39 s after a renewal
        assert await controller.sync("n1") == 1.0
        assert api.calls == []
        deliver(leases, "DELETED", lease("n1", "2024-05-01T10:00:30.000000Z"))
        mono.now = 171.0  # a deleted Lease is no renewal: silent now
        api.objects["n1"] = informers.get(NODE).store.get("n1")
        await controller.sync("n1")
        assert api.calls[:3] == [("get", "nodes", "n1"),
                                 ("list", "leases", "metadata.name=n1"),
                                 ("replace", "nodes/status", "n1")]
        await controller.recorder.close()

    run(main())


def test_lease_renewal_seen_only_in_the_fresh_read_cancels_the_alarm(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        deliver(informers.get(NODE), "ADDED", node("n1"))
        deliver(informers.get(LEASE, "kube-node-lease"), "ADDED",
                lease("n1", "2024-05-01T10:00:00.000000Z"))
        api.objects["n1"] = node("n1")
        api.listed["leases"] = [lease("n1", "2024-05-01T10:00:40.000000Z")]  # watch lags
        mono.now = 141.0
        assert await controller.sync("n1") == 40.0
        assert api.calls == [("get", "nodes", "n1"), ("list", "leases", "metadata.name=n1")]

    run(main())


def test_pod_gc_force_deletes_only_when_the_node_cannot(api):
    async def main():
        wall = Clock(parse_time("2024-05-01T10:00:30Z"))
        informers = SharedInformers(api)  # type: ignore[arg-type]
        gc = PodGcController(api, informers, Metrics(), wall=wall)  # type: ignore[arg-type]
        deliver(informers.get(NODE), "ADDED", node("alive"))
        deliver(informers.get(NODE), "ADDED", node("dead", ready="Unknown"))
        deletion = "2024-05-01T10:00:40Z"
        deliver(informers.get(POD), "ADDED", pod("a", node="alive", deletion=deletion))
        deliver(informers.get(POD), "ADDED", pod("b", node="dead", deletion=deletion))
        deliver(informers.get(POD), "ADDED", pod("c", node="gone", deletion=deletion))
        assert await gc.sync("default/a") is None
        assert await gc.sync("default/b") == 10.0
        wall.now += 10
        await gc.sync("default/b")
        await gc.sync("default/c")
        assert api.calls == [("delete", "pods", "b"), ("delete", "pods", "c")]
        assert api.bodies[0] == {"grace_period_seconds": 0, "preconditions": {"uid": "u-b"}}

    run(main())


def test_pod_restored_by_a_returning_agent_is_left_alone_even_if_the_cache_lags(api):
    async def main():
        mono = Clock(100.0)
        controller, informers = make_lifecycle(api, mono)
        deliver(informers.get(NODE), "ADDED", node("n1", ready="Unknown"))
        deliver(informers.get(POD), "ADDED", pod("p"))  # the agent restored it...
        api.objects["n1"] = node("n1", heartbeat="hb-2")  # ...after posting its node
        assert controller.queue.len() == 1
        await controller.sync("n1")
        assert api.calls == [("get", "nodes", "n1")]  # looked, did not mark
        api.objects["n1"] = node("n1", ready="Unknown")  # still down: marked
        await controller.sync("n1")
        assert api.calls[-1] == ("patch", "pods/status", "p")

    run(main())
