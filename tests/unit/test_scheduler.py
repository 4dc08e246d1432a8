"""Scheduling as a pure function: filters, spreading, and the "why not" message."""

from __future__ import annotations

import pytest

from controllers.scheduling import (
    NOT_READY,
    SELECTOR_MISMATCH,
    UNSCHEDULABLE,
    NodeView,
    Taint,
    fit_error,
    needs_scheduling,
    node_view,
    schedule,
    tolerates,
    why_not,
)


def node(name: str, *, pods: int = 0, ready: bool = True, unschedulable: bool = False,
         labels: dict | None = None, taints: tuple[Taint, ...] = ()) -> NodeView:
    return NodeView(name=name, labels=labels or {}, ready=ready, unschedulable=unschedulable,
                    taints=taints, pods=pods)


def pod(*, node_selector: dict | None = None, tolerations: list | None = None,
        node_name: str | None = None, scheduler: str | None = None, deleting: bool = False,
        phase: str = "Pending") -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    if scheduler:
        spec["schedulerName"] = scheduler
    meta: dict = {"name": "p", "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_least_loaded_fitting_node_wins_ties_by_name():
    nodes = [node("c", pods=1), node("b", pods=0), node("a", pods=0)]
    assert schedule(pod(), nodes).node == "a"
    assert schedule(pod(), [node("a", pods=3), node("b", pods=2)]).node == "b"


def test_spreading_over_repeated_decisions():
    counts = {"n1": 0, "n2": 0, "n3": 0}
    for _ in range(9):
        chosen = schedule(pod(), [node(n, pods=c) for n, c in counts.items()]).node
        counts[chosen] += 1
    assert counts == {"n1": 3, "n2": 3, "n3": 3}


def test_node_selector_is_honoured():
    nodes = [node("a"), node("b", labels={"disk": "ssd", "zone": "z1"}, pods=10)]
    assert schedule(pod(node_selector={"disk": "ssd"}), nodes).node == "b"
    assert schedule(pod(node_selector={"disk": "ssd", "zone": "z2"}), nodes).node is None


def test_not_ready_and_unschedulable_nodes_are_skipped():
    nodes = [node("down", ready=False), node("cordoned", unschedulable=True),
             node("ok", pods=50)]
    assert schedule(pod(), nodes).node == "ok"


def test_why_not_message_counts_each_node_under_its_first_reason():
    nodes = [node("down", ready=False, unschedulable=True), node("down2", ready=False),
             node("cordoned", unschedulable=True),
             node("plain", labels={"disk": "hdd"}),
             node("tainted", labels={"disk": "ssd"},
                  taints=(Taint("dedicated", "db", "NoSchedule"),))]
    decision = schedule(pod(node_selector={"disk": "ssd"}), nodes)
    assert decision.node is None
    assert decision.message == (
        "0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable, "
        "2 node(s) were not ready.")


def test_no_nodes_at_all():
    decision = schedule(pod(), [])
    assert decision == schedule(pod(), [])
    assert decision.node is None
    assert decision.message == "0/0 nodes are available: no nodes available to schedule pods."


@pytest.mark.parametrize(("tolerations", "taint", "ok"), [
    ([], Taint("k", "v", "NoSchedule"), False),
    ([{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
     Taint("k", "v", "NoSchedule"), True),
    ([{"key": "k", "value": "v"}], Taint("k", "v", "NoExecute"), True),  # any effect
    ([{"key": "k", "operator": "Equal", "value": "w"}], Taint("k", "v", "NoSchedule"), False),
    ([{"key": "k", "operator": "Exists"}], Taint("k", "anything", "NoSchedule"), True),
    ([{"operator": "Exists"}], Taint("whatever", "", "NoExecute"), True),
    ([{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
     Taint("k", "", "NoSchedule"), False),
    ([{"key": "other", "operator": "Exists"}], Taint("k", "", "NoSchedule"), False),
])
def test_tolerations(tolerations, taint, ok):
    assert tolerates(tolerations, taint) is ok


def test_prefer_no_schedule_taints_do_not_block():
    n = node("a", taints=(Taint("soft", "", "PreferNoSchedule"),))
    assert why_not(pod(), n) is None


def test_tolerating_the_unschedulable_taint_allows_a_cordoned_node():
    tolerations = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                    "effect": "NoSchedule"}]
    assert why_not(pod(tolerations=tolerations), node("a", unschedulable=True)) is None
    assert why_not(pod(), node("a", unschedulable=True)) == UNSCHEDULABLE
    assert why_not(pod(tolerations=tolerations), node("a", ready=False)) == NOT_READY


def test_which_pods_need_scheduling():
    assert needs_scheduling(pod())
    assert not needs_scheduling(pod(node_name="n1"))
    assert not needs_scheduling(pod(deleting=True))
    assert not needs_scheduling(pod(phase="Succeeded"))
    assert not needs_scheduling(pod(scheduler="my-scheduler"))
    assert needs_scheduling(pod(scheduler="default-scheduler"))


def test_node_view_reads_ready_cordon_labels_and_taints():
    obj = {"metadata": {"name": "n1", "labels": {"a": "b"}},
           "spec": {"unschedulable": True,
                    "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    view = node_view(obj, pods=4)
    assert view == NodeView("n1", {"a": "b"}, True, True, (Taint("k", "v", "NoSchedule"),), 4)
    obj["status"]["conditions"][0]["status"] = "Unknown"
    assert node_view(obj, pods=0).ready is False
    assert node_view({"metadata": {"name": "bare"}}, pods=0).ready is False


def test_fit_error_text_is_sorted_and_stable():
    assert fit_error(3, {SELECTOR_MISMATCH: 2, NOT_READY: 1}) == (
        "0/3 nodes are available: 1 node(s) were not ready, "
        "2 node(s) didn't match Pod's node affinity/selector.")
