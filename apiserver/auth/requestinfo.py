"""What a request asks for, as authorization sees it: Kubernetes' ``RequestInfo``.

A pure function of the method, the path and the query, as kube-apiserver's
``RequestInfoFactory`` computes it (so a rule written for Kubernetes means the
same here):

    >>> request_info("GET", "/api/v1/namespaces/default/pods", "watch=1").verb
    'watch'

- ``/api/<v>/...`` and ``/apis/<g>/<v>/...`` are resource requests; anything
  shorter (``/api``, ``/apis/<g>/<v>``) or elsewhere (``/healthz``, ``/metrics``)
  is a non-resource request whose verb is the lower-cased method.
- Verbs: POST create, GET/HEAD get, PUT update, PATCH patch, DELETE delete; a GET
  without a name is ``list`` (``watch`` with ``watch=1|true``), a DELETE without a
  name ``deletecollection``; a ``/watch/`` path segment makes it ``watch``.
- ``namespaces/<ns>/<resource>/...``: the namespace, then the resource; but
  ``namespaces/<ns>`` (and its ``status``/``finalize``) is the namespace object,
  whose namespace is itself, as in Kubernetes.
- A list filtered by ``fieldSelector=metadata.name=<n>`` is about object ``<n>``
  (how kubectl's ``get --watch <name>`` is authorized by a rule with resourceNames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

# Subresources of a namespace: ``namespaces/x/status`` is namespace x's status, not a
# resource called "status" inside x (Kubernetes' namespaceSubresources).
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# Path segments that are verbs (the deprecated ``/api/v1/watch/...`` form); proxy
# has no subresources after the name.
SPECIAL_VERBS = frozenset({"proxy", "watch"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
_NAME_SEGMENT_FORBIDDEN = ("/", "%")


@dataclass(frozen=True)
class RequestInfo:
    """The attributes of a request an authorizer decides on."""

    verb: str
    path: str = ""
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = field(default=(), compare=False)

    @property
    def qualified_resource(self) -> str:
        """``pods/status``: the resource with its subresource, as rules name them."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def non_resource(method: str, path: str) -> RequestInfo:
    return RequestInfo(verb=method.lower(), path=path)


def request_info(method: str, path: str, query: str = "") -> RequestInfo:
    """Kubernetes' ``NewRequestInfo`` for ``method path?query``."""
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource(method, path)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return non_resource(method, path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    verb = _METHOD_VERBS.get(method.upper(), "")
    if rest[0] in SPECIAL_VERBS:
        if len(rest) < 2:  # Kubernetes answers this as a non-resource request too
            return non_resource(method, path)
        verb, rest = rest[0], rest[1:]

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]

    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""

    if not name and verb == "get":
        q = parse_qs(query, keep_blank_values=True) if query else {}
        verb = "watch" if _truthy(q.get("watch")) else "list"
        name = _name_from_field_selector(q.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(verb=verb, path=path, is_resource_request=True, api_prefix=prefix,
                       api_group=group, api_version=version, namespace=namespace,
                       resource=resource, subresource=subresource, name=name,
                       parts=tuple(rest))


def _truthy(values: list[str] | None) -> bool:
    return values is not None and bool(values) and values[-1].lower() in ("1", "true")


def _name_from_field_selector(values: list[str] | None) -> str:
    """``metadata.name=x`` (or ``==``) as the only term of the field selector: ``x``."""
    if not values:
        return ""
    selector = values[-1].strip()
    if "," in selector:
        return ""
    for op in ("==", "="):
        key, sep, value = selector.partition(op)
        if sep and key.strip() == "metadata.name" and "!" not in key:
            value = value.strip()
            if value and value not in (".", "..") and not any(c in value for c in
                                                              _NAME_SEGMENT_FORBIDDEN):
                return value
            return ""
    return ""
