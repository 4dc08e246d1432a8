"""dnsd.model and dnsd.zone: trimming API objects, merging slices, and what counts as a change."""

from __future__ import annotations

import pytest

from dnsd.model import (
    Endpoint,
    Port,
    ServiceInfo,
    ServiceKind,
    SliceInfo,
    creation_time,
    merge_endpoints,
    parse_timestamp,
    service_from_object,
    slice_from_object,
)
from dnsd.zone import Changes, ZoneData

HTTP = Port("http", "tcp", 80)


def svc(name: str = "web", ns: str = "default", **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
            "spec": spec, "status": {"loadBalancer": {}}}


def eps(name: str, service: str, endpoints: list[dict], *, ns: str = "default",
        address_type: str = "IPv4", ports: list[dict] | None = None,
        annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service},
                         "annotations": annotations or {}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 80,
                                                       "protocol": "TCP"}]}


@pytest.mark.parametrize(("obj", "expected"), [
    (svc(type="ClusterIP", clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"],
         ports=[{"name": "HTTP", "port": 80, "protocol": "TCP", "targetPort": 8080}]),
     ServiceInfo("default", "web", ServiceKind.CLUSTER_IP, ("10.96.0.5",), (HTTP,))),
    (svc(type="NodePort", clusterIPs=["10.96.0.5", "fd00::5"], ports=[{"port": 80}]),
     ServiceInfo("default", "web", ServiceKind.CLUSTER_IP, ("10.96.0.5", "fd00::5"),
                 (Port("", "tcp", 80),))),
    (svc(clusterIP="None", clusterIPs=["None"], publishNotReadyAddresses=True),
     ServiceInfo("default", "web", ServiceKind.HEADLESS, publish_not_ready=True)),
    (svc(type="ExternalName", externalName="Example.COM."),
     ServiceInfo("default", "web", ServiceKind.EXTERNAL_NAME, external_name="example.com")),
    (svc(), ServiceInfo("default", "web", ServiceKind.CLUSTER_IP)),
    (svc(clusterIP="garbage"), ServiceInfo("default", "web", ServiceKind.CLUSTER_IP)),
])
def test_service_from_object(obj: dict, expected: ServiceInfo) -> None:
    assert service_from_object(obj) == expected


def test_slice_from_object() -> None:
    obj = eps("web-1", "web", [
        {"addresses": ["10.244.0.5"], "hostname": "Web-0", "conditions": {"ready": True}},
        {"addresses": ["10.244.0.6"], "conditions": {}},
        {"addresses": ["10.244.0.7"], "conditions": {"ready": False}},
        {"addresses": ["not-an-ip", 5]},
    ], annotations={"endpoints.kubernetes.io/last-change-trigger-time":
                    "2024-01-02T03:04:05.123456789Z"})
    info = slice_from_object(obj)
    assert info.service_key == ("default", "web")
    assert info.endpoints == (Endpoint("10.244.0.5", "web-0", True, (HTTP,)),
                              Endpoint("10.244.0.6", "", True, (HTTP,)),
                              Endpoint("10.244.0.7", "", False, (HTTP,)))
    assert info.trigger_time == pytest.approx(1704164645.123456789)


def test_fqdn_and_unlabelled_slices() -> None:
    fqdn = slice_from_object(eps("x", "web", [{"addresses": ["db.example.com"]}],
                                 address_type="FQDN"))
    assert fqdn.endpoints == ()
    bare = slice_from_object({"metadata": {"name": "x"}, "addressType": "IPv6",
                              "endpoints": [{"addresses": ["FD00::0001"]}]})
    assert bare.service == "" and bare.endpoints == (Endpoint("fd00::1"),)


def test_merge_publishes_ready_or_all_when_asked() -> None:
    slices = [SliceInfo("default", "b", "web", (Endpoint("10.0.0.2", ready=False),)),
              SliceInfo("default", "a", "web", (Endpoint("10.0.0.1", "h"),))]
    headless = ServiceInfo("default", "web", ServiceKind.HEADLESS)
    merged = merge_endpoints(headless, slices)
    assert merged.published == (Endpoint("10.0.0.1", "h"),)
    assert set(merged.by_label) == {"h"} and set(merged.by_address) == {"10.0.0.1"}
    publishing = ServiceInfo("default", "web", ServiceKind.HEADLESS, publish_not_ready=True)
    assert [e.address for e in merge_endpoints(publishing, slices).published] == [
        "10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-02T03:04:05Z", 1704164645.0),
    ("2024-01-02T03:04:05.5Z", 1704164645.5),
    ("2024-01-02T04:04:05.25+01:00", 1704164645.25),
    ("2024-01-02 03:04:05Z", None),
    ("yesterday", None),
    (None, None),
    (12, None),
])
def test_parse_timestamp(text: object, expected: float | None) -> None:
    assert parse_timestamp(text) == (pytest.approx(expected) if expected else None)


def test_creation_time_needs_sub_second_precision() -> None:
    assert creation_time({"metadata": {"creationTimestamp": "2024-01-02T03:04:05Z"}}) is None
    assert creation_time({"metadata": {"creationTimestamp": "2024-01-02T03:04:05.5Z"}}) \
        == pytest.approx(1704164645.5)


# -- zone bookkeeping ------------------------------------------------------------------


def test_no_op_writes_report_nothing() -> None:
    zone = ZoneData(("cluster", "local"))
    web = service_from_object(svc(clusterIPs=["10.96.0.5"], ports=[{"name": "http",
                                                                     "port": 80}]))
    assert zone.put_service(web) == Changes(services=frozenset({("default", "web")}),
                                            ips=frozenset({"10.96.0.5"}),
                                            namespaces=frozenset({"default"}))
    relabelled = svc(clusterIPs=["10.96.0.5"], ports=[{"name": "http", "port": 80}])
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert zone.put_service(service_from_object(relabelled)) is None
    ready = slice_from_object(eps("web-1", "web", [{"addresses": ["10.244.0.5"]}]))
    assert zone.put_slice(ready) is not None
    assert zone.put_slice(ready) is None
    # a new trigger time alone changes no answer
    stamped = slice_from_object(eps("web-1", "web", [{"addresses": ["10.244.0.5"]}],
                                    annotations={"endpoints.kubernetes.io/last-change-"
                                                 "trigger-time": "2024-01-02T03:04:05Z"}))
    assert zone.put_slice(stamped) is None
    assert zone.delete_service(("default", "nope")) is None
    assert zone.delete_slice(("default", "nope")) is None


def test_headless_endpoints_own_their_ips() -> None:
    zone = ZoneData(("cluster", "local"))
    zone.put_service(ServiceInfo("default", "db", ServiceKind.HEADLESS))
    changes = zone.put_slice(SliceInfo("default", "db-1", "db", (Endpoint("10.244.0.5"),)))
    assert changes == Changes(services=frozenset({("default", "db")}),
                              ips=frozenset({"10.244.0.5"}))
    assert zone.ip_owners("10.244.0.5") == [("default", "db")]
    # the slice moves to another Service: both are affected, the IP changes owner
    changes = zone.put_slice(SliceInfo("default", "db-1", "other", (Endpoint("10.244.0.5"),)))
    assert changes is not None and changes.services == {("default", "db"), ("default", "other")}
    assert zone.ip_owners("10.244.0.5") == []
    zone.put_service(ServiceInfo("default", "other", ServiceKind.HEADLESS))
    assert zone.ip_owners("10.244.0.5") == [("default", "other")]
    assert zone.delete_slice(("default", "db-1")) is not None
    assert zone.ip_owners("10.244.0.5") == [] and zone.known_ips() == []


def test_namespace_exists_by_object_or_service() -> None:
    zone = ZoneData(("cluster", "local"))
    assert not zone.namespace_exists("team")
    zone.put_service(ServiceInfo("team", "web", ServiceKind.CLUSTER_IP, ("10.96.0.9",)))
    assert zone.namespace_exists("team")
    zone.delete_service(("team", "web"))
    assert not zone.namespace_exists("team")
    assert zone.put_namespace("team") == Changes(namespaces=frozenset({"team"}))
    assert zone.put_namespace("team") is None
    assert zone.namespace_exists("team")
    assert zone.delete_namespace("team") is not None
    assert not zone.namespace_exists("team")


def test_dns_service_change_touches_the_apex() -> None:
    zone = ZoneData(("cluster", "local"))
    changes = zone.put_service(ServiceInfo("kube-system", "kube-dns", ServiceKind.CLUSTER_IP,
                                           ("10.96.0.10",)))
    assert changes is not None and changes.apex
