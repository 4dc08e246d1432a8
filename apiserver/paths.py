"""Pure resolution of a request path to what it addresses.

    >>> parse_path("/api/v1/namespaces/default/services/web/status")
    Target(group='', version='v1', plural='services', namespace='default', name='web', subresource='status')

Kubernetes paths are ambiguous to a plain router (``/api/v1/namespaces/x/status``
is a namespace's status; ``/api/v1/namespaces/x/pods`` a collection), so the
registry decides: a segment after ``namespaces/<n>`` is a namespaced resource if
one is served under that name, else a subresource of the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiserver.registry.strategy import Strategy
from apiserver.resources import by_path


@dataclass(frozen=True)
class Target:
    group: str
    version: str
    plural: str
    namespace: str | None = None  # None: cluster-scoped, or every namespace
    name: str | None = None
    subresource: str = ""

    @property
    def resource(self) -> Strategy | None:
        return by_path(self.group, self.version, self.plural)


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespaced = by_path(group, version, rest[2])
        if namespaced is not None and namespaced.kind.namespaced:
            if len(rest) > 5:
                return None
            return Target(group, version, rest[2], namespace=rest[1],
                          name=rest[3] if len(rest) > 3 else None,
                          subresource=rest[4] if len(rest) > 4 else "")
        if len(rest) == 3 and by_path(group, version, "namespaces") is not None:
            return Target(group, version, "namespaces", name=rest[1], subresource=rest[2])
        return None
    if len(rest) > 3:
        return None
    return Target(group, version, rest[0], name=rest[1] if len(rest) > 1 else None,
                  subresource=rest[2] if len(rest) > 2 else "")
