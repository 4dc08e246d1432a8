"""mpctl apply's pure part: preparing the manifest, the last-applied record, the patch."""

from __future__ import annotations

import json

import pytest

from apimachinery.kinds import NAMESPACE, SERVICE
from mpctl.apply import (
    LAST_APPLIED,
    ApplyError,
    compute_patch,
    covers,
    last_applied_of,
    last_applied_text,
    prepare,
    resolve_namespace,
    with_last_applied,
)


def manifest(**spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}],
                     **spec}}


def live_from(applied: dict, **spec: object) -> dict:
    """What the server would hold after creating ``applied``: defaults and owned fields added."""
    obj = json.loads(json.dumps(applied))
    obj["metadata"].update({"namespace": "default", "uid": "u-1", "resourceVersion": "7",
                            "creationTimestamp": "2024-01-01T00:00:00Z"})
    obj["spec"].update({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                        "type": obj["spec"].get("type", "ClusterIP"),
                        "sessionAffinity": "None", **spec})
    obj["spec"]["ports"] = [{"protocol": "TCP", **p} for p in obj["spec"]["ports"]]
    obj["status"] = {"loadBalancer": {}}
    return obj


def desired_of(m: dict) -> dict:
    return with_last_applied(prepare(m, SERVICE, "default"))


def test_prepare_strips_server_fields_and_sets_namespace() -> None:
    m = manifest()
    m["metadata"].update({"uid": "x", "resourceVersion": "3", "creationTimestamp": "t",
                          "generation": 2, "managedFields": [],
                          "annotations": {LAST_APPLIED: "{}", "keep": "me"}})
    m["status"] = {"loadBalancer": {}}
    out = prepare(m, SERVICE, "team")
    assert out["metadata"] == {"name": "web", "labels": {"app": "web"}, "namespace": "team",
                               "annotations": {"keep": "me"}}
    assert "status" not in out
    assert "uid" in m["metadata"]  # the manifest itself is untouched
    ns = prepare({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "team", "namespace": "oops"}}, NAMESPACE, None)
    assert ns["metadata"] == {"name": "team"}


def test_last_applied_text_like_kubectl() -> None:
    text = last_applied_text(prepare(manifest(), SERVICE, "default"))
    assert text.endswith("}\n")
    assert text == (
        '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"web"},'
        '"name":"web","namespace":"default"},"spec":{"ports":[{"port":80,"targetPort":8080}],'
        '"selector":{"app":"web"}}}\n')
    annotated = with_last_applied(prepare(manifest(), SERVICE, "default"))
    assert last_applied_of(annotated) == json.loads(text)
    assert last_applied_of({"metadata": {"annotations": {LAST_APPLIED: "not json"}}}) is None
    assert last_applied_of({"metadata": {}}) is None


def test_same_manifest_again_is_unchanged() -> None:
    desired = desired_of(manifest())
    live = live_from(desired)
    assert compute_patch(last_applied_of(live), desired, live) is None


def test_changed_field_is_sent_alone() -> None:
    first = desired_of(manifest())
    live = live_from(first)
    second = desired_of(manifest(sessionAffinity="ClientIP"))
    patch = compute_patch(last_applied_of(live), second, live)
    assert patch == {"metadata": {"annotations": {LAST_APPLIED: second["metadata"]["annotations"]
                                                  [LAST_APPLIED]}},
                     "spec": {"sessionAffinity": "ClientIP"}}


def test_server_defaults_inside_lists_do_not_count_as_a_difference() -> None:
    desired = desired_of(manifest())
    live = live_from(desired)
    assert live["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert compute_patch(last_applied_of(live), desired, live) is None


def test_changed_list_is_sent_whole() -> None:
    live = live_from(desired_of(manifest()))
    new = desired_of(manifest(ports=[{"port": 81, "targetPort": 8080}]))
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert patch["spec"] == {"ports": [{"port": 81, "targetPort": 8080}]}


def test_key_removed_inside_a_list_item_resends_the_list() -> None:
    live = live_from(desired_of(manifest()))
    new = desired_of(manifest(ports=[{"port": 80}]))
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None and patch["spec"] == {"ports": [{"port": 80}]}


def test_removed_fields_become_nulls_three_way() -> None:
    m = manifest(sessionAffinity="ClientIP")
    m["metadata"]["labels"]["tier"] = "fe"
    live = live_from(desired_of(m))
    live["metadata"]["labels"]["added-by-someone-else"] = "x"
    new = desired_of(manifest())  # tier label and sessionAffinity removed from the manifest
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"tier": None}  # the other label is not ours
    assert patch["spec"] == {"sessionAffinity": None}


def test_removed_fields_already_absent_are_not_sent() -> None:
    m = manifest()
    m["metadata"]["labels"]["tier"] = "fe"
    live = live_from(desired_of(m))
    del live["metadata"]["labels"]["tier"]
    new = desired_of(manifest())
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert "labels" not in patch["metadata"]


def test_server_allocated_fields_are_never_deleted_or_sent() -> None:
    m = manifest(clusterIP="10.96.0.10")
    live = live_from(desired_of(m))
    new = desired_of(manifest(sessionAffinity="ClientIP"))  # clusterIP dropped from manifest
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert patch["spec"] == {"sessionAffinity": "ClientIP"}
    assert "status" not in patch


def test_node_ports_survive_a_resent_ports_list() -> None:
    m = manifest(type="NodePort")
    live = live_from(desired_of(m))
    live["spec"]["ports"][0]["nodePort"] = 30080
    new = desired_of(manifest(type="NodePort", ports=[{"port": 80, "targetPort": 9090},
                                                      {"port": 443}]))
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert patch["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "nodePort": 30080},
                                      {"port": 443}]
    # the manifest's own dicts were not modified
    assert new["spec"]["ports"][0] == {"port": 80, "targetPort": 9090}


def test_node_ports_are_not_carried_into_a_cluster_ip_service() -> None:
    live = live_from(desired_of(manifest(type="NodePort")))
    live["spec"]["ports"][0]["nodePort"] = 30080
    new = desired_of(manifest(type="ClusterIP", ports=[{"port": 80, "targetPort": 9090}]))
    patch = compute_patch(last_applied_of(live), new, live)
    assert patch is not None
    assert patch["spec"]["ports"] == [{"port": 80, "targetPort": 9090}]
    assert patch["spec"]["type"] == "ClusterIP"


def test_object_created_without_apply_gets_the_annotation() -> None:
    desired = desired_of(manifest())
    live = live_from(prepare(manifest(), SERVICE, "default"))  # no last-applied annotation
    patch = compute_patch(last_applied_of(live), desired, live)
    assert patch == {"metadata": {"annotations": {
        LAST_APPLIED: desired["metadata"]["annotations"][LAST_APPLIED]}}}


def test_explicit_null_in_manifest_deletes() -> None:
    m = manifest()
    live = live_from(desired_of(m))
    m["spec"]["sessionAffinity"] = None
    patch = compute_patch(last_applied_of(live), desired_of(m), live)
    assert patch is not None and patch["spec"] == {"sessionAffinity": None}


def test_covers() -> None:
    assert covers({"a": 1}, {"a": 1, "b": 2})
    assert not covers({"a": 1}, {"a": 2})
    assert covers([{"port": 80}], [{"port": 80, "protocol": "TCP"}])
    assert not covers([{"port": 80}], [{"port": 80}, {"port": 81}])
    assert covers({"a": None}, {"b": 1})
    assert not covers({"a": None}, {"a": 1})
    assert not covers(True, 1)
    assert covers(1, 1.0)


def test_resolve_namespace() -> None:
    obj = {"metadata": {"name": "web"}}
    assert resolve_namespace(obj, SERVICE, None, "default") == "default"
    assert resolve_namespace(obj, SERVICE, "team", "default") == "team"
    in_ns = {"metadata": {"name": "web", "namespace": "prod"}}
    assert resolve_namespace(in_ns, SERVICE, None, "default") == "prod"
    assert resolve_namespace(in_ns, SERVICE, "prod", "default") == "prod"
    with pytest.raises(ApplyError, match="does not match the namespace"):
        resolve_namespace(in_ns, SERVICE, "team", "default")
    assert resolve_namespace(in_ns, NAMESPACE, "team", "default") is None
