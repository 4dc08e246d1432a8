"""``/portForward/{namespace}/{pod}``: kubectl port-forward's tunnel, into the pod.

kubectl 1.31+ opens a WebSocket with the subprotocol ``SPDY/3.1+portforward.k8s.io``
and runs SPDY inside its binary messages; the API server relays the messages
here unchanged, and ``portforward.PortForwardSession`` serves the SPDY streams,
dialing the pod's ports inside its network namespace. A WebSocket offering other
subprotocols only, or for a pod this agent does not run, is refused with an
HTTP answer before the upgrade (kubelet's status codes, plain text), which the
API server turns into a ``Status`` for the client.

One offering none is taken as the tunnel too: the route has no other protocol,
and the API server's WebSocket client (``websockets``) cannot offer this one,
whose "/" is not an RFC 7230 token character (Go's client does not check).

The plain ``Upgrade: SPDY/3.1`` form is kubectl's fallback for servers without
the WebSocket tunnel; nothing on the way here needs it, and an ASGI server
cannot hand a raw upgraded socket to the app, so it is not offered.
"""

from __future__ import annotations

import contextlib
import logging

from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from nodeagent.api import portforward
from nodeagent.api.pods import NotServed, Workers, find_worker

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


class WebSocketChannel:
    """A ``portforward.Channel`` over an accepted WebSocket: binary messages are
    pieces of one byte stream (message boundaries mean nothing to SPDY)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return b""
            data = message.get("bytes")
            if data is None:  # a text message has no place in the tunnel
                log.info("port-forward: a text message on the SPDY tunnel; closing it")
                return b""
            if data:
                return bytes(data)

    async def write(self, data: bytes) -> None:
        try:
            await self.ws.send_bytes(data)
        except Exception as exc:  # the ASGI server's own "client went away" errors
            raise ConnectionError(f"the port-forward client went away: {exc}") from exc


def routes(workers: Workers) -> list[WebSocketRoute]:
    async def endpoint(ws: WebSocket) -> None:
        await serve(ws, workers)

    return [WebSocketRoute("/portForward/{namespace}/{pod}", endpoint)]


async def serve(ws: WebSocket, workers: Workers) -> None:
    namespace, pod = ws.path_params["namespace"], ws.path_params["pod"]
    offered = ws.scope.get("subprotocols") or []
    if offered and TUNNEL_PROTOCOL not in offered:
        await ws.send_denial_response(PlainTextResponse(
            f"port-forward is served over a WebSocket with the subprotocol "
            f"{TUNNEL_PROTOCOL}\n", status_code=400))
        return
    try:
        worker = find_worker(workers, namespace, pod)
    except NotServed as exc:
        await ws.send_denial_response(exc.response())
        return
    await ws.accept(subprotocol=TUNNEL_PROTOCOL if offered else None)
    log.info("port-forward to pod %s: opened", worker.key)
    try:
        await portforward.serve(WebSocketChannel(ws), portforward.dial_in_netns(worker.ns),
                                pod=pod, uid=worker.uid)
    finally:
        log.info("port-forward to pod %s: closed", worker.key)
        with contextlib.suppress(Exception):
            await ws.close()
