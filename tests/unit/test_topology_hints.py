"""Endpoint zones and topology hints (``controllers.hints``), as Kubernetes' trafficdist
and topologycache heuristics write them, and through ``desired_slices``."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery.kinds import NODE, POD, SERVICE
from controllers import hints
from controllers.hints import Capacity, Mode, allocations, apply_hints, hint_mode, zone_capacity
from controllers.slices import desired_slices
from tests.unit import test_controllers_wiring as wiring
from tests.unit.kindhooks import validate
from tests.unit.test_slices import pod, svc
from tests.unit.test_validation import found, valid_service


def node(name: str, zone: str | None, *, cpu: str = "4", ready: bool = True,
         labels: dict[str, str] | None = None) -> dict[str, Any]:
    all_labels = dict(labels or {})
    if zone is not None:
        all_labels[hints.ZONE_LABEL] = zone
    return {"metadata": {"name": name, "labels": all_labels},
            "status": {"allocatable": {"cpu": cpu},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def ep(ip: str, zone: str | None = None, *, ready: bool = True, node_name: str = "",
       **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}, **extra}
    if zone:
        e["zone"] = zone
    if node_name:
        e["nodeName"] = node_name
    return e


def zones_hinted(endpoints: dict[str, dict[str, Any]]) -> dict[str, list[str] | None]:
    return {a: [z["name"] for z in e["hints"]["forZones"]] if "hints" in e else None
            for a, e in endpoints.items()}


@pytest.mark.parametrize(("annotations", "distribution", "mode"), [
    ({}, None, Mode.NONE),
    ({}, "PreferClose", Mode.SAME_ZONE),
    ({}, "PreferSameZone", Mode.SAME_ZONE),
    ({}, "PreferSameNode", Mode.SAME_NODE),
    ({}, "Elsewhere", Mode.NONE),
    ({hints.TOPOLOGY_MODE_ANNOTATION: "Auto"}, None, Mode.AUTO),
    ({hints.TOPOLOGY_MODE_ANNOTATION: "auto"}, "PreferClose", Mode.AUTO),  # the annotation wins
    ({hints.TOPOLOGY_MODE_ANNOTATION: "AUTO"}, None, Mode.NONE),  # only Auto or auto
    ({hints.TOPOLOGY_MODE_ANNOTATION: "Disabled"}, "PreferClose", Mode.SAME_ZONE),
    ({hints.TOPOLOGY_HINTS_ANNOTATION: "Auto"}, None, Mode.AUTO),
    # the deprecated annotation, when present, decides alone
    ({hints.TOPOLOGY_HINTS_ANNOTATION: "Disabled", hints.TOPOLOGY_MODE_ANNOTATION: "Auto"},
     "PreferClose", Mode.SAME_ZONE),
])
def test_hint_mode(annotations: dict[str, str], distribution: str | None, mode: Mode) -> None:
    service = svc()
    if distribution:
        service["spec"]["trafficDistribution"] = distribution
    service["metadata"]["annotations"] = annotations
    assert hint_mode(service) is mode


def test_prefer_close_hints_each_ready_endpoint_for_its_own_zone() -> None:
    endpoints = {"10.0.0.1": ep("10.0.0.1", "a"), "10.0.0.2": ep("10.0.0.2", "b"),
                 "10.0.0.3": ep("10.0.0.3", "a", ready=False),
                 "10.0.0.4": ep("10.0.0.4", None),
                 "10.0.0.5": ep("10.0.0.5", "b", hints={"forZones": [{"name": "a"}]})}
    out, why = apply_hints(Mode.SAME_ZONE, endpoints, Capacity({}))
    assert why == ""
    assert zones_hinted(out) == {"10.0.0.1": ["a"], "10.0.0.2": ["b"], "10.0.0.3": None,
                                 "10.0.0.4": None, "10.0.0.5": ["b"]}
    assert "hints" in endpoints["10.0.0.5"] and "hints" not in endpoints["10.0.0.1"], \
        "the input is not changed"


def test_prefer_same_node_adds_a_node_hint() -> None:
    out, _ = apply_hints(Mode.SAME_NODE, {"10.0.0.1": ep("10.0.0.1", "a", node_name="n1"),
                                          "10.0.0.2": ep("10.0.0.2", None, node_name="n2")},
                         Capacity({}))
    assert out["10.0.0.1"]["hints"] == {"forZones": [{"name": "a"}], "forNodes": [{"name": "n1"}]}
    assert out["10.0.0.2"]["hints"] == {"forNodes": [{"name": "n2"}]}


def test_no_mode_removes_stale_hints() -> None:
    out, _ = apply_hints(Mode.NONE, {"10.0.0.1": ep("10.0.0.1", "a",
                                                    hints={"forZones": [{"name": "a"}]})},
                         Capacity({}))
    assert out == {"10.0.0.1": ep("10.0.0.1", "a")}


def test_zone_capacity_counts_ready_worker_nodes_cpu() -> None:
    capacity = zone_capacity([
        node("n1", "a", cpu="3"), node("n2", "b", cpu="500m"), node("n3", "b", cpu="500m"),
        node("cp", None, labels={"node-role.kubernetes.io/control-plane": ""}),
        node("down", None, ready=False)])
    assert capacity == Capacity({"a": 0.75, "b": 0.25})


@pytest.mark.parametrize(("nodes", "why"), [
    ([node("n1", "a"), node("n2", None)], "node n2 has no zone"),
    ([node("n1", "a"), node("n2", "b", cpu="0")], "node n2 has no zone or CPU"),
    ([node("n1", "a"), node("n2", "a")], "fewer than two zones"),
    ([node("n1", "a"), node("n2", "b", ready=False)], "fewer than two zones"),
])
def test_zone_capacity_gives_up_without_enough_node_info(nodes: list[dict[str, Any]],
                                                         why: str) -> None:
    capacity = zone_capacity(nodes)
    assert capacity.ratios == {} and why in capacity.why


def test_allocations_respect_the_overload_threshold() -> None:
    allotted, why = allocations(Capacity({"a": 0.5, "b": 0.5}), 4)
    assert why == ""
    assert allotted == {"a": hints.Allocation(minimum=2, maximum=2, desired=2.0),
                        "b": hints.Allocation(minimum=2, maximum=2, desired=2.0)}
    allotted, _ = allocations(Capacity({"a": 0.75, "b": 0.25}), 10)
    # a: 7.5 wanted, at least ceil(7.5/1.2) = 7; b: 2.5, at least 3; 0 spare
    assert allotted["a"] == hints.Allocation(minimum=7, maximum=7, desired=7.5)
    assert allotted["b"] == hints.Allocation(minimum=3, maximum=3, desired=3.0)
    assert "insufficient number of endpoints" in allocations(Capacity({"a": .5, "b": .5}), 1)[1]
    # 1 CPU against 9: with 2 endpoints, a needs 1 and b needs ceil(1.8/1.2) = 2
    assert "overload threshold" in allocations(Capacity({"a": 0.1, "b": 0.9}), 2)[1]


def test_auto_donates_the_surplus_of_an_over_served_zone() -> None:
    endpoints = {f"10.0.0.{i}": ep(f"10.0.0.{i}", zone) for i, zone in
                 enumerate(["a", "a", "a", "b"], start=1)}
    out, why = apply_hints(Mode.AUTO, endpoints, Capacity({"a": 0.5, "b": 0.5}))
    assert why == ""
    assert zones_hinted(out) == {"10.0.0.1": ["b"], "10.0.0.2": ["a"], "10.0.0.3": ["a"],
                                 "10.0.0.4": ["b"]}


def test_auto_balanced_zones_keep_their_own_endpoints() -> None:
    endpoints = {f"10.0.0.{i}": ep(f"10.0.0.{i}", zone) for i, zone in
                 enumerate(["a", "b", "a", "b"], start=1)}
    endpoints["10.0.0.9"] = ep("10.0.0.9", "a", ready=False)
    out, _ = apply_hints(Mode.AUTO, endpoints, Capacity({"a": 0.5, "b": 0.5}))
    assert zones_hinted(out) == {"10.0.0.1": ["a"], "10.0.0.2": ["b"], "10.0.0.3": ["a"],
                                 "10.0.0.4": ["b"], "10.0.0.9": None}


@pytest.mark.parametrize(("zones", "capacity", "why"), [
    (["a", "b", "a", None], Capacity({"a": .5, "b": .5}), "do not have a zone"),
    (["a"], Capacity({"a": .5, "b": .5}), "insufficient number of endpoints"),
    (["a", "b"], Capacity({}, "ready nodes in fewer than two zones"), "fewer than two zones"),
    (["a", "b"], Capacity({"a": 0.1, "b": 0.9}), "overload threshold"),
])
def test_auto_is_all_or_nothing(zones: list[str | None], capacity: Capacity, why: str) -> None:
    endpoints = {f"10.0.0.{i}": ep(f"10.0.0.{i}", zone, hints={"forZones": [{"name": "x"}]})
                 for i, zone in enumerate(zones, start=1)}
    out, reason = apply_hints(Mode.AUTO, endpoints, capacity)
    assert why in reason
    assert all("hints" not in e for e in out.values())


# -- through desired_slices ----------------------------------------------------------------

NODES = {"n1": node("n1", "a"), "n2": node("n2", "b")}


def _endpoints(plan_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["addresses"][0]: e for e in plan_body["endpoints"]}


def test_slices_carry_the_node_zone_and_prefer_close_hints() -> None:
    service = svc(trafficDistribution="PreferClose")
    pods = [pod("p1", "10.244.0.1", node="n1"), pod("p2", "10.244.1.1", node="n2"),
            pod("p3", "10.244.1.2", node="n3"), pod("p4", "10.244.0.2", node="n1", ready=False)]
    plan = desired_slices(service, pods, [], nodes=NODES)
    (body,) = plan.creates
    got = _endpoints(body)
    assert {a: e.get("zone") for a, e in got.items()} == {
        "10.244.0.1": "a", "10.244.0.2": "a", "10.244.1.1": "b", "10.244.1.2": None}
    assert zones_hinted(got) == {"10.244.0.1": ["a"], "10.244.0.2": None,
                                 "10.244.1.1": ["b"], "10.244.1.2": None}
    # written as it is planned, the next sync has nothing to do
    body["metadata"]["name"] = "web-1"
    assert desired_slices(service, pods, [body], nodes=NODES).empty


def test_turning_prefer_close_on_and_off_rewrites_the_slice() -> None:
    pods = [pod("p1", "10.244.0.1", node="n1")]
    (body,) = desired_slices(svc(), pods, [], nodes=NODES).creates
    body["metadata"]["name"] = "web-1"
    assert "hints" not in body["endpoints"][0] and body["endpoints"][0]["zone"] == "a"
    (updated,) = desired_slices(svc(trafficDistribution="PreferClose"), pods, [body],
                                nodes=NODES).updates
    assert updated["endpoints"][0]["hints"] == {"forZones": [{"name": "a"}]}
    (cleared,) = desired_slices(svc(), pods, [updated], nodes=NODES).updates
    assert "hints" not in cleared["endpoints"][0]


def test_a_node_zone_change_reaches_the_slice() -> None:
    service = svc(trafficDistribution="PreferClose")
    pods = [pod("p1", "10.244.0.1", node="n1")]
    (body,) = desired_slices(service, pods, [], nodes=NODES).creates
    body["metadata"]["name"] = "web-1"
    (updated,) = desired_slices(service, pods, [body], nodes={"n1": node("n1", "c")}).updates
    assert updated["endpoints"][0]["zone"] == "c"
    assert updated["endpoints"][0]["hints"] == {"forZones": [{"name": "c"}]}


def test_auto_through_desired_slices_says_why_it_gave_no_hints() -> None:
    service = svc()
    service["metadata"]["annotations"] = {hints.TOPOLOGY_MODE_ANNOTATION: "Auto"}
    pods = [pod("p1", "10.244.0.1", node="n1"), pod("p2", "10.244.1.1", node="n2")]
    plan = desired_slices(service, pods, [], nodes=NODES)
    assert plan.no_hints == ""
    assert zones_hinted(_endpoints(plan.creates[0])) == {"10.244.0.1": ["a"],
                                                         "10.244.1.1": ["b"]}
    plan = desired_slices(service, pods[:1], [], nodes=NODES)
    assert "insufficient number of endpoints" in plan.no_hints
    assert "hints" not in plan.creates[0]["endpoints"][0]


@pytest.mark.parametrize(("value", "errors"), [
    ("PreferClose", []), ("PreferSameZone", []), ("PreferSameNode", []),
    ("Elsewhere", [("spec.trafficDistribution", "FieldValueNotSupported")]),
])
def test_the_api_accepts_only_known_traffic_distributions(value: object,
                                                          errors: list[tuple[str, str]]) -> None:
    assert found(validate("Service", valid_service(trafficDistribution=value))) == errors


# -- the controller's reaction to Node changes ---------------------------------------------


def test_node_topology_changes_queue_the_services_that_depend_on_them() -> None:
    api = wiring.FakeApi()
    controller, informers = wiring.make_slices(api, wiring.Clock(), wiring.Clock())
    auto = wiring.service("auto")
    auto["metadata"]["annotations"] = {hints.TOPOLOGY_MODE_ANNOTATION: "Auto"}
    for svc_ in (wiring.service("web"), wiring.service("db"), auto):
        wiring.deliver(informers.get(SERVICE), "ADDED", svc_)
    wiring.deliver(informers.get(POD), "ADDED", wiring.pod("w1", app="web", node="n1"))
    wiring.deliver(informers.get(POD), "ADDED", wiring.pod("d1", app="db", node="n2"))
    n1 = wiring.node("n1")
    wiring.deliver(informers.get(NODE), "ADDED", n1)
    wiring.run(wiring._drain(controller.queue))

    heartbeat = wiring.versioned(n1)
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "hb-2"
    wiring.deliver(informers.get(NODE), "MODIFIED", heartbeat)
    assert wiring.run(wiring._drain(controller.queue)) == []

    zoned = wiring.versioned(heartbeat)
    zoned["metadata"]["labels"] = {hints.ZONE_LABEL: "a"}
    wiring.deliver(informers.get(NODE), "MODIFIED", zoned)
    assert sorted(wiring.run(wiring._drain(controller.queue))) == ["default/auto",
                                                                   "default/web"]
    wiring.run(controller.sync("default/web"))
    (body,) = api.bodies
    assert body["endpoints"][0]["zone"] == "a"
