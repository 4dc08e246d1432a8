"""The proxy's change tracker: a change is pending only while its parsed inputs differ
from what the last sync was given."""

from __future__ import annotations

from typing import Any

from nodeagent.proxy.changes import Tracker
from nodeagent.proxy.metrics import Metrics

TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


def service(rv: str, *, port: int = 80, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": "web", "resourceVersion": rv, **meta},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20",
                     "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}}


def endpoint_slice(rv: str, ips: list[str], *, name: str = "web-a",
                   stamp: str | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": name, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": "web"},
                         "annotations": {TRIGGER: stamp} if stamp else {}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip]} for ip in ips]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def synced_tracker() -> Tracker:
    t = Tracker(Metrics(), clock=Clock())
    t.service_added(service("1"))
    t.slice_added(endpoint_slice("1", ["10.244.1.5", "10.244.1.6"]))
    t.take()
    return t


def test_same_ports_under_a_new_resource_version_is_dropped() -> None:
    t = synced_tracker()
    t.service_updated(service("1"), service("2", labels={"team": "a"}))
    assert not t.pending
    assert t.metrics.service_changes == 2  # still counted as an event


def test_same_endpoints_under_a_new_resource_version_is_dropped() -> None:
    t = synced_tracker()
    # the same endpoints in another order: the merged, sorted inputs are equal
    t.slice_updated(endpoint_slice("1", ["10.244.1.5", "10.244.1.6"]),
                    endpoint_slice("2", ["10.244.1.6", "10.244.1.5"]))
    assert not t.pending and t.take() == ({}, [])


def test_a_real_change_is_kept() -> None:
    t = synced_tracker()
    t.service_updated(service("1"), service("2", port=81))
    t.slice_updated(endpoint_slice("1", ["10.244.1.5", "10.244.1.6"]),
                    endpoint_slice("2", ["10.244.1.5"]))
    changes, _ = t.take()
    [(sp, endpoints)] = changes[("demo", "web")]
    assert sp.port == 81 and [e.ip for e in endpoints] == ["10.244.1.5"]


def test_a_change_undone_before_the_sync_is_dropped() -> None:
    t = synced_tracker()
    t.clock.now = 1005.0  # type: ignore[attr-defined]
    t.slice_updated(endpoint_slice("1", ["10.244.1.5", "10.244.1.6"]),
                    endpoint_slice("2", ["10.244.1.5"], stamp="2023-11-14T22:13:20Z"))
    assert t.pending and t.first_queued == 1005.0
    t.slice_updated(endpoint_slice("2", ["10.244.1.5"]),
                    endpoint_slice("3", ["10.244.1.5", "10.244.1.6"]))
    assert not t.pending
    assert t.first_queued == 0.0 and t.metrics.last_queued == 0.0  # health: nothing queued
    assert t.take() == ({}, [])  # its trigger time went with it


def test_a_service_never_synced_is_pending_even_without_rules() -> None:
    t = Tracker(Metrics())
    t.slice_added(endpoint_slice("1", ["10.244.1.5"], stamp="2023-11-14T22:13:20Z"))
    assert t.take() == ({("demo", "web"): ()}, [1700000000.0])


def test_a_resync_with_the_same_version_is_not_parsed_again() -> None:
    t = synced_tracker()
    bad = {**service("1"), "spec": {"clusterIP": "not an ip", "ports": []}}
    t.service_updated(service("1"), bad)  # same resourceVersion: skipped unread
    assert not t.pending and t.metrics.invalid_objects == 0


def test_gone_services_leave_no_memory() -> None:
    t = synced_tracker()
    t.service_deleted(service("1"))
    t.slice_deleted(endpoint_slice("1", []))
    assert t.take()[0] == {("demo", "web"): ()}
    assert t.synced == {} and t.ports == {} and t.endpoints == {}


def test_a_slice_that_changes_service_leaves_both_pending() -> None:
    t = synced_tracker()
    t.service_added({**service("1"), "metadata": {"namespace": "demo", "name": "api",
                                                   "resourceVersion": "1"}})
    t.take()
    moved = endpoint_slice("2", ["10.244.1.5", "10.244.1.6"])
    moved["metadata"]["labels"] = {"kubernetes.io/service-name": "api"}
    t.slice_updated(endpoint_slice("1", ["10.244.1.5", "10.244.1.6"]), moved)
    changes, _ = t.take()
    assert set(changes) == {("demo", "web"), ("demo", "api")}
    assert dict(changes[("demo", "web")])  # still has its port
    assert all(not endpoints for _, endpoints in changes[("demo", "web")])
    assert any(endpoints for _, endpoints in changes[("demo", "api")])
