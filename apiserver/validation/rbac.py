"""Roles, ClusterRoles and their bindings (rbac.authorization.k8s.io/v1), as Kubernetes'
``pkg/apis/rbac/validation`` checks them."""

from __future__ import annotations

from typing import Any

from apimachinery import names
from apimachinery.labels import SelectorError, selector_from_label_selector_object
from apiserver.errors import invalid, not_supported, required
from apiserver.validation.fields import FieldErrors

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def is_path_segment_name(v: str) -> list[str]:
    """RBAC names (``system:node``) only have to be usable as one URL path segment."""
    if v in (".", ".."):
        return [f'may not be \'{v}\'']
    for bad in ("/", "%"):
        if bad in v:
            return [f"may not contain '{bad}'"]
    return []


def _rules(errs: FieldErrors, value: Any, path: str, *, namespaced: bool) -> None:
    for at, rule in errs.items(value, path):
        lists = {key: [v for _, v in errs.strings(rule.get(key), f"{at}.{key}")]
                 for key in ("verbs", "apiGroups", "resources", "resourceNames",
                             "nonResourceURLs")}
        if not lists["verbs"]:
            errs.append(required(f"{at}.verbs", "verbs must contain at least one value"))
        urls = lists["nonResourceURLs"]
        if urls:
            if namespaced:
                errs.append(invalid(f"{at}.nonResourceURLs", urls,
                                    "namespaced rules cannot apply to non-resource URLs"))
            if lists["apiGroups"] or lists["resources"] or lists["resourceNames"]:
                errs.append(invalid(f"{at}.nonResourceURLs", urls, "rules cannot apply to "
                                    "both regular resources and non-resource URLs"))
            continue
        if not lists["apiGroups"]:
            errs.append(required(f"{at}.apiGroups",
                                 "resource rules must supply at least one api group"))
        if not lists["resources"]:
            errs.append(required(f"{at}.resources",
                                 "resource rules must supply at least one resource"))


def validate_role(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    _rules(errs, obj.get("rules"), "rules", namespaced=True)


def validate_cluster_role(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    _rules(errs, obj.get("rules"), "rules", namespaced=False)
    agg = errs.obj(obj.get("aggregationRule"), "aggregationRule")
    if agg is None:
        return
    selectors = errs.seq(agg.get("clusterRoleSelectors"),
                         "aggregationRule.clusterRoleSelectors") or []
    if not selectors:
        errs.append(required("aggregationRule.clusterRoleSelectors",
                             "at least one clusterRoleSelector required if aggregationRule "
                             "is non-nil"))
    for i, selector in enumerate(selectors):
        try:
            selector_from_label_selector_object(selector)
        except SelectorError as exc:
            errs.append(invalid(f"aggregationRule.clusterRoleSelectors[{i}]", selector, str(exc)))


def _binding(errs: FieldErrors, obj: dict, old: dict | None, *, role_kinds: tuple[str, ...],
             namespaced: bool) -> None:
    ref = errs.obj(obj.get("roleRef"), "roleRef")
    if ref is None:
        errs.append(required("roleRef"))
    else:
        if ref.get("apiGroup") != GROUP:
            errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup"), [GROUP]))
        kind = errs.required_text(ref.get("kind"), "roleRef.kind")
        if kind and kind not in role_kinds:
            errs.append(not_supported("roleRef.kind", kind, list(role_kinds)))
        name = errs.required_text(ref.get("name"), "roleRef.name")
        if name:
            errs.check(name, "roleRef.name", is_path_segment_name)
        if old is not None and isinstance(old.get("roleRef"), dict) \
                and old["roleRef"] != ref:
            errs.append(invalid("roleRef", ref, "cannot change roleRef"))
    for at, subject in errs.items(obj.get("subjects"), "subjects"):
        _subject(errs, subject, at, namespaced=namespaced)


def _subject(errs: FieldErrors, subject: dict, at: str, *, namespaced: bool) -> None:
    name = errs.required_text(subject.get("name"), f"{at}.name")
    kind = subject.get("kind")
    group = subject.get("apiGroup") or ""
    if kind == "ServiceAccount":
        if name:
            errs.check(name, f"{at}.name", names.is_dns1123_subdomain)
        if group != "":
            errs.append(not_supported(f"{at}.apiGroup", group, [""]))
        ns = errs.text(subject.get("namespace"), f"{at}.namespace")
        if not namespaced and not ns:
            errs.append(required(f"{at}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(f"{at}.apiGroup", group, [GROUP]))
        if kind == "Group" and name:
            errs.check(name, f"{at}.name", is_path_segment_name)
    else:
        errs.append(not_supported(f"{at}.kind", kind, list(SUBJECT_KINDS)))


def validate_role_binding(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    _binding(errs, obj, old, role_kinds=("Role", "ClusterRole"), namespaced=True)


def validate_cluster_role_binding(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    _binding(errs, obj, old, role_kinds=("ClusterRole",), namespaced=False)
