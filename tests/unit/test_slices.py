"""The pure EndpointSlice computation: which endpoints, how they split, how little changes.

Plans are applied to an in-memory "server" (``apply``) that names and versions
slices as the API server does, so multi-step scenarios check what a real run of
the controller would leave behind, and how many writes it took.
"""

from __future__ import annotations

import copy
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.slices import (
    CONTROLLER_NAME,
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
    SlicePlan,
    desired_slices,
    endpoint_for,
    pod_ports,
    slices_to_delete_for_missing_service,
)

NS = "default"
T1 = "2024-05-01T10:00:00.5Z"
T2 = "2024-05-01T10:00:09Z"


def svc(name: str = "web", *, selector: dict | None = None, uid: str | None = None,
        ports: list | None = None, labels: dict | None = None, ns: str = NS, **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}",
                         "labels": labels or {}},
            "spec": {"selector": {"app": name} if selector is None else selector,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": 8080}] if ports is None else ports,
                     "clusterIP": "10.96.0.20", **spec}}
    return body


def pod(name: str, ip: str | None = "10.244.0.1", *, labels: dict | None = None,
        ready: bool = True, deleting: bool = False, node: str | None = "n1", ns: str = NS,
        container_ports: list | None = None, phase: str = "Running", **spec) -> dict:
    status: dict = {"phase": phase,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    metadata: dict = {"name": name, "namespace": ns, "uid": f"uid-{name}",
                      "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T10:00:30Z"
    containers = [{"name": "main", "image": "x", "ports": container_ports or []}]
    body_spec: dict = {"containers": containers, **spec}
    if node:
        body_spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body_spec,
            "status": status}


def pods(n: int, *, start: int = 0, **kw) -> list[dict]:
    return [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}", **kw) for i in range(start, start + n)]


class Server:
    """Applies plans the way the API server would: names, uids, resourceVersions."""

    def __init__(self) -> None:
        self.slices: dict[str, dict] = {}
        self._rv = itertools.count(100)
        self._names = itertools.count(1)
        self.writes = 0

    def apply(self, plan: SlicePlan) -> None:
        for name in plan.deletes:
            del self.slices[name]
        for body in plan.updates:
            name = body["metadata"]["name"]
            assert name in self.slices, f"update of missing slice {name}"
            assert body["metadata"]["resourceVersion"] == \
                self.slices[name]["metadata"]["resourceVersion"]
            self.slices[name] = self._versioned(copy.deepcopy(body))
        for body in plan.creates:
            obj = copy.deepcopy(body)
            m = obj["metadata"]
            assert "name" not in m
            m["name"] = f"{m.pop('generateName')}{next(self._names):05d}"
            m["uid"] = f"slice-uid-{m['name']}"
            self.slices[m["name"]] = self._versioned(obj)
        self.writes += len(plan.creates) + len(plan.updates) + len(plan.deletes)

    def _versioned(self, obj: dict) -> dict:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return obj

    def list(self) -> list[dict]:
        return list(self.slices.values())

    def sync(self, service: dict, pod_list: list[dict], **kw) -> SlicePlan:
        plan = desired_slices(service, pod_list, self.list(), **kw)
        self.apply(plan)
        return plan


def endpoints_by_address(slices: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s in slices:
        for e in s["endpoints"]:
            address = e["addresses"][0]
            assert address not in out, f"{address} listed twice"
            out[address] = e
    return out


def sizes(slices: list[dict]) -> list[int]:
    return sorted((len(s["endpoints"]) for s in slices), reverse=True)


# -- which pods, which conditions ---------------------------------------------------------


def test_selector_matches_labels_in_the_service_namespace_only():
    candidates = [
        pod("match", "10.244.0.1", labels={"app": "web", "tier": "front"}),
        pod("other-app", "10.244.0.2", labels={"app": "db"}),
        pod("no-labels", "10.244.0.3", labels={}),
        pod("other-ns", "10.244.0.4", ns="prod"),
        pod("no-ip", None),
        pod("done", "10.244.0.5", phase="Succeeded"),
        pod("failed", "10.244.0.6", phase="Failed"),
    ]
    server = Server()
    server.sync(svc(), candidates)
    assert sorted(endpoints_by_address(server.list())) == ["10.244.0.1"]


def test_multi_term_selector_needs_every_term():
    service = svc(selector={"app": "web", "tier": "front"})
    server = Server()
    server.sync(service, [pod("a", "10.244.0.1", labels={"app": "web", "tier": "front"}),
                          pod("b", "10.244.0.2", labels={"app": "web"})])
    assert sorted(endpoints_by_address(server.list())) == ["10.244.0.1"]


@pytest.mark.parametrize(("ready", "deleting", "publish", "expected"), [
    (True, False, False, {"ready": True, "serving": True, "terminating": False}),
    (False, False, False, {"ready": False, "serving": False, "terminating": False}),
    (True, True, False, {"ready": False, "serving": True, "terminating": True}),
    (False, True, False, {"ready": False, "serving": False, "terminating": True}),
    (False, False, True, {"ready": True, "serving": False, "terminating": False}),
    (True, True, True, {"ready": True, "serving": True, "terminating": True}),
])
def test_conditions_follow_readiness_deletion_and_publish_not_ready(ready, deleting, publish,
                                                                     expected):
    service = svc(publishNotReadyAddresses=publish)
    endpoint = endpoint_for(service, pod("p", ready=ready, deleting=deleting))
    assert endpoint is not None
    assert endpoint["conditions"] == expected


def test_pod_without_ready_condition_is_not_ready():
    p = pod("p")
    p["status"]["conditions"] = []
    assert endpoint_for(svc(), p)["conditions"]["ready"] is False


def test_endpoint_carries_node_target_ref_and_hostname_only_for_its_subdomain():
    with_sub = endpoint_for(svc(), pod("a", hostname="a0", subdomain="web"))
    assert with_sub == {
        "addresses": ["10.244.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "hostname": "a0", "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": NS, "name": "a", "uid": "uid-a"}}
    other_sub = endpoint_for(svc(), pod("b", hostname="b0", subdomain="other"))
    assert "hostname" not in other_sub
    unbound = endpoint_for(svc(), pod("c", node=None))
    assert "nodeName" not in unbound


def test_ipv6_only_pods_are_skipped_and_pod_ips_are_searched_for_ipv4():
    v6 = pod("v6", "fd00::1")
    dual = pod("dual", "fd00::2")
    dual["status"]["podIPs"] = [{"ip": "fd00::2"}, {"ip": "10.244.0.9"}]
    assert endpoint_for(svc(), v6) is None
    assert endpoint_for(svc(), dual)["addresses"] == ["10.244.0.9"]


# -- ports -------------------------------------------------------------------------------


def test_named_target_port_is_resolved_per_pod_into_separate_slices():
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                         {"name": "metrics", "port": 9090, "protocol": "TCP",
                          "targetPort": 9090}])
    a = pod("a", "10.244.0.1", container_ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", "10.244.0.2", container_ports=[{"name": "web", "containerPort": 8081}])
    c = pod("c", "10.244.0.3", container_ports=[{"name": "web", "containerPort": 8080}])
    missing = pod("d", "10.244.0.4", container_ports=[{"name": "other", "containerPort": 1}])
    udp = pod("e", "10.244.0.5",
              container_ports=[{"name": "web", "containerPort": 7000, "protocol": "UDP"}])
    server = Server()
    server.sync(service, [a, b, c, missing, udp])
    by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]):
                sorted(e["addresses"][0] for e in s["endpoints"]) for s in server.list()}
    assert by_ports == {
        (("http", 8080), ("metrics", 9090)): ["10.244.0.1", "10.244.0.3"],
        (("http", 8081), ("metrics", 9090)): ["10.244.0.2"],
        (("metrics", 9090),): ["10.244.0.4", "10.244.0.5"],
    }


def test_ports_carry_protocol_and_app_protocol_and_default_to_the_service_port():
    service = svc(ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                         {"name": "grpc", "port": 443, "protocol": "TCP", "targetPort": 8443,
                          "appProtocol": "h2c"}])
    assert pod_ports(service, pod("p")) == (("dns", "UDP", 53, ""), ("grpc", "TCP", 8443, "h2c"))
    plan = desired_slices(service, [pod("p")], [])
    assert plan.creates[0]["ports"] == [
        {"name": "dns", "protocol": "UDP", "port": 53},
        {"name": "grpc", "protocol": "TCP", "port": 8443, "appProtocol": "h2c"}]


# -- the split -----------------------------------------------------------------------------


def test_250_pods_make_three_slices_of_at_most_100():
    server = Server()
    plan = server.sync(svc(), pods(250))
    assert len(plan.creates) == 3 and not plan.updates and not plan.deletes
    assert sizes(server.list()) == [100, 100, 50]
    assert len(endpoints_by_address(server.list())) == 250


def test_max_endpoints_per_slice_is_honoured():
    server = Server()
    server.sync(svc(), pods(25), max_endpoints=10)
    assert sizes(server.list()) == [10, 10, 5]


def test_lowering_the_limit_splits_existing_slices():
    server = Server()
    server.sync(svc(), pods(30))
    server.sync(svc(), pods(30), max_endpoints=10)
    assert sizes(server.list()) == [10, 10, 10]


def test_endpoints_in_a_slice_are_sorted_by_address_numerically():
    server = Server()
    server.sync(svc(), [pod("a", "10.244.0.10"), pod("b", "10.244.0.9"),
                        pod("c", "10.244.1.1")])
    (only,) = server.list()
    assert [e["addresses"][0] for e in only["endpoints"]] == ["10.244.0.9", "10.244.0.10",
                                                             "10.244.1.1"]


# -- minimal churn --------------------------------------------------------------------------


def test_an_unchanged_world_plans_nothing():
    server = Server()
    server.sync(svc(), pods(250), trigger_time=T1)
    again = desired_slices(svc(), pods(250), server.list(), trigger_time=T2)
    assert again.empty


def test_readiness_flip_updates_only_the_slice_holding_that_pod():
    server = Server()
    world = pods(250)
    server.sync(svc(), world, trigger_time=T1)
    before = copy.deepcopy(server.slices)
    world[137] = pod("p137", world[137]["status"]["podIP"], ready=False)
    plan = server.sync(svc(), world, trigger_time=T2)
    assert not plan.creates and not plan.deletes and len(plan.updates) == 1
    (changed,) = plan.updates
    assert "10.244.0.138" in [e["addresses"][0] for e in changed["endpoints"]]
    assert changed["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] == T2
    for name, old in before.items():
        if name != changed["metadata"]["name"]:
            assert server.slices[name] == old  # untouched, trigger time too


def test_new_pod_fills_the_slice_with_room_instead_of_creating_one():
    server = Server()
    world = pods(250)
    server.sync(svc(), world)
    world.append(pod("extra", "10.244.9.9"))
    plan = server.sync(svc(), world)
    assert not plan.creates and len(plan.updates) == 1
    assert sizes(server.list()) == [100, 100, 51]


def test_removing_a_pod_is_one_update_and_emptying_a_slice_deletes_it():
    server = Server()
    world = pods(150)
    server.sync(svc(), world)
    plan = server.sync(svc(), world[1:])
    assert (len(plan.creates), len(plan.updates), len(plan.deletes)) == (0, 1, 0)
    plan = server.sync(svc(), world[100:])  # every endpoint of the first slice gone
    assert (len(plan.creates), len(plan.updates), len(plan.deletes)) == (0, 0, 1)
    assert sizes(server.list()) == [50]


def test_remainder_goes_into_the_fullest_unchanged_slice_that_fits():
    server = Server()
    server.sync(svc(), pods(60), max_endpoints=100)
    server.sync(svc(), pods(60) + pods(70, start=60), max_endpoints=100)
    assert sizes(server.list()) == [70, 60]  # 70 didn't fit the 60-slice: one create
    plan = server.sync(svc(), pods(60) + pods(70, start=60) + pods(25, start=130))
    assert len(plan.updates) == 1 and not plan.creates
    assert sizes(server.list()) == [95, 60]  # the fuller one that still fits


def test_a_changed_slice_is_topped_up_before_anything_else_is_touched():
    server = Server()
    world = pods(150)
    server.sync(svc(), world)
    world[3] = pod("p3", world[3]["status"]["podIP"], ready=False)  # slice 1 changes anyway
    world = world[:10] + world[11:]  # and loses one endpoint
    world += pods(1, start=500)
    plan = server.sync(svc(), world)
    assert len(plan.updates) == 1 and not plan.creates
    assert sizes(server.list()) == [100, 50]


def test_port_change_updates_slices_in_place():
    server = Server()
    server.sync(svc(), pods(150))
    moved = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9000}])
    plan = server.sync(moved, pods(150))
    assert not plan.creates and not plan.deletes and len(plan.updates) == 2
    assert {s["ports"][0]["port"] for s in server.list()} == {9000}
    assert desired_slices(moved, pods(150), server.list()).empty


def test_service_label_change_rewrites_slice_labels():
    server = Server()
    server.sync(svc(), pods(3))
    plan = server.sync(svc(labels={"team": "a"}), pods(3))
    assert len(plan.updates) == 1
    assert server.list()[0]["metadata"]["labels"]["team"] == "a"


def test_duplicate_endpoint_across_slices_is_removed_from_one():
    server = Server()
    server.sync(svc(), pods(3))
    (first,) = server.list()
    twin = copy.deepcopy(first)
    twin["metadata"].update(name="web-twin", resourceVersion="1")
    server.slices["web-twin"] = twin
    plan = server.sync(svc(), pods(3))
    assert plan.deletes == ("web-twin",) and not plan.updates and not plan.creates
    assert len(endpoints_by_address(server.list())) == 3


# -- placeholder, ownership ---------------------------------------------------------------


def test_service_without_pods_gets_one_empty_placeholder_then_it_is_reused():
    server = Server()
    plan = server.sync(svc(), [])
    assert len(plan.creates) == 1
    (placeholder,) = server.list()
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    assert desired_slices(svc(), [], server.list()).empty
    plan = server.sync(svc(), pods(2))
    assert not plan.creates and not plan.deletes and len(plan.updates) == 1
    assert server.list()[0]["metadata"]["name"] == placeholder["metadata"]["name"]
    plan = server.sync(svc(), [])  # all gone again: back to a placeholder, same slice
    assert (len(plan.creates), len(plan.updates), len(plan.deletes)) == (0, 1, 0)
    assert server.list()[0]["endpoints"] == [] and server.list()[0]["ports"] == []


def test_many_slices_collapse_to_one_placeholder():
    server = Server()
    server.sync(svc(), pods(250))
    plan = server.sync(svc(), [])
    assert (len(plan.creates), len(plan.updates), len(plan.deletes)) == (0, 1, 2)


def test_written_slices_are_labelled_owned_and_annotated():
    service = svc(labels={"team": "a", SERVICE_NAME_LABEL: "spoof"}, clusterIP="None")
    plan = desired_slices(service, pods(1), [], trigger_time=T1)
    (body,) = plan.creates
    assert body["metadata"]["generateName"] == "web-"
    assert body["metadata"]["namespace"] == NS
    assert body["metadata"]["labels"] == {"team": "a", SERVICE_NAME_LABEL: "web",
                                          MANAGED_BY_LABEL: CONTROLLER_NAME,
                                          HEADLESS_LABEL: ""}
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
         "controller": True, "blockOwnerDeletion": True}]
    assert body["metadata"]["annotations"] == {TRIGGER_TIME_ANNOTATION: T1}
    assert body["addressType"] == "IPv4"


def test_slices_of_other_managers_are_left_alone():
    hand_made = {"metadata": {"name": "web-by-hand", "namespace": NS,
                              "labels": {SERVICE_NAME_LABEL: "web",
                                         MANAGED_BY_LABEL: "someone-else"}},
                 "addressType": "IPv4", "endpoints": [], "ports": []}
    plan = desired_slices(svc(), pods(2), [hand_made])
    assert len(plan.creates) == 1 and not plan.updates and not plan.deletes
    assert desired_slices(svc(selector={}), [], [hand_made]).empty


def test_managed_slices_of_an_earlier_service_of_that_name_are_replaced():
    server = Server()
    server.sync(svc(uid="old"), pods(2))
    plan = server.sync(svc(uid="new"), pods(2))
    assert len(plan.creates) == 1 and len(plan.deletes) == 1
    assert [s["metadata"]["ownerReferences"][0]["uid"] for s in server.list()] == ["new"]


def test_service_without_selector_is_left_alone_except_for_slices_it_owned():
    kubernetes = svc("kubernetes", selector={}, ports=[{"name": "https", "port": 443}])
    manual = {"metadata": {"name": "kubernetes", "namespace": NS,
                           "labels": {SERVICE_NAME_LABEL: "kubernetes",
                                      MANAGED_BY_LABEL: CONTROLLER_NAME}},
              "addressType": "IPv4", "endpoints": [], "ports": []}
    assert desired_slices(kubernetes, pods(3), [manual]).empty
    server = Server()
    server.sync(svc(), pods(2))
    plan = desired_slices(svc(selector={}), pods(2), server.list())
    assert plan.deletes == tuple(server.slices) and not plan.creates


def test_external_name_service_gets_no_slices():
    service = svc(type="ExternalName", externalName="example.com")
    assert desired_slices(service, pods(2), []).empty


def test_deleted_service_loses_only_its_owned_managed_slices():
    server = Server()
    server.sync(svc(), pods(150))
    other = {"metadata": {"name": "web-by-hand", "namespace": NS,
                          "labels": {SERVICE_NAME_LABEL: "web",
                                     MANAGED_BY_LABEL: "someone-else"}}}
    plan = slices_to_delete_for_missing_service(NS, "web", [*server.list(), other])
    assert plan.deletes == tuple(sorted(server.slices))
    assert slices_to_delete_for_missing_service("prod", "web", server.list()).empty


def test_plan_is_the_same_whatever_order_the_inputs_come_in():
    server = Server()
    world = pods(180)
    server.sync(svc(), world[:120])
    existing = server.list()
    reference = desired_slices(svc(), world, existing, trigger_time=T1)
    rng = random.Random(7)
    for _ in range(5):
        shuffled_pods, shuffled_slices = world[:], existing[:]
        rng.shuffle(shuffled_pods)
        rng.shuffle(shuffled_slices)
        assert desired_slices(svc(), shuffled_pods, shuffled_slices,
                              trigger_time=T1) == reference


# -- convergence, as a property -------------------------------------------------------------


@st.composite
def worlds(draw):
    """A sequence of pod populations (each a list of (index, ready, deleting, port))."""
    steps = draw(st.lists(
        st.lists(st.tuples(st.integers(0, 60), st.booleans(), st.booleans(),
                           st.sampled_from([8080, 8081])), max_size=40),
        min_size=1, max_size=5))
    limit = draw(st.integers(1, 12))
    return steps, limit


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_any_history_converges_to_exactly_the_desired_endpoints(case):
    steps, limit = case
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    server = Server()
    for step in steps:
        seen: dict[int, dict] = {}
        for index, ready, deleting, port in step:
            seen[index] = pod(f"p{index}", f"10.244.0.{index + 1}", ready=ready,
                              deleting=deleting,
                              container_ports=[{"name": "web", "containerPort": port}])
        world = list(seen.values())
        server.sync(service, world, max_endpoints=limit)
        listed = endpoints_by_address(server.list())  # no address twice
        assert set(listed) == {p["status"]["podIP"] for p in world}
        for s in server.list():
            assert len(s["endpoints"]) <= limit
            for e in s["endpoints"]:
                assert s["ports"][0]["port"] == next(
                    p["spec"]["containers"][0]["ports"][0]["containerPort"]
                    for p in world if p["status"]["podIP"] == e["addresses"][0])
        if not world:
            assert len(server.list()) == 1  # the placeholder
        assert desired_slices(service, world, server.list(), max_endpoints=limit).empty
