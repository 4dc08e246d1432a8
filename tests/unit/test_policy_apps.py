"""The bootstrap policy's facts for apps/v1 workloads and v1 Endpoints, as Kubernetes'
``bootstrappolicy`` has them: view reads them (and their scale), edit writes them
(and scales) but not Endpoints (1.22, CVE-2021-25740); the controller manager keeps
ReplicaSets, Deployments, their status, their pods and Endpoints."""

from __future__ import annotations

import pytest

from apiserver.auth import policy, rbac
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo
from tests.unit.test_auth_rbac import _policy_authz, res

APPS = "apps"
KCM = UserInfo("system:kube-controller-manager", ("system:authenticated",))


def role(name: str) -> list[rbac.PolicyRule]:
    roles = {r["metadata"]["name"]: r for r in policy.cluster_roles()}
    return [rbac.PolicyRule.of(r) for r in roles[name]["rules"]]


@pytest.mark.parametrize(("name", "info", "allowed"), [
    ("view", res("get", "deployments", group=APPS, ns="x", name="d"), True),
    ("view", res("list", "replicasets", group=APPS, ns="x"), True),
    ("view", res("get", "deployments", group=APPS, sub="scale", ns="x", name="d"), True),
    ("view", res("get", "replicasets", group=APPS, sub="status", ns="x", name="r"), True),
    ("view", res("get", "endpoints", ns="x", name="e"), True),
    ("view", res("patch", "deployments", group=APPS, sub="scale", ns="x", name="d"), False),
    ("view", res("update", "replicasets", group=APPS, sub="scale", ns="x", name="r"), False),
    ("view", res("patch", "deployments", group=APPS, ns="x", name="d"), False),
    ("edit", res("create", "deployments", group=APPS, ns="x"), True),
    ("edit", res("patch", "deployments", group=APPS, sub="scale", ns="x", name="d"), True),
    ("edit", res("update", "replicasets", group=APPS, sub="scale", ns="x", name="r"), True),
    ("edit", res("delete", "replicasets", group=APPS, ns="x", name="r"), True),
    ("edit", res("patch", "deployments", group=APPS, sub="status", ns="x", name="d"), False),
    ("edit", res("get", "endpoints", ns="x", name="e"), True),
    ("edit", res("update", "endpoints", ns="x", name="e"), False),
    ("admin", res("patch", "replicasets", group=APPS, sub="scale", ns="x", name="r"), True),
    ("admin", res("create", "endpoints", ns="x"), False),
])
def test_aggregated_roles(name: str, info: RequestInfo, allowed: bool) -> None:
    assert rbac.rules_allow(role(name), info) is allowed


@pytest.mark.parametrize(("info", "allowed"), [
    (res("watch", "deployments", group=APPS), True),
    (res("create", "replicasets", group=APPS, ns="a"), True),
    (res("delete", "replicasets", group=APPS, ns="a", name="r"), True),
    (res("update", "deployments", group=APPS, sub="status", ns="a", name="d"), True),
    (res("patch", "replicasets", group=APPS, sub="status", ns="a", name="r"), True),
    (res("create", "pods", ns="a"), True),
    (res("delete", "pods", ns="a", name="p"), True),
    (res("create", "endpoints", ns="a"), True),
    (res("update", "endpoints", ns="a", name="e"), True),
    (res("delete", "endpoints", ns="a", name="e"), True),
    (res("create", "services", ns="a"), False),
])
def test_controller_manager_keeps_workloads(info: RequestInfo, allowed: bool) -> None:
    assert _policy_authz().authorize(KCM, info).allowed is allowed
