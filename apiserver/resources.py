"""The registry of served kinds: one strategy per line, and the lookups over them.

Routes, discovery, OpenAPI, field selectors, Tables and every write read a kind's
behaviour from its strategy (``apiserver/registry/<kind>.py``), so serving a new
kind is one module and one line here (plus its ``Kind`` facts in
``apimachinery/kinds.py``, which clients read). See ``docs/adding-a-kind.md``.
"""

from __future__ import annotations

from apimachinery.kinds import Kind
from apiserver.registry import (
    accessreview,
    authentication,
    configmap,
    deployment,
    endpoints,
    endpointslice,
    event,
    lease,
    namespace,
    node,
    pod,
    rbac,
    replicaset,
    secret,
    service,
    serviceaccount,
)
from apiserver.registry.strategy import Strategy

REGISTRY: tuple[Strategy, ...] = (
    namespace.STRATEGY,
    node.STRATEGY,
    pod.STRATEGY,
    service.STRATEGY,
    endpointslice.STRATEGY,
    event.STRATEGY,
    serviceaccount.STRATEGY,
    lease.STRATEGY,
    endpoints.STRATEGY,
    replicaset.STRATEGY,
    deployment.STRATEGY,
    configmap.STRATEGY,
    secret.STRATEGY,
    authentication.SELF_SUBJECT_REVIEWS,
    authentication.TOKEN_REVIEWS,
    rbac.ROLES,
    rbac.CLUSTER_ROLES,
    rbac.ROLE_BINDINGS,
    rbac.CLUSTER_ROLE_BINDINGS,
    *accessreview.STRATEGIES,
)

# The strategy whose objects hold the namespaced ones: it admits creates inside a
# namespace and hears of removals from it (Kubernetes' namespace lifecycle).
SCOPE: Strategy = namespace.STRATEGY

_BY_PATH = {(s.kind.group, s.kind.version, s.kind.plural): s for s in REGISTRY}
_BY_KEY = {s.key: s for s in REGISTRY}
_BY_KIND = {s.kind: s for s in REGISTRY}


def by_path(group: str, version: str, plural: str) -> Strategy | None:
    return _BY_PATH.get((group, version, plural))


def by_key(key: str) -> Strategy | None:
    """The strategy of a storage key (``pods``, ``endpointslices.discovery.k8s.io``)."""
    return _BY_KEY.get(key)


def by_kind(kind: Kind) -> Strategy:
    """The strategy serving ``kind`` (one of ``apimachinery.kinds``)."""
    return _BY_KIND[kind]


def group_versions() -> list[tuple[str, str]]:
    """Served (group, version) pairs, core first."""
    seen: list[tuple[str, str]] = []
    for s in REGISTRY:
        gv = (s.kind.group, s.kind.version)
        if gv not in seen:
            seen.append(gv)
    return seen


def in_group_version(group: str, version: str) -> list[Strategy]:
    return [s for s in REGISTRY if (s.kind.group, s.kind.version) == (group, version)]
