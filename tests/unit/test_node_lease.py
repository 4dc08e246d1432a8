"""A node's Lease as its agent writes it, and when the agent posts its Node status."""

from __future__ import annotations

import pytest

from apimachinery.nodelease import (
    duration_for,
    new_lease,
    renew_time_of,
    renewed,
)
from nodeagent.node.report import report_due, without_heartbeats

T = 1714557600.25  # 2024-05-01T10:00:00.25Z


def test_lease_shape_is_a_kubelets():
    lease = new_lease("n1", duration=40, now=T, node_uid="uid-1")
    assert lease == {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-1"}]},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                 "renewTime": "2024-05-01T10:00:00.250000Z"}}
    assert renew_time_of(lease) == "2024-05-01T10:00:00.250000Z"
    assert "ownerReferences" not in new_lease("n1", duration=40, now=T,
                                              node_uid=None)["metadata"]
    assert renew_time_of(None) is None and renew_time_of({"spec": {}}) is None


def test_renewal_keeps_the_version_and_other_owners_and_follows_a_recreated_node():
    stored = new_lease("n1", duration=40, now=T, node_uid="old-uid")
    stored["metadata"]["resourceVersion"] = "17"
    stored["metadata"]["ownerReferences"].insert(0, {"apiVersion": "x/v1", "kind": "Thing",
                                                     "name": "t", "uid": "t-uid"})
    out = renewed(stored, "n1", duration=40, now=T + 10, node_uid="new-uid")
    assert out["metadata"]["resourceVersion"] == "17"  # an optimistic update
    assert out["metadata"]["ownerReferences"] == [
        {"apiVersion": "x/v1", "kind": "Thing", "name": "t", "uid": "t-uid"},
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "new-uid"}]
    assert out["spec"]["renewTime"] == "2024-05-01T10:00:10.250000Z"
    assert stored["spec"]["renewTime"] == "2024-05-01T10:00:00.250000Z"  # input untouched
    unknown = renewed(stored, "n1", duration=40, now=T, node_uid=None)
    assert unknown["metadata"]["ownerReferences"] == stored["metadata"]["ownerReferences"]


@pytest.mark.parametrize(("interval", "duration"), [(10.0, 40), (1.0, 4), (0.3, 2), (0.1, 1)])
def test_lease_duration_is_four_renew_intervals(interval: float, duration: int):
    assert duration_for(interval) == duration


STATUS = {"addresses": [{"type": "InternalIP", "address": "10.250.0.2"}],
          "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                          "lastHeartbeatTime": "2024-05-01T10:00:00Z",
                          "lastTransitionTime": "2024-05-01T09:00:00Z"}]}


def beat(at: str) -> dict:
    return {**STATUS, "conditions": [{**STATUS["conditions"][0], "lastHeartbeatTime": at}]}


def due(**kw):
    args = {"desired": beat("2024-05-01T10:01:00Z"), "posted": STATUS, "api_ready": "True",
            "since_post": 60.0, "every": 300.0}
    return report_due(**{**args, **kw})


def test_status_is_posted_only_on_a_change_a_not_ready_api_copy_or_the_period():
    assert due() is None  # only the heartbeat time moved: the Lease says that
    assert due(posted=None) == "first report since start"
    moved = {**STATUS, "addresses": [{"type": "InternalIP", "address": "10.250.0.9"}]}
    assert due(desired=moved) == "status changed"
    assert due(api_ready="Unknown") == "Ready is Unknown in the API"
    assert due(api_ready="") == "Ready is missing in the API"
    assert due(api_ready=None) is None  # the API's copy isn't known yet
    assert due(since_post=300.0) == "periodic report"
    # while the Lease isn't current the agent passes the heartbeat interval as period
    assert due(since_post=10.0, every=10.0) == "periodic report"


def test_without_heartbeats_drops_only_the_heartbeat_time():
    assert without_heartbeats(beat("x")) == without_heartbeats(beat("y"))
    assert without_heartbeats(STATUS)["conditions"][0]["lastTransitionTime"] == \
        "2024-05-01T09:00:00Z"
    assert without_heartbeats({}) == {"conditions": []}
