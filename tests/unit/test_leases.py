"""Leases: Kubernetes' ``ValidateLeaseSpec``, the MicroTime format, kubectl's columns,
and the Node authorizer's rule (a node reaches only its own Lease in kube-node-lease)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apimachinery import tables
from apimachinery.kinds import LEASE
from apimachinery.timestamps import format_micro_time, parse_micro_time
from apiserver.auth import policy
from apiserver.auth.authorizer import Decision
from apiserver.auth.node import NodeAuthorizer, PodIndex
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo
from mpctl import printers
from tests.unit.kindhooks import apply_defaults, validate
from tests.unit.test_validation import (
    DELETE,
    FORBIDDEN,
    INVALID,
    UNSUPPORTED,
    changed,
    found,
    meta,
)

RENEWED = "2026-01-01T00:00:05.250000Z"


def valid_lease() -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": meta("kube-controller-manager", "kube-system"),
            "spec": {"holderIdentity": "host-a_1234", "leaseDurationSeconds": 15,
                     "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": RENEWED,
                     "leaseTransitions": 0}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec": DELETE}, []),
    ({"spec": {}}, []),
    ({"spec.holderIdentity": 7}, [("spec.holderIdentity", INVALID)]),
    ({"spec.holderIdentity": DELETE}, []),
    ({"spec.leaseDurationSeconds": 0}, [("spec.leaseDurationSeconds", INVALID)]),
    ({"spec.leaseDurationSeconds": -3}, [("spec.leaseDurationSeconds", INVALID)]),
    ({"spec.leaseDurationSeconds": "15"}, [("spec.leaseDurationSeconds", INVALID)]),
    ({"spec.leaseDurationSeconds": 1}, []),
    ({"spec.leaseTransitions": -1}, [("spec.leaseTransitions", INVALID)]),
    ({"spec.leaseTransitions": 3}, []),
    ({"spec.renewTime": "2026-01-01T00:00:05Z"}, [("spec.renewTime", INVALID)]),
    ({"spec.renewTime": "2026-01-01T00:00:05.25Z"}, [("spec.renewTime", INVALID)]),
    ({"spec.renewTime": "2026-01-01 00:00:05.250000Z"}, [("spec.renewTime", INVALID)]),
    ({"spec.renewTime": "2026-13-01T00:00:05.250000Z"}, [("spec.renewTime", INVALID)]),
    ({"spec.renewTime": 1767225605}, [("spec.renewTime", INVALID)]),
    ({"spec.renewTime": "2026-01-01T02:00:05.250000+02:00"}, []),
    ({"spec.acquireTime": "yesterday"}, [("spec.acquireTime", INVALID)]),
    ({"spec.strategy": "Newest"}, [("spec.strategy", UNSUPPORTED)]),
    ({"spec.preferredHolder": "b"}, [("spec.preferredHolder", FORBIDDEN)]),
    ({"spec.preferredHolder": "b", "spec.strategy": "OldestEmulationVersion"}, []),
    ({"metadata.name": "Kube_Controller"}, [("metadata.name", INVALID)]),
])
def test_lease_validation(changes: dict, expected: list) -> None:
    assert found(validate("Lease", changed(valid_lease(), changes))) == expected


def test_micro_times_are_stored_in_utc_as_kubernetes_reencodes_them() -> None:
    lease = changed(valid_lease(), {"spec.renewTime": "2026-01-01T02:00:05.250000+02:00"})
    apply_defaults("Lease", lease)
    assert lease["spec"]["renewTime"] == RENEWED
    bad = changed(valid_lease(), {"spec.renewTime": "soon"})
    apply_defaults("Lease", bad)
    assert bad["spec"]["renewTime"] == "soon"  # left for validation to name


def test_micro_time_round_trip() -> None:
    moment = datetime(2026, 1, 1, 0, 0, 5, 250000, tzinfo=UTC)
    assert format_micro_time(moment) == RENEWED
    assert format_micro_time(moment.timestamp()) == RENEWED
    assert parse_micro_time(RENEWED) == moment
    assert format_micro_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert parse_micro_time("2026-01-01T00:00:05Z") is None


def test_lease_table_is_kubectls() -> None:
    now = datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)
    created = (now - timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%SZ")
    held = changed(valid_lease(), {"metadata.creationTimestamp": created})
    free = changed(held, {"metadata.name": "node-1", "spec.holderIdentity": DELETE})
    assert printers.print_table(LEASE, [held, free], now) == (
        "NAME                      HOLDER        AGE\n"
        "kube-controller-manager   host-a_1234   42s\n"
        "node-1                                  42s\n")
    assert tables.table_spec(LEASE).columns == ("NAME", "HOLDER", "AGE")


# ---------------------------------------------------------------------------- who may


NODE1 = UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))
OWN_ONLY = "can only access node lease with the same name as the requesting node"


def lease(verb: str, name: str = "node-1", ns: str = "kube-node-lease") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group="coordination.k8s.io",
                       resource="leases", name=name, namespace=ns)


@pytest.mark.parametrize(("info", "allowed", "reason"), [
    (lease("get"), True, ""),
    (lease("update"), True, ""),
    (lease("patch"), True, ""),
    (lease("delete"), True, ""),
    (lease("create", name=""), True, ""),  # the name is NodeRestriction's to check
    (lease("get", "node-2"), False, OWN_ONLY),
    (lease("update", "node-2"), False, OWN_ONLY),
    (lease("patch", "node-2"), False, OWN_ONLY),
    (lease("get", ns="kube-system"), False,
     'can only access leases in the "kube-node-lease" system namespace'),
    (lease("list", name=""), False, "can only get, create, update, patch, or delete a node lease"),
    (lease("watch", name=""), False,
     "can only get, create, update, patch, or delete a node lease"),
])
def test_node_authorizer_grants_only_the_nodes_own_lease(info: RequestInfo, allowed: bool,
                                                         reason: str) -> None:
    verdict = NodeAuthorizer(PodIndex()).authorize(NODE1, info)
    assert verdict.allowed is allowed
    if not allowed:
        assert (verdict.decision, verdict.reason) == (Decision.NO_OPINION, reason)


def _rules(role: str) -> list[dict]:
    return next(r for r in policy.cluster_roles() if r["metadata"]["name"] == role)["rules"]


def test_bootstrap_policy_for_leases_is_kubernetes() -> None:
    """kube-controller-manager: create any, get/update its own; nodes: nothing through
    RBAC (the Node authorizer's); dnsd: nothing."""
    leases = [r for r in _rules(policy.CONTROLLER_MANAGER) if "leases" in r["resources"]]
    assert leases == [
        {"verbs": ["create"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
        {"verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"],
         "resources": ["leases"], "resourceNames": ["kube-controller-manager"]}]
    assert not [r for r in _rules("system:node") if "leases" in r.get("resources", [])]
    assert not [r for r in _rules(policy.DNSD) if "leases" in r.get("resources", [])]
