"""``pods/proxy`` and ``services/proxy``: HTTP to a pod, through its node's agent.

``/api/v1/namespaces/<ns>/pods/<[scheme:]name[:port]>/proxy/<path>`` and the same
under ``services``. ``proxytargets`` decides which pod port serves the request;
this module reads what that needs (the pod, or the Service and its
EndpointSlices; the pod's Node), then relays the request to the node agent's
``/podProxy/<ns>/<pod>/<scheme>:<port>/<path>`` over the agent's TLS with the API
server's client certificate (``nodeproxy``), and streams the answer back. The
API server itself never connects to a pod or Service address.

Authorization happened before (the request's verb on ``pods/proxy`` or
``services/proxy``, by its method, as Kubernetes' RBAC sees it); the caller's
credentials are not relayed. An error before the pod answers is a ``Status``
(the agent marks its own answers with ``PROXY_ERROR_HEADER``); the pod's answer,
whatever its status, is relayed as it came, minus hop-by-hop headers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import orjson
from starlette.types import Receive, Scope, Send

from apimachinery.kinds import ENDPOINTSLICE
from apiserver import nodeproxy
from apiserver.errors import APIError, BadRequest, InternalError, NotFound
from apiserver.nodeproxy import KubeletClientConfig, ServiceUnavailable
from apiserver.proxytargets import Backend, ProxyPath, pod_backend, service_backend
from apiserver.resources import by_kind
from apiserver.storage.backend import Backend as Store
from componentbase.hopbyhop import PROXY_ERROR_HEADER, relayed_headers

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _status_error(code: int, message: str) -> APIError:
    kind: type[APIError] = {400: BadRequest, 404: NotFound, 503: ServiceUnavailable}.get(
        code, InternalError)
    return kind(message.strip() or f"the node agent answered {code}")


def _request_headers(scope: Scope) -> list[tuple[str, str]]:
    """The caller's headers for the pod: never its credentials or impersonation
    requests (kube-apiserver drops them once it has authenticated the caller)."""
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1"))
             for k, v in scope.get("headers") or ()]
    kept = relayed_headers(pairs, drop=("authorization", "host"))
    return [(n, v) for n, v in kept if not n.startswith("impersonate-")]


def _raw_tail(scope: Scope, target: ProxyPath) -> str:
    """The path after ``/proxy`` as the client encoded it (``%2F`` stays itself)."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        parts = raw.decode("latin-1").split("/", 8)
        return "/" + (parts[8] if len(parts) > 8 else "")
    return quote(target.path)


class Proxier:
    """Serves the proxy subresources against the store and the node agents."""

    def __init__(self, store: Store, kubelet: KubeletClientConfig) -> None:
        self.store = store
        self.kubelet = kubelet

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return await nodeproxy.stored(self.store, plural, namespace, name)

    async def _slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        def owned(obj: dict[str, Any]) -> bool:
            labels = obj.get("metadata", {}).get("labels") or {}
            return bool(labels.get(SERVICE_NAME_LABEL) == service)

        page = await anyio.to_thread.run_sync(
            lambda: self.store.list(by_kind(ENDPOINTSLICE).key, namespace, keep=owned))
        return [orjson.loads(item) for item in page.items]

    async def backend(self, target: ProxyPath) -> Backend:
        """Which pod port serves ``target`` (an ``APIError`` when none can)."""
        if target.plural == "pods":
            return pod_backend(await self._get("pods", target.namespace, target.name), target)
        service = await self._get("services", target.namespace, target.name)
        return service_backend(service, await self._slices(target.namespace, target.name),
                               target)

    async def agent_url(self, target: ProxyPath, backend: Backend, tail: str,
                        query: str) -> str:
        if not self.kubelet.configured:
            raise ServiceUnavailable("this API server has no --kubelet-client-certificate: "
                                     "it cannot reach node agents")
        try:
            node = await self._get("nodes", "", backend.node)
        except NotFound:
            raise ServiceUnavailable(f"node {backend.node!r} of pod {backend.pod} does not "
                                     "exist") from None
        host, port = nodeproxy.agent_location(node, self.kubelet)
        host = f"[{host}]" if ":" in host else host
        return (f"https://{host}:{port}/podProxy/{target.namespace}/{backend.pod}/"
                f"{backend.scheme}:{backend.port}{tail}" + (f"?{query}" if query else ""))

    async def serve(self, scope: Scope, receive: Receive, send: Send,
                    target: ProxyPath) -> None:
        """Relay the request; an ``APIError`` raised here means nothing was sent yet."""
        backend = await self.backend(target)
        query = scope.get("query_string", b"").decode("latin-1")
        url = await self.agent_url(target, backend, _raw_tail(scope, target), query)
        headers = _request_headers(scope)
        names = {n for n, _ in headers}
        chunked = any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower()
                      for k, v in scope.get("headers") or ())
        body = _body(receive) if "content-length" in names or chunked else None
        client = httpx.AsyncClient(verify=self.kubelet.context, timeout=httpx.Timeout(
            CONNECT_TIMEOUT, read=None, write=None))
        try:
            try:
                request = client.build_request(scope["method"], url, headers=headers,
                                               content=body)
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"cannot reach the node agent of {backend.node}: "
                                         f"{exc}") from None
            try:
                if response.headers.get(PROXY_ERROR_HEADER):
                    text = (await response.aread()).decode("utf-8", "replace")
                    raise _status_error(response.status_code, text)
                answer = relayed_headers(response.headers.multi_items())
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": [(n.lower().encode("latin-1"), v.encode("latin-1"))
                                        for n, v in answer]})
                try:
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                except httpx.HTTPError as exc:
                    log.info("proxy %s: the answer broke off: %s", scope["path"], exc)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()
        finally:
            await client.aclose()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
