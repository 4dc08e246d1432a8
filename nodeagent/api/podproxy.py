"""``/podProxy/{namespace}/{pod}/{scheme}:{port}/{path}``: HTTP to a pod, from inside it.

kube-apiserver serves ``pods/proxy`` and ``services/proxy`` by connecting to the
pod's IP itself. miniplane's API server never connects to a cluster address, so
it hands the request to the agent of the pod's node, which connects to
``<pod IP>:<port>`` with a socket made *inside the pod's network namespace*
(``portforward.dial_in_netns``, the dialer port-forward uses) and relays the
request and the streamed answer. ``https`` is spoken without checking the pod's
certificate, as kube-apiserver's proxy does.

The pod's answer passes through whatever its status; an answer the agent makes
itself (unknown pod, bad target, unreachable port) carries ``PROXY_ERROR_HEADER``
so the API server can tell it from the pod's own and turn it into a ``Status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from componentbase.hopbyhop import PROXY_ERROR_HEADER, relayed_headers
from nodeagent.api import portforward
from nodeagent.api.pods import NotServed, Workers, find_worker

log = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONNECT_TIMEOUT = 10.0


def parse_target(target: str) -> tuple[str, int]:
    """``http:8080`` → ("http", 8080); ``NotServed`` (400) for anything else."""
    scheme, _, port_text = target.partition(":")
    if scheme not in ("http", "https") or not port_text.isdigit() or not (
            0 < int(port_text) < 65536):
        raise NotServed(400, f"invalid proxy target {target!r}: want http:<port> or "
                             "https:<port>")
    return scheme, int(port_text)


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of a connection made by ``portforward.dial_in_netns``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("the pod did not answer in time") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(buffer)
                await self.writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("the pod did not take the request in time") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self.writer.start_tls(ssl_context, server_hostname=server_hostname)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"TLS with the pod: {exc}") from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        return self.writer.get_extra_info(info)


class NetnsBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connections, made inside network namespace ``netns``."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        dial = portforward.dial_in_netns(self.netns, host=host)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await dial(port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"dial tcp {host}:{port}: i/o timeout") from None
        except OSError as exc:
            raise httpcore.ConnectError(exc.strerror or str(exc)) from exc
        return _Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # kube-apiserver's proxy does not check pods' certificates
    return ctx


def agent_error(code: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=code,
                             headers={PROXY_ERROR_HEADER: "true"})


async def forward(request: Request, *, netns: str | None, scheme: str, host: str, port: int,
                  path: str) -> Response:
    """Relay ``request`` to ``scheme://host:port/path`` from inside ``netns``."""
    query = request.url.query
    url = f"{scheme}://{host}:{port}/{path.lstrip('/')}" + (f"?{query}" if query else "")
    headers = relayed_headers(request.headers.items(), drop=("host",))
    headers.append(("host", f"{host}:{port}"))
    body: AsyncIterator[bytes] | bytes = b""
    if "content-length" in request.headers:
        body = request.stream()
    elif "chunked" in request.headers.get("transfer-encoding", "").lower():
        headers.append(("transfer-encoding", "chunked"))
        body = request.stream()
    pool = httpcore.AsyncConnectionPool(network_backend=NetnsBackend(netns),
                                        ssl_context=_insecure(), max_connections=1, retries=0)
    try:
        response = await pool.handle_async_request(httpcore.Request(
            request.method, url, headers=[(n.encode(), v.encode()) for n, v in headers],
            content=body, extensions={"timeout": {"connect": CONNECT_TIMEOUT,
                                                  "pool": CONNECT_TIMEOUT}}))
    except httpcore.TimeoutException as exc:
        await pool.aclose()
        return agent_error(503, f"error trying to reach service: {exc}")
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        await pool.aclose()
        return agent_error(503, f"error trying to reach service: {exc}")

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_stream():
                yield chunk
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            log.info("proxy to %s: the answer broke off: %s", url, exc)
        finally:
            await response.aclose()
            await pool.aclose()

    answer = relayed_headers((n.decode("latin-1"), v.decode("latin-1"))
                             for n, v in response.headers)
    streamed = StreamingResponse(relay(), status_code=response.status)
    # repeated names (Set-Cookie) kept as they came, which a header mapping would merge
    streamed.raw_headers = [(n.lower().encode("latin-1"), v.encode("latin-1"))
                            for n, v in answer]
    return streamed


def _raw_tail(request: Request) -> str:
    """The path after the target as the caller encoded it (``%2F`` stays itself)."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):  # /podProxy/<ns>/<pod>/<target>/<tail>
        parts = raw.decode("latin-1").split("/", 5)
        return parts[5] if len(parts) > 5 else ""
    return str(request.path_params["path"])


def routes(workers: Workers) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        p = request.path_params
        try:
            scheme, port = parse_target(p["target"])
            worker = find_worker(workers, p["namespace"], p["pod"])
        except NotServed as exc:
            return agent_error(exc.code, str(exc))
        if not worker.ip:
            return agent_error(503, f'pod "{p["pod"]}" has no IP address yet')
        return await forward(request, netns=worker.ns, scheme=scheme, host=worker.ip,
                             port=port, path=_raw_tail(request))

    return [Route("/podProxy/{namespace}/{pod}/{target}/{path:path}", endpoint,
                  methods=METHODS)]
