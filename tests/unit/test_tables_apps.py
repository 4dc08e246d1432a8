"""kubectl's columns for Deployments, ReplicaSets and Endpoints, and the Scale view of
a workload (``apiserver/scale.py``): pure functions, fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apimachinery import tables as t
from apimachinery.kinds import DEPLOYMENT, ENDPOINTS, REPLICASET
from apiserver import scale
from apiserver.errors import BadRequest, Invalid

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
CREATED = "2026-01-01T00:00:00Z"  # ten minutes before NOW
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox"}]}}


def deploy(**status: int) -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
            "spec": {"replicas": 3, "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In",
                                      "values": ["front", "api"]}]},
                     "template": TEMPLATE},
            "status": status}


def test_deployment_columns() -> None:
    rows = t.table_rows(DEPLOYMENT, [deploy(readyReplicas=2, updatedReplicas=3,
                                            availableReplicas=1), deploy()], NOW, wide=True)
    assert rows == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
        ["web", "2/3", "3", "1", "10m", "web,log", "nginx:1.27,busybox",
         "app=web,tier in (api,front)"],
        ["web", "0/3", "0", "0", "10m", "web,log", "nginx:1.27,busybox",
         "app=web,tier in (api,front)"],
    ]


def test_replicaset_columns() -> None:
    rs = deploy(replicas=3, readyReplicas=1)
    assert t.table_rows(REPLICASET, [rs], NOW) == [
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["web", "3", "3", "1", "10m"]]
    assert t.table_header(REPLICASET, wide=True)[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]


def ep(*subsets: dict) -> dict:
    return {"metadata": {"name": "web", "creationTimestamp": CREATED}, "subsets": list(subsets)}


@pytest.mark.parametrize(
    ("endpoints", "cell"),
    [
        (ep(), "<none>"),
        ({"metadata": {"name": "web"}}, "<none>"),
        (ep({"notReadyAddresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 80}]}), ""),
        (ep({"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}],
             "ports": [{"port": 8080}]}), "10.244.1.2:8080,10.244.1.3:8080"),
        (ep({"addresses": [{"ip": "10.244.1.2"}]}), "10.244.1.2"),  # headless, no ports
        (ep({"addresses": [{"ip": "fd00::2"}], "ports": [{"port": 53}]}), "[fd00::2]:53"),
        (ep({"addresses": [{"ip": f"10.244.1.{i}"} for i in range(2, 5)],
             "ports": [{"port": 80}, {"port": 443}]}),
         "10.244.1.2:80,10.244.1.3:80,10.244.1.4:80 + 3 more..."),
        (ep({"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}], "ports": [{"port": 80}]},
            {"addresses": [{"ip": f"10.244.2.{i}"} for i in range(2, 7)],
             "ports": [{"port": 81}]}),
         "10.244.1.2:80,10.244.1.3:80,10.244.2.2:81 + 4 more..."),
    ],
)
def test_endpoints_column_is_kubectls(endpoints: dict, cell: str) -> None:
    assert t.table_rows(ENDPOINTS, [endpoints], NOW, header=False)[0][1] == cell
    assert t.table_header(ENDPOINTS) == ["NAME", "ENDPOINTS", "AGE"]


# ---------------------------------------------------------------------------- Scale


def test_scale_is_a_view_of_the_owner() -> None:
    owner = deploy(replicas=2)
    owner["metadata"].update(uid="u-1", resourceVersion="42", labels={"app": "web"})
    assert scale.scale_of(owner) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "resourceVersion": "42", "creationTimestamp": CREATED},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=web,tier in (api,front)"}}
    assert scale.scale_of({"metadata": {"name": "x"}})["status"] == {"replicas": 0,
                                                                    "selector": ""}


def test_scaled_sets_replicas_and_carries_the_precondition() -> None:
    owner = deploy()
    owner["metadata"]["resourceVersion"] = "42"
    out = scale.scaled(owner, {"metadata": {"name": "web", "resourceVersion": "41"},
                               "spec": {"replicas": 5}}, "web")
    assert out["spec"]["replicas"] == 5 and out["spec"]["template"] == TEMPLATE
    assert out["metadata"]["resourceVersion"] == "41"  # stale: the write path says Conflict
    assert owner["spec"]["replicas"] == 3  # the stored object is not touched
    unconditional = scale.scaled(owner, {"spec": {"replicas": 0}}, "web")
    assert "resourceVersion" not in unconditional["metadata"]
    assert unconditional["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"spec": {"replicas": -1}}, Invalid),
        ({"spec": {"replicas": "5"}}, Invalid),
        ({"metadata": {"name": "other"}, "spec": {"replicas": 1}}, BadRequest),
        ({"kind": "Deployment", "spec": {"replicas": 1}}, BadRequest),
        ([], BadRequest),
    ],
)
def test_scaled_refuses_what_is_not_a_scale_of_it(body: object, error: type) -> None:
    with pytest.raises(error) as caught:
        scale.scaled(deploy(), body, "web")
    if error is Invalid:
        assert caught.value.status()["details"]["causes"][0]["field"] == "spec.replicas"
        status = caught.value.status()
        assert status["message"].startswith('Scale "web" is invalid: spec.replicas')
        assert status["details"]["group"] == "autoscaling"
