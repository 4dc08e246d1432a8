"""Where ``pods/proxy`` and ``services/proxy`` go: pure decisions, no I/O.

    >>> proxy_path("/api/v1/namespaces/default/services/https:web:443/proxy/a/b")
    ProxyPath(namespace='default', plural='services', scheme='https', name='web', port='443', path='/a/b')

The id in the path is Kubernetes' ``[scheme:]name[:port]`` (``SplitSchemeNamePort``).
A pod's port is a number (or the name of one of its container ports), by
default its first declared container port; a Service's port is the ``name`` or
the number of one of its ports, and an endpoint is picked among the ready ones
of its EndpointSlices for that port. kube-apiserver then connects to the pod IP;
miniplane hands the request to the agent of the pod's node (``podproxy``), so
an endpoint is usable only if it names its pod (``targetRef``) and node.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apiserver.errors import BadRequest
from apiserver.nodeproxy import ServiceUnavailable

SCHEMES = ("", "http", "https")


@dataclass(frozen=True)
class ProxyPath:
    namespace: str
    plural: str  # pods | services
    scheme: str  # "" when the id names none
    name: str
    port: str  # "" when the id names none
    path: str  # what follows ``/proxy``, "/" at least


@dataclass(frozen=True)
class Backend:
    """One pod port to send the request to."""

    pod: str
    node: str
    scheme: str
    port: int


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """``[scheme:]name[:port]`` → (scheme, name, port); None when malformed."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in SCHEMES:
        return None
    return scheme, name, port


def proxy_path(path: str) -> ProxyPath | None:
    """The proxy request ``path`` makes, or None if it is not one.

    ``/api/v1/namespaces/<ns>/(pods|services)/<id>/proxy[/<rest>]``; an id that
    does not split is a ``BadRequest``."""
    if "/proxy" not in path:  # every request asks: the common answer without a split
        return None
    parts = path.split("/")
    # "", "api", "v1", "namespaces", ns, plural, id, "proxy", rest...
    if (len(parts) < 8 or parts[:4] != ["", "api", "v1", "namespaces"] or not parts[4]
            or parts[5] not in ("pods", "services") or parts[7] != "proxy"):
        return None
    split = split_scheme_name_port(parts[6])
    if split is None:
        raise BadRequest(f"invalid {parts[5][:-1]} proxy id {parts[6]!r}: want "
                         "[scheme:]name[:port] with scheme http or https")
    scheme, name, port = split
    rest = "/" + "/".join(parts[8:])
    return ProxyPath(parts[4], parts[5], scheme, name, port, rest)


def is_proxy_path(path: str) -> bool:
    """Whether ``path`` is a proxy request (even one whose id is malformed)."""
    try:
        return proxy_path(path) is not None
    except BadRequest:
        return True


# What discovery lists (kube-apiserver's: every verb an HTTP method maps to).
PROXY_VERBS = ("create", "delete", "get", "patch", "update")
PROXY_KINDS = {"pods": "PodProxyOptions", "services": "ServiceProxyOptions"}


def discovery_entries(plural: str) -> list[dict[str, Any]]:
    kind = PROXY_KINDS.get(plural)
    return [] if kind is None else [{"name": f"{plural}/proxy", "singularName": "",
                                     "namespaced": True, "kind": kind,
                                     "verbs": list(PROXY_VERBS)}]


def _port_number(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def pod_backend(pod: Mapping[str, Any], target: ProxyPath) -> Backend:
    """The pod port a ``pods/proxy`` request goes to."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    declared = [p for c in spec.get("containers") or [] for p in c.get("ports") or []]
    if not target.port:
        port = declared[0].get("containerPort") if declared else None
        if not isinstance(port, int):
            port = 443 if target.scheme == "https" else 80  # what a URL without a port means
    else:
        port = _port_number(target.port)
        if port is None:
            named = [p.get("containerPort") for p in declared if p.get("name") == target.port]
            if not named or not isinstance(named[0], int):
                raise BadRequest(f"pod {name} has no port {target.port!r}")
            port = named[0]
    node = spec.get("nodeName")
    if not node:
        raise BadRequest(f"pod {name} does not have a host assigned")
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        raise BadRequest(f"pod {name} is not running")
    return Backend(name, str(node), target.scheme or "http", port)


def service_backend(service: Mapping[str, Any], slices: Iterable[Mapping[str, Any]],
                    target: ProxyPath, *, rng: random.Random | None = None) -> Backend:
    """A ready endpoint of ``service`` for the port ``target`` names.

    ``ServiceUnavailable`` (503) as kube-apiserver words it: no such service port,
    or no endpoint available."""
    name = service["metadata"]["name"]
    ports = (service.get("spec") or {}).get("ports") or []
    chosen = next((p for p in ports if p.get("name", "") == target.port
                   or (target.port and str(p.get("port")) == target.port)), None)
    if chosen is None:
        raise ServiceUnavailable(f'no service port "{target.port}" found for service '
                                 f'"{name}"')
    port_name = chosen.get("name", "")
    candidates: list[Backend] = []
    for eps in slices:
        number = next((p.get("port") for p in eps.get("ports") or []
                       if (p.get("name") or "") == port_name), None)
        if not isinstance(number, int):
            continue
        for ep in eps.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready")
            ref = ep.get("targetRef") or {}
            if ready is False or ref.get("kind") != "Pod" or not ref.get("name"):
                continue
            if not ep.get("nodeName"):
                continue
            candidates.append(Backend(str(ref["name"]), str(ep["nodeName"]),
                                      target.scheme or "http", number))
    if not candidates:
        ident = ":".join(x for x in (target.scheme, name, target.port) if x)
        raise ServiceUnavailable(f'no endpoints available for service "{ident}"')
    candidates.sort(key=lambda b: (b.pod, b.port))
    return (rng or random.Random()).choice(candidates)

