"""The clusterrole-aggregation controller's wiring: ClusterRole events → rule writes."""

from __future__ import annotations

from apimachinery.kinds import CLUSTERROLE
from controllers.clusterroleaggregation import ClusterRoleAggregationController
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from tests.unit.test_controllers_wiring import FakeApi, deliver, run, versioned

AGG = "rbac.authorization.k8s.io/aggregate-to-view"


def role(name: str, rules: list[dict], labels: dict | None = None, **extra) -> dict:
    return versioned({"metadata": {"name": name, "labels": labels or {}}, "rules": rules,
                      **extra})


def test_a_labelled_part_is_aggregated_and_a_quiet_world_is_not_rewritten() -> None:
    api = FakeApi()
    informers = SharedInformers(api)  # type: ignore[arg-type]
    controller = ClusterRoleAggregationController(api, informers, Metrics())  # type: ignore[arg-type]
    roles = informers.get(CLUSTERROLE)
    view = role("view", [], aggregationRule={"clusterRoleSelectors": [
        {"matchLabels": {AGG: "true"}}]})
    deliver(roles, "ADDED", view)
    part = role("crd-view", [{"verbs": ["get"], "apiGroups": ["x.io"], "resources": ["w"]}],
                {AGG: "true"})
    deliver(roles, "ADDED", part)
    deliver(roles, "ADDED", role("other", [{"verbs": ["*"], "apiGroups": ["*"],
                                            "resources": ["*"]}]))
    assert controller.queue.len() == 1  # only the aggregated role is queued
    run(controller.sync("view"))
    assert api.calls == [("replace", "clusterroles", "view")]
    written = api.bodies[-1]
    assert written["rules"] == part["rules"]
    deliver(roles, "MODIFIED", written)
    run(controller.sync("view"))
    assert len(api.calls) == 1  # already holds them: no write
