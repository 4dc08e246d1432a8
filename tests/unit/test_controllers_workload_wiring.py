"""ReplicaSet and Deployment wiring without a server (``test_controllers_wiring``'s
recorded fake API and hand-fed caches): expectations, slow start, first writes."""

from __future__ import annotations

import pytest

from apimachinery.kinds import DEPLOYMENT, POD, REPLICASET
from client.errors import ServerError
from controllers.deployment import DeploymentController
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.replicaset import ReplicaSetController
from controllers.revisions import HASH_LABEL, REVISION
from tests.unit.test_controllers_wiring import Clock, FakeApi, deliver, run, versioned


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def replica_set(replicas: int) -> dict:
    return versioned({"metadata": {"name": "web", "namespace": "default", "uid": "rs-uid",
                                   "generation": 1},
                      "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "c"}]}}}})


def make_rs(api: FakeApi) -> tuple[ReplicaSetController, SharedInformers, Clock]:
    informers = SharedInformers(api)  # type: ignore[arg-type]
    mono = Clock()
    controller = ReplicaSetController(
        api, informers, Metrics(),  # type: ignore[arg-type]
        recorder=Recorder(api, "test", wall=Clock()),  # type: ignore[arg-type]
        wall=Clock(), monotonic=mono)
    return controller, informers, mono


def pod_calls(api: FakeApi, verb: str) -> list[str]:
    return [name for v, resource, name in api.calls if (v, resource) == (verb, "pods")]


def test_created_pods_are_expected_so_a_lagging_cache_creates_no_more(api):
    async def main():
        controller, informers, _ = make_rs(api)
        deliver(informers.get(REPLICASET), "ADDED", replica_set(3))
        await controller.sync("default/web")
        created = pod_calls(api, "create")
        assert len(created) == 3  # batches of 1 then 2
        bodies = [b for b in api.bodies if b.get("kind") == "Pod"]
        assert bodies[0]["metadata"]["generateName"] == "web-"
        assert bodies[0]["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"

        await controller.sync("default/web")  # the cache shows none of them yet
        assert len(pod_calls(api, "create")) == 3

        for body in bodies[:2]:
            deliver(informers.get(POD), "ADDED", versioned(body))
        await controller.sync("default/web")  # one still outstanding: wait
        assert len(pod_calls(api, "create")) == 3
        deliver(informers.get(POD), "ADDED", versioned(bodies[2]))
        await controller.sync("default/web")
        assert len(pod_calls(api, "create")) == 3  # 3 pods: nothing to do

    run(main())


def test_a_failed_create_stops_the_batch_and_is_not_expected(api):
    async def main():
        controller, informers, _ = make_rs(api)
        deliver(informers.get(REPLICASET), "ADDED", replica_set(5))
        api.fail["create"] = ServerError("the pods are refused")
        try:
            await controller.sync("default/web")
        except ServerError:
            pass
        else:
            raise AssertionError("the failure is raised for a rate-limited retry")
        assert pod_calls(api, "create") == []  # slow start: one try, not five
        status = [b for b in api.bodies if isinstance(b, dict) and b.get("status")]
        assert status[-1]["status"]["conditions"][0]["reason"] == "FailedCreate"
        await controller.sync("default/web")  # nothing outstanding: tries again
        assert len(pod_calls(api, "create")) == 5

    run(main())


def test_deletions_are_expected_until_the_pods_go(api):
    async def main():
        controller, informers, _ = make_rs(api)
        deliver(informers.get(REPLICASET), "ADDED", replica_set(1))
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
               "controller": True}
        for name in ("a", "b", "c"):
            deliver(informers.get(POD), "ADDED", versioned({
                "metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                             "labels": {"app": "web"}, "ownerReferences": [ref]},
                "spec": {}, "status": {"phase": "Pending"}}))
        await controller.sync("default/web")
        deleted = pod_calls(api, "delete")
        assert len(deleted) == 2
        await controller.sync("default/web")  # not gone from the cache yet
        assert len(pod_calls(api, "delete")) == 2
        for name in deleted:
            deliver(informers.get(POD), "DELETED", informers.get(POD).store.get(
                f"default/{name}") or {})
        await controller.sync("default/web")
        assert len(pod_calls(api, "delete")) == 2

    run(main())


def test_a_new_deployment_creates_its_first_replicaset(api):
    async def main():
        informers = SharedInformers(api)  # type: ignore[arg-type]
        controller = DeploymentController(
            api, informers, Metrics(),  # type: ignore[arg-type]
            recorder=Recorder(api, "test", wall=Clock()),  # type: ignore[arg-type]
            wall=Clock())
        d = versioned({"metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                                    "generation": 1},
                       "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [{"name": "c"}]}}}})
        deliver(informers.get(DEPLOYMENT), "ADDED", d)
        await controller.sync("default/web")
        [rs] = [b for b in api.bodies if isinstance(b, dict) and b.get("kind") == "ReplicaSet"]
        pod_hash = rs["metadata"]["labels"][HASH_LABEL]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["spec"]["replicas"] == 4  # nothing old: all at once (4 ≤ 4 + 25% surge)
        assert rs["metadata"]["annotations"][REVISION] == "1"
        verbs = [(v, r) for v, r, _ in api.calls if r != "events"]
        assert verbs == [("create", "replicasets"), ("patch", "deployments"),
                         ("replace", "deployments/status"), ("replace", "deployments/status")]

    run(main())


def test_a_selector_that_misses_its_own_template_creates_nothing(api):
    async def main():
        controller, informers, _ = make_rs(api)
        broken = replica_set(2)
        broken["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        deliver(informers.get(REPLICASET), "ADDED", broken)
        await controller.sync("default/web")
        assert pod_calls(api, "create") == []  # its pods would never count: no end

    run(main())
