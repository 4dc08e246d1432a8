"""The garbage collector's graph and decisions, and the API server's propagation
rules (both pure)."""

from __future__ import annotations

import pytest

from apiserver import propagation
from apiserver.errors import Invalid
from controllers.ownergraph import (
    BACKGROUND,
    FOREGROUND,
    NOTHING,
    ORPHAN,
    Action,
    Graph,
    Node,
    OwnerRef,
    OwnerState,
    judge_dependent,
    judge_owner,
    node_of,
    owner_state,
)

SOLID, DANGLING, WAITING = OwnerState.SOLID, OwnerState.DANGLING, OwnerState.WAITING


def ref(uid: str, name: str = "", kind: str = "ReplicaSet", block: bool = False) -> OwnerRef:
    return OwnerRef("apps/v1", kind, name or uid, uid, block_owner_deletion=block)


def node(uid: str, *owners: OwnerRef, kind: str = "Pod", finalizers: tuple[str, ...] = (),
         deleting: bool = False, ns: str = "default") -> Node:
    api_version = "apps/v1" if kind in ("ReplicaSet", "Deployment") else "v1"
    return Node(api_version, kind, ns, uid, uid, "1", owners, finalizers, deleting)


# -- the API server's side ---------------------------------------------------------------

@pytest.mark.parametrize(("have", "options", "want"), [
    ([], {}, None),  # Background by default: nothing to record
    ([], {"propagationPolicy": "Background"}, None),
    ([], {"propagationPolicy": "Foreground"}, ["foregroundDeletion"]),
    ([], {"propagationPolicy": "Orphan"}, ["orphan"]),
    ([], {"orphanDependents": True}, ["orphan"]),
    (["orphan"], {"orphanDependents": False}, []),
    (["x.io/keep"], {"propagationPolicy": "Foreground"}, ["x.io/keep", "foregroundDeletion"]),
    (["foregroundDeletion"], {}, None),  # a finalizer already there decides
    (["foregroundDeletion"], {"propagationPolicy": "Orphan"}, ["orphan"]),  # a switch
    (["orphan", "x.io/keep"], {"propagationPolicy": "Background"}, ["x.io/keep"]),
])
def test_finalizers_after_delete_follow_kubernetes(have, options, want):
    assert propagation.finalizers_after_delete(have, options) == want


def test_delete_options_are_checked_with_the_field_at_fault():
    with pytest.raises(Invalid) as err:
        propagation.check_options({"propagationPolicy": "Sometimes"})
    assert err.value.status()["details"]["causes"][0]["field"] == "propagationPolicy"
    with pytest.raises(Invalid) as err:
        propagation.check_options({"propagationPolicy": "Orphan", "orphanDependents": True})
    assert "cannot be both set" in err.value.status()["message"]
    propagation.check_options({"propagationPolicy": "Foreground"})


def test_only_legacy_cascading_on_an_object_that_stays_is_202():
    staying = {"kind": "Pod", "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}
    gone = {"kind": "Status", "status": "Success"}
    assert propagation.delete_status({"orphanDependents": False}, staying) == 202
    assert propagation.delete_status({"orphanDependents": False}, gone) == 200
    assert propagation.delete_status({"propagationPolicy": "Foreground"}, staying) == 200


# -- owner states and dependents ---------------------------------------------------------

def test_an_owner_is_dangling_when_absent_or_its_name_holds_another_uid():
    r = ref("u1")
    assert owner_state(None, r) is DANGLING
    assert owner_state("u2", r) is DANGLING  # recreated under the same name
    assert owner_state("u1", r) is SOLID
    assert owner_state("u1", r, ["foregroundDeletion"], deleting=True) is WAITING
    assert owner_state("u1", r, ["orphan"], deleting=True) is SOLID


def test_a_dependent_with_all_owners_gone_is_deleted_with_its_own_policy():
    pod = node("p", ref("a"), ref("b"))
    assert judge_dependent(pod, {"a": DANGLING, "b": DANGLING}) == Action(delete=BACKGROUND)
    kept = node("p", ref("a"), finalizers=("orphan",))
    assert judge_dependent(kept, {"a": DANGLING}) == Action(delete=ORPHAN)
    fg = node("p", ref("a"), finalizers=("foregroundDeletion",))
    assert judge_dependent(fg, {"a": DANGLING}) == Action(delete=FOREGROUND)


def test_a_dependent_with_a_live_owner_only_loses_the_dead_references():
    pod = node("p", ref("a"), ref("b"), ref("c"))
    assert judge_dependent(pod, {"a": SOLID, "b": DANGLING, "c": WAITING}) == Action(
        drop_owners=frozenset({"b", "c"}))
    assert judge_dependent(pod, {"a": SOLID, "b": SOLID, "c": SOLID}) is NOTHING


def test_under_a_foreground_owner_a_dependent_with_dependents_goes_in_the_foreground():
    rs = node("rs", ref("d", kind="Deployment"), kind="ReplicaSet")
    assert judge_dependent(rs, {"d": WAITING}, [node("p", ref("rs"))]) == Action(
        delete=FOREGROUND)
    assert judge_dependent(rs, {"d": WAITING}, []) == Action(delete=BACKGROUND)
    cycle = node("p", ref("rs"), finalizers=("foregroundDeletion",), deleting=True)
    assert judge_dependent(rs, {"d": WAITING}, [cycle]) == Action(delete=FOREGROUND,
                                                                   unblock=True)


def test_a_deleting_dependent_is_left_alone():
    assert judge_dependent(node("p", ref("a"), deleting=True), {"a": DANGLING}) is NOTHING


# -- the graph ---------------------------------------------------------------------------

def test_a_dependent_of_an_unseen_owner_is_checked_and_of_a_seen_one_is_not():
    g = Graph()
    assert g.observe(node("p", ref("rs"))) == {"p"}  # owner unseen: ask the server
    g.observe(node("rs", kind="ReplicaSet"))
    assert g.observe(node("p2", ref("rs"))) == set()
    assert [d.uid for d in g.dependents("rs")] == ["p", "p2"]


def test_an_owner_under_another_name_or_namespace_is_not_vouched_for():
    g = Graph()
    g.observe(node("rs", kind="ReplicaSet", ns="other"))
    pod = node("p", ref("rs"))
    assert g.vouched_owner(pod.owners[0], pod) is None
    assert g.observe(pod) == {"p"}
    g.observe(node("rs", kind="ReplicaSet"))
    assert g.vouched_owner(pod.owners[0], pod) is not None
    assert g.vouched_owner(ref("rs", name="renamed"), pod) is None


def test_an_owner_going_queues_its_dependents():
    g = Graph()
    g.observe(node("rs", kind="ReplicaSet"))
    g.observe(node("p1", ref("rs")))
    g.observe(node("p2", ref("rs")))
    assert g.forget("rs") == {"p1", "p2"}


def test_foreground_owner_waits_for_blocking_dependents_only():
    g = Graph()
    g.observe(node("rs", kind="ReplicaSet"))
    g.observe(node("p1", ref("rs", block=True)))
    g.observe(node("p2", ref("rs")))
    going = node("rs", kind="ReplicaSet", finalizers=("foregroundDeletion",), deleting=True)
    assert g.observe(going) == {"rs", "p1", "p2"}
    assert judge_owner(going, g) == Action(enqueue=("p1", "p2"))
    assert g.forget("p1") == {"rs"}  # one blocking dependent fewer
    assert judge_owner(going, g) == Action(enqueue=("p2",),
                                           remove_finalizer="foregroundDeletion")


def test_dropping_a_blocking_reference_wakes_the_waiting_owner():
    g = Graph()
    g.observe(node("rs", kind="ReplicaSet", finalizers=("foregroundDeletion",), deleting=True))
    g.observe(node("p", ref("rs", block=True)))
    assert "rs" in g.observe(node("p"))


def test_orphaning_owner_strips_every_dependent_then_its_finalizer():
    g = Graph()
    going = node("rs", kind="ReplicaSet", finalizers=("orphan",), deleting=True)
    g.observe(going)
    g.observe(node("p1", ref("rs")))
    action = judge_owner(going, g)
    assert [d.uid for d in action.orphan] == ["p1"]
    assert action.remove_finalizer == "orphan" and action.delete is None


def test_node_of_reads_the_object():
    obj = {"metadata": {"name": "p", "namespace": "default", "uid": "u", "resourceVersion": "7",
                        "deletionTimestamp": "2024-01-01T00:00:00Z",
                        "finalizers": ["orphan"],
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                             "name": "rs", "uid": "r", "controller": True,
                                             "blockOwnerDeletion": True}]}}
    n = node_of(obj, "v1", "Pod")
    assert n.orphaning and n.owners[0].group == "apps" and n.owners[0].block_owner_deletion
