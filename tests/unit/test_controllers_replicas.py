"""ReplicaSet decisions: active pods, deletion order, slow start, pod bodies, status;
claims (``controllers.owners``) and expectations."""

from __future__ import annotations

import pytest

from apimachinery.labels import selector_from_map
from controllers.expectations import Expectations
from controllers.objects import format_time
from controllers.owners import Claim, adopt_patch, claim, owner_reference, release_patch
from controllers.replicas import (
    is_active,
    pod_from_template,
    pods_to_delete,
    replica_set_status,
    seconds_until_available,
    slow_start_batches,
    status_changed,
)

NOW = 1_000_000.0


def pod(name: str, *, node: str = "", phase: str = "Running", ready: bool | None = None,
        ready_since: float = NOW - 100, restarts: int = 0, created: float = NOW - 1000,
        labels: dict | None = None, owner: dict | None = None, deleting: bool = False,
        cost: int | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                  "resourceVersion": "7", "labels": labels or {"app": "web"},
                  "creationTimestamp": format_time(created)}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    status: dict = {"phase": phase, "containerStatuses": [{"name": "c",
                                                           "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": format_time(ready_since)}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def rs(name: str = "web", *, replicas: int = 3, min_ready: int = 0, deleting: bool = False,
       generation: int = 2, status: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                  "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    return {"metadata": meta,
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"},
                                               "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": status or {}}


@pytest.mark.parametrize(("p", "active"), [
    (pod("a"), True),
    (pod("a", phase="Pending"), True),
    (pod("a", phase="Succeeded"), False),
    (pod("a", phase="Failed"), False),
    (pod("a", deleting=True), False),
])
def test_active_pods(p, active):
    assert is_active(p) is active


# Each case: pods in the order Kubernetes deletes them first (ActivePodsWithRanks).
DELETION_ORDER = {
    "unscheduled before scheduled": [pod("u", phase="Pending"),
                                     pod("s", node="n1", phase="Pending")],
    "pending before unknown before running": [pod("p", node="n1", phase="Pending"),
                                              pod("u", node="n1", phase="Unknown"),
                                              pod("r", node="n1")],
    "not ready before ready": [pod("nr", node="n1", ready=False),
                               pod("r", node="n1", ready=True)],
    "lower deletion cost first": [pod("cheap", node="n1", ready=True, cost=-5),
                                  pod("dear", node="n1", ready=True, cost=10)],
    "ready for less time first": [pod("recent", node="n1", ready=True, ready_since=NOW - 5),
                                  pod("old", node="n1", ready=True, ready_since=NOW - 500)],
    "more restarts first": [pod("crashy", node="n1", ready=True, restarts=4),
                            pod("calm", node="n1", ready=True, restarts=0)],
    "newer first": [pod("new", node="n1", ready=True, created=NOW - 10),
                    pod("old", node="n1", ready=True, created=NOW - 900)],
}


@pytest.mark.parametrize("case", sorted(DELETION_ORDER))
def test_surplus_pods_are_deleted_in_kubernetes_order(case):
    ordered = DELETION_ORDER[case]
    for count in range(1, len(ordered)):
        assert pods_to_delete(list(reversed(ordered)), count) == ordered[:count], case


def test_pods_doubled_up_on_a_node_go_before_lone_ones():
    a, b = pod("a", node="n1", ready=True), pod("b", node="n2", ready=True)
    sibling = pod("sib", node="n2", ready=True)
    assert pods_to_delete([a, b], 1, related=[a, b, sibling]) == [b]


def test_slow_start_batches():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert sum(slow_start_batches(500)) == 500


def test_pod_from_template():
    owner = rs()
    ref = owner_reference(owner, kind="ReplicaSet", api_version="apps/v1")
    body = pod_from_template(owner, ref)
    assert body["metadata"] == {
        "generateName": "web-", "namespace": "default",
        "labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                             "uid": "uid-web", "controller": True,
                             "blockOwnerDeletion": True}]}
    assert body["spec"] == {"containers": [{"name": "c", "image": "i"}]}
    body["spec"]["containers"][0]["image"] = "changed"  # a copy, not the cache's
    assert owner["spec"]["template"]["spec"]["containers"][0]["image"] == "i"


def test_status_counts_and_min_ready_seconds():
    owner = rs(replicas=3, min_ready=30)
    pods = [pod("a", ready=True, ready_since=NOW - 60, labels={"app": "web", "tier": "front"}),
            pod("b", ready=True, ready_since=NOW - 10, labels={"app": "web", "tier": "front"}),
            pod("c", ready=False)]
    status = replica_set_status(owner, pods, error=None, now=NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 2}
    assert seconds_until_available(pods, 30, NOW) == 20
    assert status_changed(owner, status)
    assert not status_changed(rs(status=status), status)


def test_replica_failure_condition_comes_and_goes():
    owner = rs(replicas=3)
    failed = replica_set_status(owner, [], error="pods is forbidden", now=NOW)
    [cond] = failed["conditions"]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "ReplicaFailure", "True", "FailedCreate", "pods is forbidden")
    again = replica_set_status(rs(status=failed), [], error="other", now=NOW + 5)
    assert again["conditions"] == [cond]  # kept as it was
    healed = replica_set_status(rs(status=failed), [], error=None, now=NOW + 9)
    assert "conditions" not in healed


OWNER = rs()
REF = owner_reference(OWNER, kind="ReplicaSet", api_version="apps/v1")
MATCHES = selector_from_map({"app": "web"}).matches


@pytest.mark.parametrize(("owner", "p", "expected"), [
    (OWNER, pod("mine", owner=REF), Claim.OWNED),
    (OWNER, pod("mine", owner=REF, labels={"app": "other"}), Claim.RELEASE),
    (rs(deleting=True), pod("mine", owner=REF, labels={"app": "other"}), Claim.IGNORE),
    (OWNER, pod("orphan"), Claim.ADOPT),
    (OWNER, pod("orphan", labels={"app": "other"}), Claim.IGNORE),
    (OWNER, pod("orphan", deleting=True), Claim.IGNORE),
    (rs(deleting=True), pod("orphan"), Claim.IGNORE),
    (OWNER, pod("theirs", owner={**REF, "uid": "someone"}), Claim.IGNORE),
])
def test_claims(owner, p, expected):
    assert claim(owner, MATCHES, p) is expected


def test_adopt_and_release_patches_keep_other_owners_and_the_version():
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u2"}
    p = pod("p", owner=other)
    assert adopt_patch(p, REF) == {"metadata": {"ownerReferences": [other, REF],
                                                "resourceVersion": "7"}}
    owned = pod("p", owner=REF)
    assert release_patch(owned, "uid-web") == {"metadata": {"ownerReferences": None,
                                                            "resourceVersion": "7"}}


def test_expectations():
    now = [0.0]
    e = Expectations(lambda: now[0], ttl=300)
    assert e.satisfied("ns/rs")  # never expected anything
    e.expect("ns/rs", creations=2)
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert e.satisfied("ns/rs")
    e.expect("ns/rs", deletions=["ns/a", "ns/b"])
    e.deletion_observed("ns/rs", "ns/a")
    e.deletion_observed("ns/rs", "ns/a")  # a repeat counts once
    assert not e.satisfied("ns/rs")
    now[0] = 301.0  # a lost event stalls the owner for the ttl at most
    assert e.satisfied("ns/rs")
    e.forget("ns/rs")
    assert e.satisfied("ns/rs")
