"""authorization.k8s.io/v1 reviews: "may this user do that?", answered in ``status``.

``SubjectAccessReview`` (about any user), ``LocalSubjectAccessReview`` (the same,
inside the namespace of its path), ``SelfSubjectAccessReview`` (about the caller:
``kubectl auth can-i``) and ``SelfSubjectRulesReview`` (everything the caller may
do in a namespace: ``kubectl auth can-i --list``). They are create-only and never
stored: the answer is the request object with its ``status`` filled. These are
pure functions of the body, the caller and the authorizer; ``filters`` serves them.
"""

from __future__ import annotations

from typing import Any

from apimachinery import kinds
from apimachinery.kinds import Kind
from apiserver.auth import rbac
from apiserver.auth.authorizer import Authorizer, Decision
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo
from apiserver.errors import BadRequest, FieldError, Invalid, invalid, required

GROUP = kinds.AUTHZ
BY_PLURAL: dict[str, Kind] = {k.plural: k for k in kinds.REVIEWS}


def _attributes(errs: list[FieldError], spec: dict[str, Any]) -> RequestInfo | None:
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (nonres is None):
        errs.append(invalid("spec.resourceAttributes", res, "exactly one of "
                            "nonResourceAttributes or resourceAttributes must be specified"))
        return None
    if res is not None:
        if not isinstance(res, dict):
            errs.append(invalid("spec.resourceAttributes", res, "must be an object"))
            return None
        def text(key: str) -> str:
            value = res.get(key)
            if value is not None and not isinstance(value, str):
                errs.append(invalid(f"spec.resourceAttributes.{key}", value,
                                    "must be a string"))
                return ""
            return value or ""
        return RequestInfo(verb=text("verb"), is_resource_request=True,
                           api_group=text("group"), api_version=text("version"),
                           namespace=text("namespace"), resource=text("resource"),
                           subresource=text("subresource"), name=text("name"))
    if not isinstance(nonres, dict):
        errs.append(invalid("spec.nonResourceAttributes", nonres, "must be an object"))
        return None
    path, verb = nonres.get("path"), nonres.get("verb")
    return RequestInfo(verb=verb if isinstance(verb, str) else "",
                       path=path if isinstance(path, str) else "")


def _subject(errs: list[FieldError], spec: dict[str, Any]) -> UserInfo:
    name = spec.get("user") if isinstance(spec.get("user"), str) else ""
    groups = spec.get("groups")
    groups = tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
    if not name and not groups:
        errs.append(invalid("spec.user", name, "at least one of user or group must be "
                            "specified"))
    extra_raw = spec.get("extra")
    extra: dict[str, tuple[str, ...]] = {}
    if isinstance(extra_raw, dict):
        extra = {str(k): tuple(v) for k, v in extra_raw.items() if isinstance(v, list)}
    uid = spec.get("uid") if isinstance(spec.get("uid"), str) else ""
    return UserInfo(str(name), groups, str(uid), extra)


def review(kind: Kind, body: dict[str, Any], caller: UserInfo, authorizer: Authorizer,
           index: rbac.RBACIndex, namespace: str = "") -> dict[str, Any]:
    """The answered review; raises BadRequest/Invalid for a body Kubernetes refuses."""
    if body.get("kind") not in (None, "", kind.kind) or \
            body.get("apiVersion") not in (None, "", kind.api_version):
        raise BadRequest(f"the API version in the data ({body.get('apiVersion')}) and kind "
                         f"({body.get('kind')}) do not match the expected "
                         f"{kind.api_version} {kind.kind}")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    out = {**body, "apiVersion": kind.api_version, "kind": kind.kind,
           "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {}}
    errs: list[FieldError] = []
    if kind is kinds.SELFSUBJECTRULESREVIEW:
        ns = spec.get("namespace")
        if ns is not None and not isinstance(ns, str):
            errs.append(invalid("spec.namespace", ns, "must be a string"))
        if errs:
            raise Invalid(kind.kind, "", errs, kind.group)
        out["status"] = rules_status(index, caller, ns or "")
        return out
    info = _attributes(errs, spec)
    subject = caller
    if kind in (kinds.SUBJECTACCESSREVIEW, kinds.LOCALSUBJECTACCESSREVIEW):
        subject = _subject(errs, spec)
    if kind is kinds.LOCALSUBJECTACCESSREVIEW and info is not None and \
            info.is_resource_request and info.namespace != namespace:
        if info.namespace:
            raise BadRequest(f"spec.resourceAttributes.namespace must match namespace: "
                             f"{namespace}")
        errs.append(required("spec.resourceAttributes.namespace"))
    if kind is kinds.LOCALSUBJECTACCESSREVIEW and info is not None and \
            not info.is_resource_request:
        errs.append(invalid("spec.nonResourceAttributes", spec.get("nonResourceAttributes"),
                            "disallowed on this kind of request"))
    if errs or info is None:
        raise Invalid(kind.kind, "", errs, kind.group)
    if kind is kinds.SELFSUBJECTACCESSREVIEW:
        out["spec"] = {**spec}  # the caller's identity is not echoed into spec, as Kubernetes
    verdict = authorizer.authorize(subject, info)
    status: dict[str, Any] = {"allowed": verdict.allowed}
    if verdict.decision is Decision.DENY:
        status["denied"] = True
    if verdict.reason:
        status["reason"] = verdict.reason
    out["status"] = status
    return out


def rules_status(index: rbac.RBACIndex, user: UserInfo, namespace: str) -> dict[str, Any]:
    """SelfSubjectRulesReview's status: the caller's RBAC rules in ``namespace``."""
    rules, errors = index.rules_for(user, namespace)
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for r in rules:
        d = r.to_dict()
        if r.non_resource_urls:
            non_resource_rules.append({"verbs": d["verbs"],
                                       "nonResourceURLs": d["nonResourceURLs"]})
        else:
            entry = {"verbs": d["verbs"], "apiGroups": d.get("apiGroups", []),
                     "resources": d.get("resources", [])}
            if "resourceNames" in d:
                entry["resourceNames"] = d["resourceNames"]
            resource_rules.append(entry)
    status: dict[str, Any] = {"resourceRules": resource_rules,
                              "nonResourceRules": non_resource_rules,
                              "incomplete": bool(errors)}
    if errors:
        status["evaluationError"] = ", ".join(errors)
    return status
