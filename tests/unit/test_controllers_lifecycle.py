"""Node lifecycle decisions: heartbeat probes, Unknown status, pods to mark, pods to GC."""

from __future__ import annotations

from controllers.lifecycle import (
    NEVER_REASON,
    SILENT_REASON,
    Probe,
    force_delete_in,
    heartbeat_of,
    node_is_down,
    observe,
    pod_not_ready_status,
    pods_to_mark_not_ready,
    seconds_left,
    silent_status,
)
from controllers.objects import format_time, parse_time

NOW = "2024-05-01T10:00:00Z"


def node(ready: str | None = "True", heartbeat: str | None = "2024-05-01T09:59:50Z",
         extra: list | None = None) -> dict:
    conditions = list(extra or [])
    if ready is not None:
        c = {"type": "Ready", "status": ready, "reason": "AgentReady"}
        if heartbeat:
            c["lastHeartbeatTime"] = heartbeat
        conditions.append(c)
    return {"metadata": {"name": "n1", "resourceVersion": "7"},
            "status": {"conditions": conditions, "addresses": [{"type": "InternalIP",
                                                                "address": "10.250.0.2"}]}}


def pod(name: str, *, ready: bool = True, phase: str = "Running",
        deletion: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default"}
    if deletion:
        meta["deletionTimestamp"] = deletion
    return {"metadata": meta, "spec": {"nodeName": "n1"},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def lease(renew: str | None) -> dict:
    spec = {"holderIdentity": "n1", "leaseDurationSeconds": 40}
    if renew is not None:
        spec["renewTime"] = renew
    return {"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": spec}


def test_probe_moves_only_when_the_heartbeat_value_changes():
    first = observe(None, node(), None, now=100.0)
    assert first == Probe("2024-05-01T09:59:50Z", None, 100.0)
    assert observe(first, node(), None, now=130.0) is first  # same heartbeat: still 100
    moved = observe(first, node(heartbeat="2024-05-01T10:00:00Z"), None, now=131.0)
    assert moved.observed_at == 131.0
    assert seconds_left(moved, now=150.0, grace=40.0) == 21.0
    assert seconds_left(first, now=141.0, grace=40.0) < 0


def test_heartbeat_skew_does_not_matter_only_change_does():
    far_future = node(heartbeat="2099-01-01T00:00:00Z")
    probe = observe(None, far_future, None, now=5.0)
    assert seconds_left(probe, now=50.0, grace=40.0) < 0


def alive(probe: Probe, now: float, grace: float = 40.0) -> bool:
    return seconds_left(probe, now, grace) > 0


def test_a_renewed_lease_keeps_a_node_alive_while_its_status_stands_still():
    t0 = "2024-05-01T09:59:50.000000Z"
    probe = observe(None, node(), lease(t0), now=100.0)
    assert probe == Probe("2024-05-01T09:59:50Z", t0, 100.0)
    # the agent renews every 10 s and posts its status every 5 min: 5 renewals later
    # the Ready condition's heartbeat hasn't moved, yet the node is alive
    for i in range(1, 6):
        probe = observe(probe, node(), lease(f"2024-05-01T10:00:{i}0.000000Z"), now=100.0 + 10 * i)
    assert probe.observed_at == 150.0
    assert alive(probe, now=185.0)
    # renewals stop: silent once the grace period has passed since the last one seen,
    # however recent the status heartbeat's *value* is
    assert observe(probe, node(), lease("2024-05-01T10:00:50.000000Z"), now=189.0) is probe
    assert not alive(probe, now=190.0)


def test_either_heartbeat_moving_counts_and_a_vanished_lease_is_no_sign_of_life():
    t0 = "2024-05-01T09:59:50.000000Z"
    probe = observe(None, node(), lease(t0), now=100.0)
    by_status = observe(probe, node(heartbeat="2024-05-01T10:00:30Z"), lease(t0), now=130.0)
    assert by_status.observed_at == 130.0 and alive(by_status, now=169.0)
    gone = observe(by_status, node(heartbeat="2024-05-01T10:00:30Z"), None, now=150.0)
    assert gone is by_status  # the Lease was deleted: nothing moved
    assert not alive(gone, now=170.0)
    # a node without a Lease (an agent from before Leases) lives on its status alone
    old_agent = observe(None, node(), None, now=0.0)
    assert alive(observe(old_agent, node(heartbeat="2024-05-01T10:00:10Z"), None, now=35.0),
                 now=70.0)
    # the renewTime's value, like the heartbeat's, is never compared with our clock
    skewed = observe(None, node(), lease("2099-01-01T00:00:00.000000Z"), now=5.0)
    assert not alive(skewed, now=45.0)


def test_silent_status_sets_every_condition_unknown_and_keeps_the_heartbeat():
    n = node(extra=[{"type": "NetworkUnavailable", "status": "False"}])
    status = silent_status(n, NOW)
    assert status is not None
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready == {"type": "Ready", "status": "Unknown", "reason": SILENT_REASON,
                     "message": "Node agent stopped posting node status.",
                     "lastHeartbeatTime": "2024-05-01T09:59:50Z", "lastTransitionTime": NOW}
    assert {c["status"] for c in status["conditions"]} == {"Unknown"}
    assert status["addresses"] == n["status"]["addresses"]
    assert n["status"]["conditions"][1]["status"] == "True"  # input untouched
    already = {"status": status}
    assert silent_status(already, NOW) is None


def test_node_that_never_posted_gets_never_updated_reason():
    status = silent_status({"metadata": {"name": "n"}}, NOW)
    assert status["conditions"] == [{"type": "Ready", "status": "Unknown",
                                     "reason": NEVER_REASON,
                                     "message": "Node agent never posted node status.",
                                     "lastTransitionTime": NOW}]
    assert heartbeat_of({"metadata": {"name": "n"}}) is None


def test_pods_marked_only_on_a_down_node_and_only_if_ready():
    pods = [pod("a"), pod("b", ready=False), pod("c", phase="Succeeded")]
    assert pods_to_mark_not_ready(node("True"), pods) == []
    assert pods_to_mark_not_ready(node(None), pods) == []  # still registering
    for down in ("False", "Unknown"):
        assert node_is_down(node(down))
        assert [p["metadata"]["name"] for p in pods_to_mark_not_ready(node(down), pods)] == ["a"]


def test_pod_not_ready_patch():
    patch = pod_not_ready_status(pod("a"), "n1", NOW)
    assert patch == {"conditions": [{"type": "Ready", "status": "False",
                                     "reason": "NodeNotReady",
                                     "message": "node n1 is not ready",
                                     "lastTransitionTime": NOW, "lastProbeTime": None}]}


def test_force_delete_only_terminating_pods_on_dead_or_missing_nodes_after_grace():
    deadline = "2024-05-01T10:00:30Z"
    at = parse_time(deadline)
    terminating = pod("a", deletion=deadline)
    assert force_delete_in(pod("b"), None, at) is None  # not terminating
    assert force_delete_in(terminating, node("True"), at + 100) is None  # agent will do it
    assert force_delete_in(terminating, node("Unknown"), at - 10) == 10  # not yet
    assert force_delete_in(terminating, node("False"), at + 1) == -1
    assert force_delete_in(terminating, None, at) == 0  # node gone


def test_time_format_round_trips_with_microseconds():
    assert format_time(0) == "1970-01-01T00:00:00Z"
    assert format_time(1714557600.25) == "2024-05-01T10:00:00.25Z"
    assert parse_time("2024-05-01T10:00:00.25Z") == 1714557600.25
    assert parse_time("2024-05-01T12:00:00.123456789+02:00") == 1714557600.123456789
    assert parse_time("yesterday") is None and parse_time(None) is None
