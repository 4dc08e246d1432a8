"""Pod subresources served by the node agent: ``pods/log``, ``pods/exec``, ``pods/attach``,
``pods/portforward``.

Kubernetes calls these "connect" subresources: the API server checks the request
(the pod exists and is on a node, the container name, the options), then hands
the connection to the pod's node agent (``nodeproxy``): ``log`` as a streamed
GET, ``exec`` and ``attach`` as a WebSocket (``v5``/``v4.channel.k8s.io``; SPDY,
kubectl's fallback, is answered with a clear 400), ``portforward`` as a WebSocket
carrying SPDY (``SPDY/3.1+portforward.k8s.io``, relayed as it is).

Authorization: the request's own verb first, as for any request (``get`` for a
WebSocket GET, ``create`` for a POST); then, for ``exec``/``attach`` opened with
GET, ``create`` as well, as Kubernetes 1.34+ checks (an exec is a write into the
pod, whatever the HTTP method that opens it); ``portforward`` likewise (a
connection into the pod's network). The bootstrap roles give ``pods/exec``,
``pods/attach`` and ``pods/portforward`` to admin and edit; view has only
``pods/log``.

``CONNECT`` is the table; a new agent-served subresource (``pods/portforward``…)
is one more row: its discovery facts and a function from the pod and the query to
the agent's path (doing that subresource's own checks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from apimachinery import remotecommand
from apiserver import nodeproxy
from apiserver.auth.authorizer import forbidden
from apiserver.auth.filters import Authorization
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import USER_KEY
from apiserver.errors import (
    BadRequest,
    FieldError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    invalid,
)
from apiserver.nodeproxy import KubeletClientConfig
from apiserver.paths import Target, parse_path
from apiserver.storage.backend import Backend

# (the pod, the request's query) -> the agent's path and query, or an APIError: a
# row's own checks (options, container defaulting)
AgentPath = Callable[[Mapping[str, Any], QueryParams], str]


@dataclass(frozen=True)
class Connect:
    """A subresource the agent serves: as discovery lists it, and where it goes."""

    kind: str
    verbs: tuple[str, ...]
    websocket: bool  # exec and attach: an upgraded connection
    agent_path: AgentPath


def _container_path(prefix: str, pod: Mapping[str, Any], q: QueryParams) -> str:
    """kubelet's ``<prefix>/<namespace>/<pod>/<container>``."""
    meta = pod["metadata"]
    container = pick_container(pod, q.get("container") or None)
    return f"{prefix}/{meta.get('namespace', 'default')}/{meta['name']}/{container}"


def log_path(pod: Mapping[str, Any], q: QueryParams) -> str:
    path = _container_path("/containerLogs", pod, q)
    return path + nodeproxy.query_string(log_query(pod["metadata"]["name"], q))


def exec_path(pod: Mapping[str, Any], q: QueryParams) -> str:
    path = _container_path("/exec", pod, q)
    return path + nodeproxy.query_string(stream_query(pod, q, exec_=True))


def attach_path(pod: Mapping[str, Any], q: QueryParams) -> str:
    path = _container_path("/attach", pod, q)
    return path + nodeproxy.query_string(stream_query(pod, q, exec_=False))


def portforward_path(pod: Mapping[str, Any], q: QueryParams) -> str:
    """kubelet's ``/portForward/<namespace>/<pod>``: the pod's ports, no container."""
    meta = pod["metadata"]
    return f"/portForward/{meta.get('namespace', 'default')}/{meta['name']}"


CONNECT: dict[tuple[str, str], Connect] = {
    ("pods", "log"): Connect("Pod", ("get",), False, log_path),
    ("pods", "exec"): Connect("PodExecOptions", ("create", "get"), True, exec_path),
    ("pods", "attach"): Connect("PodAttachOptions", ("create", "get"), True, attach_path),
    ("pods", "portforward"): Connect("PodPortForwardOptions", ("create", "get"), True,
                                     portforward_path),
}


def discovery_entries(plural: str) -> list[dict[str, Any]]:
    return [{"name": f"{p}/{sub}", "singularName": "", "namespaced": True, "kind": c.kind,
             "verbs": list(c.verbs)}
            for (p, sub), c in CONNECT.items() if p == plural]


_NAMES = frozenset(sub for _, sub in CONNECT)


def connect_target(path: str) -> tuple[Target, Connect] | None:
    """The agent-served subresource ``path`` addresses, if any (cheap for any other
    path: every request asks)."""
    if path.rstrip("/").rsplit("/", 1)[-1] not in _NAMES:
        return None
    t = parse_path(path)
    if t is None or not t.name or t.namespace is None or t.group:
        return None
    c = CONNECT.get((t.plural, t.subresource))
    return (t, c) if c is not None else None


# --------------------------------------------------------------------------- pure checks


def _flag(q: QueryParams, name: str) -> bool:
    return q.get(name, "").lower() in ("1", "true")


def pick_container(pod: Mapping[str, Any], wanted: str | None) -> str:
    """Kubernetes' container defaulting for logs, exec and attach."""
    name = pod["metadata"]["name"]
    names = [c.get("name", "") for c in pod.get("spec", {}).get("containers") or []]
    if wanted:
        if wanted not in names:
            raise BadRequest(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(names) == 1:
        return names[0]
    if not names:
        raise BadRequest(f"a container name must be specified for pod {name}")
    raise BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                     f"[{' '.join(names)}]")


def node_of(pod: Mapping[str, Any]) -> str:
    node = pod.get("spec", {}).get("nodeName")
    if not node:
        raise BadRequest(f"pod {pod['metadata']['name']} does not have a host assigned")
    return str(node)


def _int(q: QueryParams, name: str, minimum: int, errors: list[FieldError]) -> int | None:
    text = q.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        errors.append(invalid(name, text, "must be an integer"))
        return None
    if value < minimum:
        errors.append(invalid(name, value, f"must be greater than or equal to {minimum}"
                              if minimum == 0 else "must be greater than 0"))
    return value


def log_query(pod_name: str, q: QueryParams) -> list[tuple[str, str]]:
    """The agent's query for ``pods/log`` (PodLogOptions, validated as Kubernetes does)."""
    errors: list[FieldError] = []
    tail = _int(q, "tailLines", 0, errors)
    limit = _int(q, "limitBytes", 1, errors)
    since = _int(q, "sinceSeconds", 1, errors)
    since_time = q.get("sinceTime")
    if since is not None and since_time:
        errors.append(FieldError("sinceSeconds", "FieldValueForbidden",
                                 "at most one of `sinceTime` or `sinceSeconds` may be "
                                 "specified"))
    if errors:
        raise Invalid("PodLogOptions", pod_name, errors)
    out: list[tuple[str, str]] = []
    for flag in ("follow", "previous", "timestamps"):
        if _flag(q, flag):
            out.append((flag, "true"))
    for key, value in (("tailLines", tail), ("limitBytes", limit), ("sinceSeconds", since)):
        if value is not None:
            out.append((key, str(value)))
    if since_time:
        out.append(("sinceTime", since_time))
    return out


def stream_query(pod: Mapping[str, Any], q: QueryParams, *, exec_: bool
                 ) -> list[tuple[str, str]]:
    """The agent's query for ``pods/exec`` (``command``…) or ``pods/attach``."""
    name = pod["metadata"]["name"]
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        what = "exec into" if exec_ else "attach to"
        raise BadRequest(f"cannot {what} a container in a completed pod; current phase is "
                         f"{phase}")
    streams = [s for s in ("stdin", "stdout", "stderr") if _flag(q, s)]
    if not streams:
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if _flag(q, "tty") and "stderr" in streams:
        raise BadRequest("tty and stderr cannot both be true")
    out = [(s, "true") for s in streams] + ([("tty", "true")] if _flag(q, "tty") else [])
    if exec_:
        command = q.getlist("command")
        if not command:
            raise BadRequest(f"you must specify at least one command for the container "
                             f"of pod {name}")
        out = [("command", c) for c in command] + out
    return out


# --------------------------------------------------------------------------- serving


class PodConnector:
    """Serves the ``CONNECT`` subresources against the store and the agents."""

    def __init__(self, store: Backend, kubelet: KubeletClientConfig,
                 authz: Callable[[], Authorization]) -> None:
        self.store = store
        self.kubelet = kubelet
        self.authz = authz

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return await nodeproxy.stored(self.store, plural, namespace, name)

    async def _locate(self, t: Target, c: Connect, q: QueryParams) -> tuple[str, int, str]:
        """(host, port, agent path with query) for the request, or an ``APIError``."""
        assert t.name is not None and t.namespace is not None
        pod = await self._get("pods", t.namespace, t.name)
        path = c.agent_path(pod, q)
        node_name = node_of(pod)
        if not self.kubelet.configured:
            raise nodeproxy.ServiceUnavailable(
                "this API server has no --kubelet-client-certificate: it cannot reach "
                "node agents")
        try:
            node = await self._get("nodes", "", node_name)
        except NotFound:
            raise nodeproxy.ServiceUnavailable(f"node {node_name!r} of pod {t.name} does "
                                               "not exist") from None
        host, port = nodeproxy.agent_location(node, self.kubelet)
        return host, port, path

    def check_create(self, scope: Scope, info: RequestInfo) -> None:
        """An exec/attach opened with GET must also be allowed to ``create``."""
        if info.verb == "create":
            return
        as_create = dataclasses.replace(info, verb="create")
        user = scope[USER_KEY]
        verdict = self.authz().authorize(user, as_create)
        if not verdict.allowed:
            raise forbidden(user, as_create, verdict.reason)

    async def serve_http(self, scope: Scope, receive: Receive, send: Send, t: Target,
                         c: Connect) -> None:
        """A plain request: ``log``; exec/attach without an upgrade are refused."""
        q = QueryParams(scope.get("query_string", b""))
        method = scope.get("method", "GET")
        if c.websocket:
            await self._locate(t, c, q)  # the usual errors first
            upgrade = _header(scope, b"upgrade").lower()
            protocols = ((PORTFORWARD_PROTOCOL,) if t.subresource == "portforward"
                         else remotecommand.PROTOCOLS)
            raise BadRequest(
                f"{t.subresource} is served over WebSocket only ({', '.join(protocols)}); "
                + ("SPDY is not supported" if "spdy" in upgrade else "Upgrade request required"))
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{method} is not supported on pods/log")
        host, port, path = await self._locate(t, c, q)
        await nodeproxy.proxy_http(self.kubelet, host, port, path, send)

    async def serve_websocket(self, scope: Scope, receive: Receive, send: Send, t: Target,
                              c: Connect) -> None:
        q = QueryParams(scope.get("query_string", b""))
        if not c.websocket:
            raise BadRequest(f"pods/{t.subresource} is not served over WebSocket")
        offered = [p for p in nodeproxy.offered_subprotocols(scope) if p]
        if t.subresource == "portforward" and offered and PORTFORWARD_PROTOCOL not in offered:
            raise BadRequest(f"port-forward is served over WebSocket with the subprotocol "
                             f"{PORTFORWARD_PROTOCOL} (kubectl 1.31+); offered: {offered}")
        host, port, path = await self._locate(t, c, q)
        await nodeproxy.proxy_websocket(self.kubelet, host, port, path, scope, receive, send,
                                        implied=PORTFORWARD_PROTOCOL)


# kubectl port-forward's SPDY tunnelled in WebSocket messages (nodeagent/api/forwarding.py)
PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return ""
