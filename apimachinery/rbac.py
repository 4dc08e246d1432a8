"""RBAC facts both ends need: ClusterRole aggregation as a pure function.

A ClusterRole with an ``aggregationRule`` holds the rules of every ClusterRole its
``clusterRoleSelectors`` select, as Kubernetes' clusterrole-aggregation controller
fills them: selected roles by name, their rules in order, each rule once. The
controller (``controllers/clusterroleaggregation.py``) and the API server's
bootstrap policy (which writes admin/edit/view already filled) both call it, so a
server without controllers answers the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apimachinery.labels import SelectorError, selector_from_label_selector_object

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AGGREGATE_TO_ADMIN = f"{GROUP}/aggregate-to-admin"
AGGREGATE_TO_EDIT = f"{GROUP}/aggregate-to-edit"
AGGREGATE_TO_VIEW = f"{GROUP}/aggregate-to-view"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def aggregated_rules(role: Mapping[str, Any],
                     cluster_roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The rules ``role`` aggregates from ``cluster_roles``; None if it has no
    aggregationRule (its rules are its own)."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return None
    selectors = rule.get("clusterRoleSelectors")
    if not isinstance(selectors, list):
        return []
    me = _name(role)
    ordered = sorted((r for r in cluster_roles if _name(r) != me), key=_name)
    rules: list[dict[str, Any]] = []
    for raw in selectors:
        try:
            selector = selector_from_label_selector_object(raw if isinstance(raw, Mapping)
                                                           else None)
        except SelectorError:
            continue
        for other in ordered:
            if not selector.matches(_labels(other)):
                continue
            for r in other.get("rules") or []:
                if isinstance(r, dict) and r not in rules:
                    rules.append(r)
    return rules
