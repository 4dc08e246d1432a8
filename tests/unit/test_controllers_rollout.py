"""Deployment decisions: fenceposts, rolling steps, Recreate, proportional scaling,
revisions and history, status and conditions. Cases marked "k8s" are the ones of
Kubernetes' own ``rolling_test.go``/``sync_test.go`` tables."""

from __future__ import annotations

import pytest

from controllers.deploystatus import (
    NEW_RS_AVAILABLE,
    PAUSED,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
    get_condition,
    paused_conditions,
    rollout_status,
)
from controllers.objects import format_time
from controllers.revisions import (
    CHANGE_CAUSE,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    equal_ignore_hash,
    find_new,
    history_to_delete,
    new_replica_set,
    new_rs_annotations,
    template_hash,
)
from controllers.rollout import (
    is_scaling_event,
    old_pods_running,
    plan_of,
    proportional_scale,
    recreate_scale_down,
    resolve_fenceposts,
    rolling_step,
)

NOW = 2_000_000.0


def deploy(replicas: int | None = 10, *, surge: object = None, unavailable: object = None,
           recreate: bool = False, paused: bool = False, status: dict | None = None,
           deadline: int | None = 600, generation: int = 1, **spec) -> dict:
    s: dict = {"selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "c", "image": "v1"}]}}, **spec}
    if replicas is not None:
        s["replicas"] = replicas
    if recreate:
        s["strategy"] = {"type": "Recreate"}
    elif surge is not None or unavailable is not None:
        s["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
            k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable))
            if v is not None}}
    if paused:
        s["paused"] = True
    if deadline is not None:
        s["progressDeadlineSeconds"] = deadline
    return {"metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                         "generation": generation, "annotations": {}},
            "spec": s, "status": status or {}}


def rs(name: str, replicas: int, *, available: int | None = None, created: float = 0.0,
       revision: int | None = None, max_replicas: int | None = None,
       desired: int | None = None, status_replicas: int | None = None) -> dict:
    annotations: dict = {}
    if revision is not None:
        annotations[REVISION] = str(revision)
    if max_replicas is not None:
        annotations[MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        annotations["deployment.kubernetes.io/desired-replicas"] = str(desired)
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "creationTimestamp": format_time(NOW - 1000 + created),
                         "generation": 1, "annotations": annotations},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": replicas if available is None else available,
                       "readyReplicas": replicas if available is None else available,
                       "observedGeneration": 1}}


# -- fenceposts and defaults ---------------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    (0, 0, 5, (0, 1)),  # never both 0
    ("0%", "0%", 5, (0, 1)),
    (2, "50%", 5, (2, 2)),
    ("10%", 0, 3, (1, 0)),
    ("junk", "1", 3, (0, 1)),
])
def test_fenceposts(surge, unavailable, desired, expected):
    assert resolve_fenceposts(surge, unavailable, desired) == expected


def test_missing_fields_take_apps_v1_defaults():
    plan = plan_of({"spec": {"selector": {"matchLabels": {"a": "b"}}}})
    assert (plan.replicas, plan.recreate, plan.max_surge, plan.max_unavailable, plan.paused,
            plan.history_limit, plan.progress_deadline) == (1, False, 1, 0, False, 10, 600)
    recreate = plan_of(deploy(4, recreate=True))
    assert (recreate.max_surge, recreate.max_unavailable) == (0, 0)
    assert plan_of(deploy(4, deadline=2**31 - 1)).progress_deadline is None


# -- rolling update ------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "surge", "old", "new", "expected"), [
    (10, 0, 10, 0, None),  # k8s: no room to surge
    (10, 2, 10, 0, 2),  # k8s
    (10, 2, 5, 0, 7),  # k8s
    (10, 2, 10, 2, None),  # k8s: at the ceiling; the old must shrink first
    (2, 2, 2, 4, 2),  # k8s: too many new ones scale down
])
def test_rolling_scale_up_of_the_new_replicaset(replicas, surge, old, new, expected):
    plan = plan_of(deploy(replicas, surge=surge, unavailable=0))
    step = rolling_step(plan, rs("new", new, available=0, created=10), [rs("old", old)])
    assert step.get("new") == expected


@pytest.mark.parametrize(("replicas", "unavailable", "old", "new", "old_ready", "new_ready",
                          "expected"), [
    (10, 0, 10, 0, 10, 0, 9),  # k8s: 0/0 fenceposts to 1 unavailable
    (10, 2, 10, 0, 10, 0, 8),  # k8s
    (10, 2, 10, 0, 8, 0, 8),  # k8s: the two unhealthy old pods go first
    (10, 2, 10, 0, 9, 0, 8),  # k8s: one unhealthy and one ready go
    (10, 2, 8, 2, 8, 0, None),  # k8s: the new RS's unavailable pods use up the budget
])
def test_rolling_scale_down_of_old_replicasets(replicas, unavailable, old, new, old_ready,
                                               new_ready, expected):
    plan = plan_of(deploy(replicas, surge=0, unavailable=unavailable))
    step = rolling_step(plan, rs("new", new, available=new_ready, created=10),
                        [rs("old", old, available=old_ready)])
    assert step.get("old") == expected
    assert "new" not in step


def test_scale_down_takes_the_oldest_replicaset_first():
    plan = plan_of(deploy(4, surge=0, unavailable=2))
    step = rolling_step(plan, rs("new", 0, created=30),
                        [rs("newer-old", 2, created=20), rs("oldest", 2, created=0)])
    assert step == {"oldest": 0}


def simulate(plan_deploy: dict, steps: int = 50) -> list[tuple[int, int, int]]:
    """Run rolling steps to completion, every pod becoming available at once:
    (old size, new size, available) after each step."""
    plan = plan_of(plan_deploy)
    old, new = rs("old", plan.replicas), rs("new", 0, created=10)
    seen = []
    for _ in range(steps):
        step = rolling_step(plan, new, [old])
        if not step:
            break
        old = rs("old", step.get("old", old["spec"]["replicas"]))
        new = rs("new", step.get("new", new["spec"]["replicas"]), created=10)
        seen.append((old["spec"]["replicas"], new["spec"]["replicas"],
                     old["status"]["availableReplicas"] + new["status"]["availableReplicas"]))
    return seen


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), ("25%", "25%"), (0, 1), (3, 2),
                                                    ("100%", 0), (0, "100%")])
def test_a_whole_rollout_stays_within_surge_and_unavailable(surge, unavailable):
    d = deploy(7, surge=surge, unavailable=unavailable)
    plan = plan_of(d)
    seen = simulate(d)
    assert seen[-1][:2] == (0, 7)
    for old, new, available in seen:
        assert old + new <= 7 + plan.max_surge
        assert available >= 7 - plan.max_unavailable


# -- recreate ------------------------------------------------------------------------------


def test_recreate_scales_every_old_replicaset_to_zero_then_waits_for_their_pods():
    old = [rs("a", 3), rs("b", 0), rs("c", 1)]
    assert recreate_scale_down(old) == {"a": 0, "c": 0}
    gone = [rs("a", 0, status_replicas=0), rs("c", 0, status_replicas=0)]
    assert old_pods_running([rs("a", 0, status_replicas=1)], [])
    terminating = {"status": {"phase": "Running"}}
    assert old_pods_running(gone, [terminating])
    assert not old_pods_running(gone, [{"status": {"phase": "Succeeded"}}])
    assert not old_pods_running(gone, [])


# -- proportional scaling ------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after", "new", "olds", "expected_new", "expected_olds"), [
    (5, 10, 2, [3], 4, [6]),  # k8s "proportional scaling: 5 -> 10"
    (5, 3, 2, [3], 1, [2]),  # k8s "5 -> 3"
    (9, 4, 8, [1], 4, [0]),  # k8s "9 -> 4"
    (7, 10, 2, [3, 2], 3, [4, 3]),  # k8s "7 -> 10"
    (13, 8, 2, [8, 3], 1, [5, 2]),  # k8s "13 -> 8"
    (13, 23, 5, [8], 9, [14]),  # 13 → 23 mid-rollout (the integration test's numbers)
])
def test_proportional_scaling(before, after, new, olds, expected_new, expected_olds):
    plan = plan_of(deploy(after, surge=0, unavailable=1))
    new_rs = rs("new", new, created=100, max_replicas=before, desired=before)
    old_rs = [rs(f"old{i}", n, created=i, max_replicas=before, desired=before)
              for i, n in enumerate(olds)]
    assert is_scaling_event(plan, [new_rs, *old_rs])
    sizes = proportional_scale(plan, new_rs, old_rs, status_replicas=before)
    got = {**{r["metadata"]["name"]: r["spec"]["replicas"] for r in [new_rs, *old_rs]},
           **sizes}
    assert got["new"] == expected_new
    assert [got[f"old{i}"] for i in range(len(olds))] == expected_olds


def test_scaling_a_single_active_replicaset_or_a_saturated_one():
    plan = plan_of(deploy(5, surge=1, unavailable=0))
    assert proportional_scale(plan, rs("new", 3), [rs("old", 0)], status_replicas=3) == \
        {"new": 5}
    saturated = rs("new", 5, desired=5)
    assert proportional_scale(plan, saturated, [rs("old", 2)], status_replicas=7) == {"old": 0}
    assert not is_scaling_event(plan, [rs("new", 5, desired=5), rs("old", 0, desired=3)])


# -- revisions and history -----------------------------------------------------------------


def test_template_hash_is_stable_and_moves_with_the_collision_count():
    template = deploy()["spec"]["template"]
    first = template_hash(template, None)
    assert first == template_hash({**template}, None)
    assert first != template_hash(template, 1) != template_hash(template, 2)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_templates_equal_ignoring_the_hash_label_and_empty_fields():
    a = deploy()["spec"]["template"]
    b = {"metadata": {"labels": {"app": "web", HASH_LABEL: "abc"}, "creationTimestamp": None},
         "spec": {"containers": [{"name": "c", "image": "v1", "resources": {}}]}}
    assert equal_ignore_hash(a, b)
    c = {**b, "spec": {"containers": [{"name": "c", "image": "v2"}]}}
    assert not equal_ignore_hash(a, c)
    root = {**b, "spec": {**b["spec"], "securityContext": {"runAsUser": 0}}}
    assert not equal_ignore_hash(a, root)  # 0 is not "absent"


def test_the_oldest_replicaset_of_the_current_template_is_the_new_one():
    d = deploy()
    same = new_replica_set(d, pod_hash="h1", replicas=1, annotations={}, owner_ref={})
    same_later = {**new_replica_set(d, pod_hash="h2", replicas=1, annotations={}, owner_ref={})}
    same["metadata"]["creationTimestamp"] = format_time(NOW - 50)
    same_later["metadata"]["creationTimestamp"] = format_time(NOW - 10)
    other = rs("other", 1)
    assert find_new(d, [other, same_later, same]) is same
    assert find_new(d, [other]) is None


def test_new_replicaset_body():
    d = deploy(3, minReadySeconds=5)
    body = new_replica_set(d, pod_hash="xyz", replicas=2, annotations={REVISION: "4"},
                           owner_ref={"uid": "d-uid"})
    assert body["metadata"]["name"] == "web-xyz"
    assert body["metadata"]["labels"] == {"app": "web", HASH_LABEL: "xyz"}
    assert body["spec"]["selector"] == {"matchLabels": {"app": "web", HASH_LABEL: "xyz"}}
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: "xyz"}
    assert (body["spec"]["replicas"], body["spec"]["minReadySeconds"]) == (2, 5)
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # not changed


def test_revision_annotations():
    d = deploy(3, surge=1)
    d["metadata"]["annotations"] = {CHANGE_CAUSE: "why", REVISION: "9",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    created = new_rs_annotations(d, {}, revision=3, exists=False, desired=3, max_replicas=4)
    assert created == {CHANGE_CAUSE: "why", REVISION: "3",
                       "deployment.kubernetes.io/desired-replicas": "3", MAX_REPLICAS: "4"}
    # rolled back to: a new revision, the old one kept in the history
    back = new_rs_annotations(d, {REVISION: "1", REVISION_HISTORY: "0"}, revision=5,
                              exists=True, desired=3, max_replicas=4)
    assert (back[REVISION], back[REVISION_HISTORY]) == ("5", "0,1")
    same = new_rs_annotations(d, created, revision=3, exists=True, desired=3, max_replicas=4)
    assert same == created


def test_history_cleanup_keeps_the_limit_and_only_drops_empty_replicasets():
    old = [rs("r1", 0, revision=1, status_replicas=0), rs("r2", 0, revision=2, status_replicas=0),
           rs("r3", 1, revision=3), rs("r4", 0, revision=4, status_replicas=0)]
    assert [r["metadata"]["name"] for r in history_to_delete(old, 1)] == ["r1", "r2"]
    assert history_to_delete(old, 4) == []
    busy = rs("r0", 0, revision=0, status_replicas=2)  # pods still going away
    assert [r["metadata"]["name"] for r in history_to_delete([busy, *old], 2)] == \
        ["r1", "r2"]


# -- status and conditions -----------------------------------------------------------------


def progressing(reason: str, status: str = "True", at: float = NOW - 10) -> dict:
    t = format_time(at)
    return {"type": "Progressing", "status": status, "reason": reason, "message": "",
            "lastUpdateTime": t, "lastTransitionTime": t}


def test_status_counts_and_available():
    d = deploy(4, surge=1, unavailable=1)
    new, old = rs("new", 2, available=1), rs("old", 2)
    status, _ = rollout_status(d, plan_of(d), [old, new], new, now=NOW)
    assert {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas",
                                       "availableReplicas", "unavailableReplicas",
                                       "observedGeneration")} == {
        "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
        "unavailableReplicas": 1, "observedGeneration": 1}
    available = get_condition(status["conditions"], "Available")
    assert available is not None and available["reason"] == "MinimumReplicasAvailable"
    low, _ = rollout_status(d, plan_of(d), [rs("new", 4, available=2)], None, now=NOW)
    assert get_condition(low["conditions"], "Available")["status"] == "False"


def test_progress_then_complete_then_nothing_more():
    d = deploy(2, status={"replicas": 2, "updatedReplicas": 1,
                          "conditions": [progressing("NewReplicaSetCreated")]})
    new = rs("new", 2, available=1)
    moving, again = rollout_status(d, plan_of(d), [new], new, now=NOW)
    cond = get_condition(moving["conditions"], "Progressing")
    assert cond["reason"] == RS_UPDATED and cond["message"] == 'ReplicaSet "new" is progressing.'
    assert cond["lastUpdateTime"] == format_time(NOW)
    assert cond["lastTransitionTime"] == format_time(NOW - 10)  # still True: kept
    assert again == pytest.approx(601.0)
    done, again = rollout_status({**d, "status": moving}, plan_of(d), [rs("new", 2)],
                                 rs("new", 2), now=NOW + 1)
    assert get_condition(done["conditions"], "Progressing")["reason"] == NEW_RS_AVAILABLE
    assert again is None


def test_no_progress_past_the_deadline_times_out():
    stuck = {"replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
             "conditions": [progressing(RS_UPDATED, at=NOW - 601)]}
    d = deploy(2, status=stuck)
    new = rs("new", 1, available=0)
    status, _ = rollout_status(d, plan_of(d), [new, rs("old", 1)], new, now=NOW)
    cond = get_condition(status["conditions"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", TIMED_OUT)
    assert cond["message"] == 'ReplicaSet "new" has timed out progressing.'
    early, again = rollout_status(deploy(2, status={
        **stuck, "conditions": [progressing(RS_UPDATED, at=NOW - 100)]}),
        plan_of(d), [new, rs("old", 1)], new, now=NOW)
    assert get_condition(early["conditions"], "Progressing")["reason"] == RS_UPDATED
    assert again == pytest.approx(501.0)


def test_no_deadline_no_progressing_condition():
    d = deploy(1, deadline=2**31 - 1, status={"conditions": [progressing(RS_UPDATED)]})
    status, again = rollout_status(d, plan_of(d), [rs("new", 1)], rs("new", 1), now=NOW)
    assert get_condition(status["conditions"], "Progressing") is None and again is None


def test_pause_and_resume_conditions():
    d = deploy(1, paused=True, status={"conditions": [progressing(RS_UPDATED)]})
    paused = paused_conditions(d, plan_of(d), now=NOW)
    assert paused is not None
    cond = get_condition(paused, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", PAUSED, "Deployment is paused")
    assert paused_conditions(deploy(1, paused=True, status={"conditions": paused}),
                             plan_of(d), now=NOW) is None
    resumed_d = deploy(1, status={"conditions": paused})
    resumed = paused_conditions(resumed_d, plan_of(resumed_d), now=NOW)
    assert resumed is not None and get_condition(resumed, "Progressing")["reason"] == RESUMED
    timed_out = deploy(1, paused=True, status={"conditions": [progressing(TIMED_OUT, "False")]})
    assert paused_conditions(timed_out, plan_of(timed_out), now=NOW) is None
