"""The lease endpoint reconciler's pure part (``apiserver.peers``): identity Leases +
now → the ``kubernetes`` Service's EndpointSlices, and the writes that get there."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from apimachinery import names
from apiserver import peers
from apiserver.peers import Identity, Peer
from apiserver.services import kubernetes_endpoint_slice

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease(address: str, port: int = 6443, *, renewed: float = 0.0, duration: int = 15,
          hostname: str = "h") -> dict:
    """The Lease server ``address:port`` wrote ``renewed`` seconds before NOW."""
    return peers.lease_body(Identity(hostname, address, port), "x_1", duration,
                            NOW - timedelta(seconds=renewed), None)


def addresses(slice_: dict) -> list[str]:
    return [a for e in slice_["endpoints"] for a in e["addresses"]]


# -- the Lease a server keeps -------------------------------------------------------------


def test_lease_name_is_stable_distinct_and_a_valid_name() -> None:
    a = Identity("host-1", "192.0.2.1", 6443)
    assert a.lease_name == Identity("host-1", "192.0.2.1", 6443).lease_name
    others = {Identity("host-2", "192.0.2.1", 6443), Identity("host-1", "192.0.2.2", 6443),
              Identity("host-1", "192.0.2.1", 6444)}
    assert a.lease_name not in {o.lease_name for o in others}
    assert a.lease_name.startswith("apiserver-") and not names.is_dns1123_subdomain(a.lease_name)


def test_lease_body_records_identity_address_and_port() -> None:
    who = Identity("host-1", "192.0.2.1", 6443)
    body = peers.lease_body(who, "holder_1", 2.5, NOW, None)
    assert body["apiVersion"] == "coordination.k8s.io/v1" and body["kind"] == "Lease"
    assert body["metadata"] == {
        "name": who.lease_name, "namespace": "kube-system",
        "labels": {"apiserver.kubernetes.io/identity": "kube-apiserver",
                   "kubernetes.io/hostname": "host-1"},
        "annotations": {"miniplane.io/advertise-address": "192.0.2.1",
                        "miniplane.io/advertise-port": "6443"}}
    assert body["spec"] == {"holderIdentity": "holder_1", "leaseDurationSeconds": 3,
                            "acquireTime": "2026-01-01T12:00:00.000000Z",
                            "renewTime": "2026-01-01T12:00:00.000000Z"}


def test_renewal_keeps_the_stored_object_and_moves_renew_time() -> None:
    who = Identity("host-1", "192.0.2.1", 6443)
    stored = peers.lease_body(who, "holder_1", 15, NOW, None)
    stored["metadata"].update(resourceVersion="7", uid="u")
    stored["metadata"]["annotations"]["miniplane.io/advertise-address"] = "203.0.113.9"
    later = NOW + timedelta(seconds=5)
    renewed = peers.lease_body(who, "holder_1", 15, later, stored)
    assert renewed["metadata"]["resourceVersion"] == "7"  # optimistic concurrency
    assert renewed["metadata"]["annotations"]["miniplane.io/advertise-address"] == "192.0.2.1"
    assert renewed["spec"]["acquireTime"] == stored["spec"]["acquireTime"]
    assert renewed["spec"]["renewTime"] == "2026-01-01T12:00:05.000000Z"
    assert stored["spec"]["renewTime"] == "2026-01-01T12:00:00.000000Z"  # not changed in place
    # a restarted process (new holder) takes its Lease back: acquired anew
    taken = peers.lease_body(who, "holder_2", 15, later, stored)
    assert taken["spec"]["holderIdentity"] == "holder_2"
    assert taken["spec"]["acquireTime"] == "2026-01-01T12:00:05.000000Z"


def test_a_hostname_that_is_no_label_value_is_left_out() -> None:
    body = peers.lease_body(Identity("x" * 64, "192.0.2.1", 6443), "h", 15, NOW, None)
    assert "kubernetes.io/hostname" not in body["metadata"]["labels"]


# -- which servers are live ---------------------------------------------------------------


def test_live_peers_are_unexpired_non_loopback_identity_leases_sorted_once() -> None:
    unlabelled = lease("192.0.2.50")
    del unlabelled["metadata"]["labels"]["apiserver.kubernetes.io/identity"]
    no_port = lease("192.0.2.51")
    no_port["metadata"]["annotations"]["miniplane.io/advertise-port"] = "http"
    no_address = lease("192.0.2.52")
    del no_address["metadata"]["annotations"]["miniplane.io/advertise-address"]
    no_renew = lease("192.0.2.53")
    del no_renew["spec"]["renewTime"]
    leases = [lease("192.0.2.10"), lease("192.0.2.9", renewed=14.9),
              lease("192.0.2.9", hostname="other"),  # the same endpoint twice: once
              lease("192.0.2.7", renewed=15),  # expired right now
              lease("192.0.2.8", renewed=300), lease("127.0.0.1"), lease("::1"),
              unlabelled, no_port, no_address, no_renew]
    assert peers.live_peers(leases, NOW) == [Peer("192.0.2.9", 6443), Peer("192.0.2.10", 6443)]


def test_a_lease_counts_until_its_duration_has_passed() -> None:
    one = [lease("192.0.2.1", duration=3)]
    assert peers.live_peers(one, NOW + timedelta(seconds=2.9)) == [Peer("192.0.2.1", 6443)]
    assert peers.live_peers(one, NOW + timedelta(seconds=3)) == []


def test_garbage_is_leases_unrenewed_for_twice_their_duration() -> None:
    keep = [lease("192.0.2.1"), lease("192.0.2.2", renewed=29), {"metadata": {"name": "kcm"}}]
    gone = lease("192.0.2.3", renewed=30)
    assert peers.garbage([*keep, gone], NOW) == [gone]


# -- the slices ---------------------------------------------------------------------------


def test_one_slice_for_servers_sharing_a_port() -> None:
    [one] = peers.desired_slices([Peer("192.0.2.1", 6443), Peer("192.0.2.2", 6443)])
    assert one["metadata"] == {"name": "kubernetes", "namespace": "default", "labels": {
        "kubernetes.io/service-name": "kubernetes",
        "endpointslice.kubernetes.io/managed-by": "kube-apiserver"}}
    assert one["addressType"] == "IPv4"
    assert one["endpoints"] == [{"addresses": ["192.0.2.1"], "conditions": {"ready": True}},
                                {"addresses": ["192.0.2.2"], "conditions": {"ready": True}}]
    assert one["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]


def test_a_slice_per_port_and_address_family() -> None:
    got = peers.desired_slices(peers.live_peers(
        [lease("10.250.0.1", 6444), lease("10.250.0.1", 6443), lease("fd00::1", 6443),
         lease("10.250.0.2", 6444)], NOW))
    assert [(s["metadata"]["name"], s["addressType"], s["ports"][0]["port"], addresses(s))
            for s in got] == [
        ("kubernetes", "IPv4", 6443, ["10.250.0.1"]),
        ("kubernetes-ipv4-6444", "IPv4", 6444, ["10.250.0.1", "10.250.0.2"]),
        ("kubernetes-ipv6-6443", "IPv6", 6443, ["fd00::1"])]


def test_every_server_computes_the_same_slices_from_the_same_leases() -> None:
    """What makes several servers converge instead of overwriting each other."""
    leases = [lease("192.0.2.3"), lease("192.0.2.1", 6444), lease("192.0.2.2"),
              lease("192.0.2.4", renewed=60)]
    seen = {repr(peers.desired_slices(peers.live_peers(order, NOW)))
            for order in itertools.permutations(leases)}
    assert len(seen) == 1


# -- the writes ---------------------------------------------------------------------------


def stored(slice_: dict, rv: str = "5") -> dict:
    return {**slice_, "metadata": {**slice_["metadata"], "resourceVersion": rv, "uid": "u"}}


def test_no_write_when_the_stored_slices_are_the_desired_ones() -> None:
    want = peers.desired_slices([Peer("192.0.2.1", 6443)])
    assert not peers.plan(want, [stored(s) for s in want])


def test_plan_creates_updates_and_deletes_only_managed_slices() -> None:
    want = peers.desired_slices([Peer("192.0.2.1", 6443), Peer("192.0.2.2", 6443),
                                 Peer("192.0.2.2", 6444)])
    old = stored(peers.desired_slices([Peer("192.0.2.1", 6443)])[0], rv="9")
    old["metadata"]["labels"]["team"] = "kept"
    stale = stored(kubernetes_endpoint_slice(["192.0.2.9"], 7000,
                                                   name="kubernetes-ipv4-7000"))
    foreign = stored(kubernetes_endpoint_slice(["192.0.2.9"], 7000, name="kubernetes-x"))
    foreign["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = "someone"
    todo = peers.plan(want, [old, stale, foreign])
    assert [s["metadata"]["name"] for s in todo.create] == ["kubernetes-ipv4-6444"]
    [updated] = todo.update
    assert updated["metadata"]["resourceVersion"] == "9"
    assert updated["metadata"]["labels"]["team"] == "kept"
    assert addresses(updated) == ["192.0.2.1", "192.0.2.2"]
    assert todo.delete == ["kubernetes-ipv4-7000"]


def test_a_hand_edit_is_undone() -> None:
    want = peers.desired_slices([Peer("192.0.2.1", 6443)])
    edited = stored(want[0])
    edited["endpoints"] = [{"addresses": ["203.0.113.66"]}]
    del edited["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
    [fixed] = peers.plan(want, [edited]).update
    assert addresses(fixed) == ["192.0.2.1"]
    assert fixed["metadata"]["labels"] == want[0]["metadata"]["labels"]


def test_with_no_live_server_nothing_is_erased() -> None:
    """As kube-apiserver: the last server to stop leaves its endpoints for the next."""
    last = stored(peers.desired_slices([Peer("192.0.2.1", 6443)])[0])
    assert not peers.plan(peers.desired_slices([]), [last])


# -- the v1 Endpoints object ----------------------------------------------------------------


def test_the_kubernetes_endpoints_name_every_live_server_and_are_written_only_on_change() -> None:
    live = [Peer("192.0.2.1", 6443), Peer("192.0.2.2", 6443), Peer("192.0.2.2", 6444)]
    created = peers.plan_endpoints(live, None)
    assert created is not None
    assert created["metadata"] == {"name": "kubernetes", "namespace": "default", "labels": {
        "endpointslice.kubernetes.io/skip-mirror": "true"}}
    assert created["subsets"] == [
        {"addresses": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}],
         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
        {"addresses": [{"ip": "192.0.2.2"}],
         "ports": [{"name": "https", "port": 6444, "protocol": "TCP"}]}]
    current = stored(created, rv="8")
    assert peers.plan_endpoints(reversed(live), current) is None
    current["metadata"]["labels"]["team"] = "kept"
    updated = peers.plan_endpoints(live[:1], current)
    assert updated is not None
    assert updated["metadata"]["resourceVersion"] == "8"
    assert updated["metadata"]["labels"]["team"] == "kept"
    assert updated["subsets"] == [{"addresses": [{"ip": "192.0.2.1"}], "ports": [
        {"name": "https", "port": 6443, "protocol": "TCP"}]}]
    # as with the slices: with no live server, nothing is erased
    assert peers.plan_endpoints([], current) is None
