"""The API server's connection to node agents: where a node's agent is, and an
upgrade-aware proxy to it, for any pod (or node) subresource served by the agent.

kube-apiserver dials the kubelet at an address from the Node's ``status.addresses``
(the first of ``--kubelet-preferred-address-types`` the node has) and the port of
``status.daemonEndpoints.kubeletEndpoint``, over TLS: it verifies the agent's
serving certificate against ``--kubelet-certificate-authority`` and presents
``--kubelet-client-certificate``, the one identity the agent accepts. miniplane
adds ``--kubelet-dial-host``: in a local cluster every agent listens on the host's
loopback, and the nodes' addresses are cluster addresses the host must never
connect to, so the API server dials that host (127.0.0.1) at each node's port.

- ``proxy_http``: a plain request, its answer streamed back (``logs -f``); an
  error answer of the agent (plain text) becomes a ``Status``.
- ``proxy_websocket``: the client's WebSocket is opened to the agent first with the
  subprotocols the client offered; the client is accepted with the one the agent
  chose (or denied with the agent's answer), then messages flow both ways until
  either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import orjson
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from apiserver.errors import APIError, BadRequest, Forbidden, InternalError, NotFound
from apiserver.storage.backend import Backend

log = logging.getLogger(__name__)

# kube-apiserver's default --kubelet-preferred-address-types
DEFAULT_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
CONNECT_TIMEOUT = 10.0


class ServiceUnavailable(APIError):
    """The node's agent can't be reached (or says nowhere where)."""

    reason = "ServiceUnavailable"


@dataclass(frozen=True)
class KubeletClientConfig:
    """The flags that say how to reach node agents."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    preferred_address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    dial_host: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.cert_file and self.key_file)

    @functools.cached_property
    def context(self) -> ssl.SSLContext:
        """TLS toward agents: their serving certificate checked against the CA and the
        address dialled (as kube-apiserver with ``--kubelet-certificate-authority``),
        ours presented."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.ca_file is None:  # kube-apiserver's default without the CA flag
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


async def stored(store: Backend, plural: str, namespace: str, name: str) -> dict[str, Any]:
    """An object from storage (off the event loop), or NotFound: a pod subresource or
    proxy reads its pod, Service and Node this way."""
    raw = await anyio.to_thread.run_sync(store.get, plural, namespace, name)
    if raw is None:
        raise NotFound.of(plural, name)
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def agent_location(node: dict[str, Any], cfg: KubeletClientConfig) -> tuple[str, int]:
    """(host, port) of a node's agent API; raises ``APIError`` when it has none."""
    name = node.get("metadata", {}).get("name", "")
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ServiceUnavailable(f"node {name!r} publishes no agent API port "
                                 "(status.daemonEndpoints.kubeletEndpoint.Port)")
    if cfg.dial_host:
        return cfg.dial_host, port
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]
    for kind in cfg.preferred_address_types:
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return str(a["address"]), port
    raise ServiceUnavailable(f"no preferred addresses found; known addresses: "
                             f"{[a.get('address') for a in addresses]}")


def _url(scheme: str, host: str, port: int, path_query: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}{path_query}"


def _agent_error(code: int, text: str) -> APIError:
    """The agent's plain-text refusal as the ``Status`` a client reads."""
    kind: type[APIError] = {400: BadRequest, 403: Forbidden, 404: NotFound}.get(
        code, InternalError)
    return kind(text.strip() or f"the node agent answered {code}")


async def proxy_http(cfg: KubeletClientConfig, host: str, port: int, path_query: str,
                     send: Send, *, content_type: str = "text/plain") -> None:
    """GET ``path_query`` from the agent and stream its answer to ``send``."""
    client = httpx.AsyncClient(verify=cfg.context, timeout=httpx.Timeout(
        CONNECT_TIMEOUT, read=None))
    try:
        try:
            request = client.build_request("GET", _url("https", host, port, path_query))
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"cannot reach the node agent at {host}:{port}: "
                                     f"{exc}") from None
        try:
            if response.status_code != 200:
                body = await response.aread()
                raise _agent_error(response.status_code, body.decode("utf-8", "replace"))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode()),
                                    (b"cache-control", b"no-cache")]})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
            except httpx.HTTPError as exc:  # the agent went away mid-answer (it stopped)
                log.info("node agent at %s:%d ended its answer early: %s", host, port, exc)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
    finally:
        await client.aclose()


async def deny_websocket(send: Send, err: APIError) -> None:
    """Answer a WebSocket handshake with an HTTP error (a ``Status``), as an ASGI
    server allows with the ``websocket.http.response`` extension."""
    body = orjson.dumps(err.status())
    await send({"type": "websocket.http.response.start", "status": err.code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 7230 section 3.2.6


def offered_subprotocols(scope: Scope) -> list[str]:
    return list(scope.get("subprotocols") or [])


async def proxy_websocket(cfg: KubeletClientConfig, host: str, port: int, path_query: str,
                          scope: Scope, receive: Receive, send: Send, *,
                          implied: str | None = None) -> None:
    """Relay the client's WebSocket to the agent's ``path_query``.

    ``implied``: a subprotocol the agent's route stands for, which is not offered
    to the agent but, if the client offered it, is the one the client gets. It is
    how ``SPDY/3.1+portforward.k8s.io`` passes: its "/" is not an RFC 7230 token
    character, so this WebSocket client refuses to send it."""
    offered = offered_subprotocols(scope)
    # what this client can send: RFC 7230 tokens (any other would raise here)
    to_agent = [p for p in offered if p != implied and _TOKEN.fullmatch(p)]
    try:
        agent = await connect(_url("wss", host, port, path_query), ssl=cfg.context,
                              subprotocols=[Subprotocol(p) for p in to_agent] or None,
                              open_timeout=CONNECT_TIMEOUT, max_size=None,
                              ping_interval=None)
    except InvalidStatus as exc:
        body = exc.response.body or b""
        await deny_websocket(send, _agent_error(exc.response.status_code,
                                                body.decode("utf-8", "replace")))
        return
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        await deny_websocket(send, ServiceUnavailable(
            f"cannot reach the node agent at {host}:{port}: {exc}"))
        return
    try:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        chosen = agent.subprotocol or (implied if implied in offered else None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        await relay(agent, receive, send)
    finally:
        await agent.close()


async def relay(agent: ClientConnection, receive: Receive, send: Send) -> None:
    async def upstream() -> None:  # client → agent
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None and message.get("text") is not None:
                await agent.send(message["text"])
            elif data is not None:
                await agent.send(data)

    async def downstream() -> None:  # agent → client
        with contextlib.suppress(ConnectionClosed):
            async for data in agent:
                key = "bytes" if isinstance(data, bytes) else "text"
                await send({"type": "websocket.send", key: data})
        code = agent.close_code or 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t.exception() is not None and not isinstance(t.exception(), ConnectionClosed):
                log.warning("WebSocket relay ended: %s", t.exception())
        if tasks[0] in done:  # the client left first: give the agent a moment to finish
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await agent.close()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


def query_string(pairs: Sequence[tuple[str, str]]) -> str:
    return ("?" + urlencode(list(pairs))) if pairs else ""
