"""Decisions, the chain of authorizers, and the 403 Kubernetes answers with.

An authorizer answers ALLOW, DENY or NO_OPINION with a reason; the chain
(``--authorization-mode``, ``Node,RBAC`` by default) asks each in turn and the
first that is not NO_OPINION decides; nobody deciding is a denial. Members of
``system:masters`` are allowed before any authorizer is asked, as kube-apiserver's
privileged-group authorizer does.

``forbidden`` words the refusal exactly as kube-apiserver's ``forbiddenMessage``
and ``NewForbidden`` do, e.g.

    pods "x" is forbidden: User "u" cannot delete resource "pods" in API group "" in the namespace "default"
    nodes is forbidden: User "u" cannot list resource "nodes" in API group "" at the cluster scope
    forbidden: User "u" cannot get path "/metrics"
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import MASTERS, UserInfo
from apiserver.errors import Forbidden


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


class Authorizer(Protocol):
    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict: ...


MODES = ("Node", "RBAC")  # what --authorization-mode accepts (no AlwaysAllow)
DEFAULT_MODES = ("Node", "RBAC")


@dataclass(frozen=True)
class Chain:
    """The authorizers of ``--authorization-mode``, in order."""

    authorizers: Sequence[Authorizer]

    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict:
        if MASTERS in user.groups:
            return Verdict(Decision.ALLOW, "member of system:masters")
        reasons: list[str] = []
        for authorizer in self.authorizers:
            verdict = authorizer.authorize(user, info)
            if verdict.decision is not Decision.NO_OPINION:
                return verdict
            if verdict.reason:
                reasons.append(verdict.reason)
        return Verdict(Decision.NO_OPINION, ", ".join(reasons))


def forbidden_message(user: UserInfo, info: RequestInfo) -> str:
    """The "User ... cannot ..." part of a refusal (``forbiddenMessage``)."""
    if not info.is_resource_request:
        return f'User "{user.name}" cannot {info.verb} path "{info.path}"'
    what = f'User "{user.name}" cannot {info.verb} resource "{info.qualified_resource}" ' \
           f'in API group "{info.api_group}"'
    if info.namespace:
        return f'{what} in the namespace "{info.namespace}"'
    return f"{what} at the cluster scope"


def forbidden(user: UserInfo, info: RequestInfo, reason: str = "") -> Forbidden:
    """The 403 a refused request gets: message and details as ``NewForbidden`` makes them."""
    text = forbidden_message(user, info)
    if reason:
        text = f"{text}: {reason}"
    return forbidden_error(info.resource if info.is_resource_request else "",
                           info.api_group if info.is_resource_request else "",
                           info.name if info.is_resource_request else "", text)


def forbidden_error(resource: str, group: str, name: str, text: str) -> Forbidden:
    """``NewForbidden(group/resource, name, err)``."""
    if not resource and not group:
        return Forbidden(f"forbidden: {text}", details={})
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, str] = {"kind": resource}
    if group:
        details["group"] = group
    if name:
        details = {"name": name, **details}
        return Forbidden(f'{qualified} "{name}" is forbidden: {text}', details=details)
    return Forbidden(f"{qualified} is forbidden: {text}", details=details)
