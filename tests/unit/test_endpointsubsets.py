"""The pure v1 Endpoints computation (controllers.endpointsubsets, apimachinery.endpoints)."""

from __future__ import annotations

import copy
import random

from apimachinery.endpoints import repack_subsets
from controllers.endpointsubsets import (
    MAX_CAPACITY,
    OVER_CAPACITY_ANNOTATION,
    TriggerTimes,
    desired_endpoints,
    desired_subsets,
    truncate,
)
from controllers.objects import parse_time
from controllers.slices import HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION
from tests.unit.test_slices import pod, pods, svc

T1 = "2024-05-01T10:00:00.5Z"


def ips(addresses: list[dict]) -> list[str]:
    return [a["ip"] for a in addresses]


def stored(body: dict, version: str = "7") -> dict:
    """``body`` as the API server would hand it back."""
    out = copy.deepcopy(body)
    out["metadata"].update(uid="ep-uid", resourceVersion=version)
    return out


# -- which addresses, ready or not ---------------------------------------------------------


def test_ready_and_not_ready_pods_share_one_subset_with_their_details():
    subsets = desired_subsets(svc(), [pod("a", "10.244.0.2"), pod("b", "10.244.0.10"),
                                      pod("c", "10.244.0.3", ready=False),
                                      pod("other", "10.244.0.4", labels={"app": "db"}),
                                      pod("no-ip", None), pod("done", "10.244.0.5",
                                                              phase="Succeeded")])
    assert subsets == [{
        "addresses": [
            {"ip": "10.244.0.2", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
            {"ip": "10.244.0.10", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "notReadyAddresses": [
            {"ip": "10.244.0.3", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_terminating_pods_are_left_out_unless_not_ready_addresses_are_published():
    candidates = [pod("up", "10.244.0.1"), pod("down", "10.244.0.2", ready=False),
                  pod("leaving", "10.244.0.3", deleting=True)]
    (plain,) = desired_subsets(svc(), candidates)
    assert ips(plain["addresses"]) == ["10.244.0.1"]
    assert ips(plain["notReadyAddresses"]) == ["10.244.0.2"]
    (published,) = desired_subsets(svc(publishNotReadyAddresses=True), candidates)
    assert ips(published["addresses"]) == ["10.244.0.1", "10.244.0.2", "10.244.0.3"]
    assert "notReadyAddresses" not in published


def test_named_target_ports_differing_across_pods_give_several_subsets():
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                         {"name": "metrics", "port": 9100, "protocol": "TCP",
                          "appProtocol": "http"}])
    web = [{"name": "web", "containerPort": 8080}]
    candidates = [pod("a", "10.244.0.1", container_ports=web),
                  pod("b", "10.244.0.2", container_ports=web, ready=False),
                  pod("c", "10.244.0.3", container_ports=[{"name": "web", "containerPort": 9090}]),
                  pod("d", "10.244.0.4")]  # no "web": only the numeric port
    subsets = desired_subsets(service, candidates)
    shape = [(ips(s.get("addresses") or []), ips(s.get("notReadyAddresses") or []),
              [(p.get("name"), p["port"], p.get("appProtocol")) for p in s["ports"]])
             for s in subsets]
    assert shape == [
        (["10.244.0.1"], ["10.244.0.2"], [("http", 8080, None)]),
        (["10.244.0.3"], [], [("http", 9090, None)]),
        (["10.244.0.1", "10.244.0.3", "10.244.0.4"], ["10.244.0.2"],
         [("metrics", 9100, "http")]),
    ]
    # a pod exposing none of the Service's ports is not listed at all
    only_named = svc(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    assert desired_subsets(only_named, [pod("d", "10.244.0.4")]) == []


def test_packing_is_deterministic_whatever_the_pod_order():
    service = svc(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    candidates = [pod(f"p{i}", f"10.244.{i % 3}.{i}", ready=i % 4 != 0,
                      container_ports=[{"name": "web", "containerPort": 8000 + i % 3}])
                  for i in range(1, 40)]
    want = desired_subsets(service, candidates)
    assert len(want) == 3
    for seed in range(5):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert desired_subsets(service, shuffled) == want


def test_hostname_only_when_the_subdomain_names_the_service_and_headless_without_ports():
    headless = svc("web", clusterIP="None", ports=[])
    candidates = [pod("a", "10.244.0.1", hostname="a0", subdomain="web"),
                  pod("b", "10.244.0.2", hostname="b0", subdomain="other")]
    (subset,) = desired_subsets(headless, candidates)
    assert "ports" not in subset
    assert [a.get("hostname") for a in subset["addresses"]] == ["a0", None]
    body = desired_endpoints(headless, candidates, None)
    assert body is not None and body["metadata"]["labels"] == {HEADLESS_LABEL: ""}
    # a Service with an address and no ports lists nothing
    assert desired_subsets(svc(ports=[]), candidates) == []


def test_repack_counts_an_address_ready_once_ready_anywhere_and_keeps_portless_entries():
    a = {"ip": "10.0.0.1", "targetRef": {"uid": "a"}}
    b = {"ip": "10.0.0.2", "targetRef": {"uid": "b"}}
    http = [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert repack_subsets([(a, False, http), (a, True, http), (b, False, http)]) == [
        {"addresses": [a], "notReadyAddresses": [b],
         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]
    assert repack_subsets([(b, True, []), (a, True, [])]) == [{"addresses": [a, b]}]


# -- the 1,000-address cap -----------------------------------------------------------------


def test_over_capacity_truncates_ready_first_and_marks_it_until_back_under():
    many = pods(1100)
    body = desired_endpoints(svc(), many, None)
    assert body is not None
    (subset,) = body["subsets"]
    assert len(subset["addresses"]) == MAX_CAPACITY and "notReadyAddresses" not in subset
    assert body["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] == "truncated"
    # stored as is: a resync writes nothing, although 1,100 pods still match
    assert desired_endpoints(svc(), many, stored(body)) is None

    mixed = pods(900) + pods(300, start=900, ready=False)
    body = desired_endpoints(svc(), mixed, stored(body))
    assert body is not None
    (subset,) = body["subsets"]
    assert (len(subset["addresses"]), len(subset["notReadyAddresses"])) == (900, 100)
    assert body["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] == "truncated"

    body = desired_endpoints(svc(), pods(999), stored(body))
    assert body is not None
    assert OVER_CAPACITY_ANNOTATION not in (body["metadata"].get("annotations") or {})
    assert len(body["subsets"][0]["addresses"]) == 999


def test_truncation_shares_the_cap_between_subsets_in_proportion():
    def subset(n: int, port: int, offset: int) -> dict:
        return {"addresses": [{"ip": f"10.0.{offset + i // 250}.{i % 250}"} for i in range(n)],
                "notReadyAddresses": [{"ip": f"10.9.{offset}.{i}"} for i in range(5)],
                "ports": [{"port": port, "protocol": "TCP"}]}
    cut, truncated = truncate([subset(600, 80, 0), subset(900, 81, 10)], limit=1000)
    assert truncated
    assert [len(s["addresses"]) for s in cut] == [400, 600]
    assert all("notReadyAddresses" not in s for s in cut)
    same, truncated = truncate([subset(10, 80, 0)], limit=1000)
    assert not truncated and same == [subset(10, 80, 0)]


# -- the object: labels, annotations, when to write ---------------------------------------


def test_body_labels_annotations_and_no_write_when_nothing_changed():
    service = svc(labels={"team": "a", HEADLESS_LABEL: ""})
    candidates = [pod("a", "10.244.0.1")]
    body = desired_endpoints(service, candidates, None, trigger_time=T1)
    assert body is not None
    assert body["metadata"] == {"name": "web", "namespace": "default",
                                "labels": {"team": "a"},
                                "annotations": {TRIGGER_TIME_ANNOTATION: T1}}
    assert "ownerReferences" not in body["metadata"]
    current = stored(body)
    # a resync (even with a new trigger time) writes nothing
    assert desired_endpoints(service, candidates, current, trigger_time="2030-01-01T00:00:00Z") \
        is None
    # a new label on the Service is copied
    relabelled = svc(labels={"team": "b"})
    update = desired_endpoints(relabelled, candidates, current)
    assert update is not None and update["metadata"]["labels"] == {"team": "b"}
    assert update["metadata"]["resourceVersion"] == "7"
    assert TRIGGER_TIME_ANNOTATION not in (update["metadata"].get("annotations") or {})
    # a hand edit of the subsets is put back
    edited = copy.deepcopy(current)
    edited["subsets"][0]["addresses"][0]["ip"] = "10.9.9.9"
    assert desired_endpoints(service, candidates, edited)["subsets"] == body["subsets"]


def test_services_without_selector_or_external_name_get_nothing():
    assert desired_endpoints(svc(selector={}), [pod("a")], None) is None
    assert desired_endpoints(svc(type="ExternalName", externalName="example.com"),
                             [pod("a")], None) is None


def test_no_pods_is_an_object_with_no_subsets():
    body = desired_endpoints(svc(), [], None)
    assert body is not None and body["subsets"] == []


# -- last-change-trigger-time --------------------------------------------------------------


def _with_transition(p: dict, at: str) -> dict:
    p["status"]["conditions"][0]["lastTransitionTime"] = at
    return p


def test_trigger_time_is_creation_first_then_the_earliest_change_since_the_last_sync():
    service = svc()
    service["metadata"]["creationTimestamp"] = "2024-05-01T09:00:00Z"
    times = TriggerTimes()
    a = _with_transition(pod("a", "10.244.0.1"), "2024-05-01T09:00:05Z")
    b = _with_transition(pod("b", "10.244.0.2"), "2024-05-01T09:00:06Z")
    assert times.compute("default/web", service, [a, b]) == parse_time("2024-05-01T09:00:00Z")
    assert times.compute("default/web", service, [a, b]) is None  # nothing moved
    b2 = _with_transition(pod("b", "10.244.0.2", ready=False), "2024-05-01T09:01:00Z")
    c = _with_transition(pod("c", "10.244.0.3"), "2024-05-01T09:00:30Z")
    assert times.compute("default/web", service, [a, b2, c]) == parse_time("2024-05-01T09:00:30Z")
    times.forget("default/web")
    assert times.compute("default/web", service, [a]) == parse_time("2024-05-01T09:00:00Z")
