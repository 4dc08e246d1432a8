"""The request path's authorization steps, and the state they read.

kube-apiserver's filter order, after authentication (which put a ``UserInfo`` in
the ASGI scope under ``USER_KEY``):

1. ``impersonate``: ``Impersonate-User`` / ``-Group`` / ``-Uid`` / ``-Extra-<key>``
   headers replace the user, each only if the caller may ``impersonate`` that user
   (or ServiceAccount), group, uid or extra value; else 403 worded as Kubernetes
   (``users "jane" is forbidden: User "bob" cannot impersonate resource "users" in
   API group "" at the cluster scope``);
2. ``authorize``: the request's ``RequestInfo`` against the ``--authorization-mode``
   chain; 403 when nobody allows it.

A request without a user in the scope is ``system:anonymous`` (nothing is open by
accident). ``Authorization`` holds the chain and the indexes it reads, fed from
the committed log: it is a sink of the ``LogFollower`` beside the watch hub, so
writes made through any API server reach every server's decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from apiserver.auth import rbac
from apiserver.auth.authorizer import DEFAULT_MODES, Authorizer, Chain, Verdict, forbidden
from apiserver.auth.node import PODS, NodeAuthorizer, PodIndex
from apiserver.auth.requestinfo import RequestInfo, request_info
from apiserver.auth.user import (
    ANONYMOUS,
    ANONYMOUS_USER,
    AUTHENTICATED,
    SERVICE_ACCOUNT_PREFIX,
    SERVICE_ACCOUNTS,
    UNAUTHENTICATED,
    USER_KEY,
    UserInfo,
)
from apiserver.errors import BadRequest
from apiserver.storage.backend import Backend, Event

log = logging.getLogger(__name__)

WATCHED = (*rbac.KEYS, PODS)
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass
class Authorization:
    """The server's authorizer chain and the in-memory state behind it."""

    modes: Sequence[str] = DEFAULT_MODES
    index: rbac.RBACIndex = field(default_factory=rbac.RBACIndex)
    pods: PodIndex = field(default_factory=PodIndex)
    store: Backend | None = None

    def __post_init__(self) -> None:
        by_mode: dict[str, Authorizer] = {"Node": NodeAuthorizer(self.pods),
                                          "RBAC": rbac.RBACAuthorizer(self.index)}
        unknown = [m for m in self.modes if m not in by_mode]
        if unknown:
            raise ValueError(f"unknown authorization mode {unknown[0]!r}: use Node, RBAC")
        self.chain = Chain([by_mode[m] for m in self.modes])

    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict:
        return self.chain.authorize(user, info)

    # ---------------------------------------------------------------- the feed

    def load(self, store: Backend) -> None:
        """Everything from the store (at start, and after the feed lost events)."""
        self.store = store
        self.index.replace({key: store.all_objects(key) for key in rbac.KEYS})
        self.pods.replace(store.all_objects(PODS))

    def publish(self, events: Iterable[Event]) -> None:
        for ev in events:
            if ev.resource not in WATCHED:
                continue
            obj = None if ev.type == "DELETED" else ev.obj
            if ev.resource == PODS:
                self.pods.apply(ev.namespace, ev.name, obj)
            else:
                self.index.apply(ev.resource, ev.namespace, ev.name, obj)

    def skip_to(self, revision: int) -> None:
        if self.store is not None:
            log.warning("authorization state missed events up to revision %d: reloading",
                        revision)
            self.load(self.store)


@dataclass
class Tee:
    """A follower sink that hands every event to several sinks, in order."""

    sinks: Sequence[Any]

    def publish(self, events: list[Event]) -> None:
        for sink in self.sinks:
            sink.publish(events)

    def skip_to(self, revision: int) -> None:
        for sink in self.sinks:
            sink.skip_to(revision)


# --------------------------------------------------------------------------- impersonation

def _headers(scope: MutableMapping[str, Any]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1"))
            for k, v in scope.get("headers") or ()]


def _checks(name: str | None, groups: list[str], uid: str | None,
            extra: dict[str, list[str]]) -> list[RequestInfo]:
    """The ``impersonate`` requests to authorize, in Kubernetes' order."""
    out: list[RequestInfo] = []

    def ask(resource: str, who: str, *, group: str = "", namespace: str = "",
            sub: str = "") -> None:
        out.append(RequestInfo(verb="impersonate", is_resource_request=True, api_group=group,
                               resource=resource, subresource=sub, name=who,
                               namespace=namespace))

    if name is not None:
        if name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
            ns, sa = name.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":")
            ask("serviceaccounts", sa, namespace=ns)
        else:
            ask("users", name)
    for g in groups:
        ask("groups", g)
    for key, values in extra.items():
        for v in values:
            ask("userextras", v, group=AUTHENTICATION_GROUP, sub=key)
    if uid is not None:
        ask("uids", uid, group=AUTHENTICATION_GROUP)
    return out


def impersonated(name: str, groups: list[str], uid: str,
                 extra: dict[str, list[str]]) -> UserInfo:
    """The user a request acts as, with the groups Kubernetes adds."""
    groups = list(groups)
    if not groups and name.startswith(SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
        ns = name.split(":")[2]
        groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{ns}"]
    if name != ANONYMOUS:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return UserInfo(name, tuple(groups), uid, {k: tuple(v) for k, v in extra.items()})


def impersonate(user: UserInfo, headers: list[tuple[str, str]],
                authz: Authorization) -> UserInfo:
    """The user after ``Impersonate-*`` headers; raises Forbidden/BadRequest."""
    name: str | None = None
    uid: str | None = None
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for key, value in headers:
        if key == "impersonate-user":
            name = value
        elif key == "impersonate-group":
            groups.append(value)
        elif key == "impersonate-uid":
            uid = value
        elif key.startswith("impersonate-extra-"):
            extra.setdefault(unquote(key.removeprefix("impersonate-extra-")), []).append(value)
    if name is None:
        if groups or extra or uid is not None:
            raise BadRequest("requested impersonation of groups, extra or uid without "
                             "impersonating a user (Impersonate-User)")
        return user
    for info in _checks(name, groups, uid, extra):
        verdict = authz.authorize(user, info)
        if not verdict.allowed:
            raise forbidden(user, info, verdict.reason)
    return impersonated(name, groups, uid or "", extra)


# --------------------------------------------------------------------------- the gate

def check_request(scope: MutableMapping[str, Any], authz: Authorization) -> RequestInfo:
    """Impersonation, then authorization, of one HTTP request; sets the scope's user.

    Returns the request's ``RequestInfo``; raises the APIError to answer with.
    """
    user = scope.get(USER_KEY)
    if not isinstance(user, UserInfo):
        user = ANONYMOUS_USER
    if any(k.startswith(b"impersonate-") for k, _ in scope.get("headers") or ()):
        user = impersonate(user, _headers(scope), authz)
    scope[USER_KEY] = user
    query = scope.get("query_string") or b""
    info = request_info(scope.get("method", "GET"), scope.get("path", "/"),
                        query.decode("latin-1") if isinstance(query, bytes) else str(query))
    verdict = authz.authorize(user, info)
    if not verdict.allowed:
        raise forbidden(user, info, verdict.reason)
    return info

