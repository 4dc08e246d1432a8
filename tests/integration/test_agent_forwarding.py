"""The node agent's ``/portForward`` and ``/podProxy`` routes on a real uvicorn server.

The routes run as the agent serves them (Starlette under uvicorn with the
``websockets`` implementation), driven by a real WebSocket client speaking SPDY
with our codec and by httpx; the "pod" is a real TCP/HTTP server on 127.0.0.1
and the pod record a stand-in naming no network namespace, so the dialer
connects from here (``dial_in_netns(None)``). TLS and the caller check of the
agent's server are ``nodeagent.api.server``'s and tested with it; pods in real
namespaces are the end-to-end tests' (tests/e2e/test_portforward.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from nodeagent.api import forwarding, podproxy, spdy

TIMEOUT = 10.0


@dataclass
class StandInWorker:
    """What the routes read of a ``PodWorker``."""

    key: str
    uid: str
    ip: str | None
    ns: str | None = None
    terminating: asyncio.Event = field(default_factory=asyncio.Event)


class EchoHandler(BaseHTTPRequestHandler):
    """The pod's web server: answers with what it was asked, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        doc = {"method": self.command, "path": self.path, "body": body,
               "authorization": self.headers.get("authorization"),
               "host": self.headers.get("host")}
        data = json.dumps(doc).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "a=1")
        self.send_header("set-cookie", "b=2")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_pod() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)  # port 0: bound here, no race
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.asynccontextmanager
async def agent(workers: list[StandInWorker]) -> AsyncIterator[int]:
    app = Starlette(routes=[*forwarding.routes(lambda: workers),
                            *podproxy.routes(lambda: workers)])
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, ws="websockets", lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await task
        sock.close()


async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"pod says " + line)
    await writer.drain()
    writer.close()


class Tunnel:
    """kubectl's side of the WebSocket-tunnelled SPDY connection."""

    def __init__(self, ws: object) -> None:
        self.ws = ws
        self.encoder, self.decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
        self.data: dict[int, bytearray] = {}
        self.fin: set[int] = set()

    async def send(self, *frames: spdy.Frame) -> None:
        for frame in frames:
            await self.ws.send(self.encoder.encode(frame))  # type: ignore[attr-defined]

    async def until_fin(self, *streams: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not set(streams) <= self.fin:
                message = await self.ws.recv()  # type: ignore[attr-defined]
                for frame in self.decoder.feed(message):
                    if isinstance(frame, spdy.DataFrame):
                        self.data.setdefault(frame.stream_id, bytearray()).extend(frame.data)
                        if frame.fin:
                            self.fin.add(frame.stream_id)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_port_forward_through_the_agent_route() -> None:
    async def scenario() -> None:
        pod = await asyncio.start_server(echo_line, "127.0.0.1", 0)
        port = pod.sockets[0].getsockname()[1]
        workers = [StandInWorker("default/web", "u-1", "127.0.0.1")]
        # as the API server opens it: the websockets client cannot offer the subprotocol
        # kubectl offers ("/" is not a token character), so it offers none
        async with agent(workers) as agent_port, connect(
                f"ws://127.0.0.1:{agent_port}/portForward/default/web") as ws:
            assert ws.subprotocol is None
            tunnel = Tunnel(ws)
            # two forwarded connections at once, as two local clients of kubectl
            for request, (error, data) in enumerate(((1, 3), (5, 7))):
                headers = {"streamtype": "error", "port": str(port),
                           "requestid": str(request)}
                await tunnel.send(spdy.SynStream(error, headers),
                                  spdy.DataFrame(error, fin=True),
                                  spdy.SynStream(data, {**headers, "streamtype": "data"}))
            await tunnel.send(spdy.DataFrame(7, b"two\n"), spdy.DataFrame(3, b"one\n"))
            await tunnel.until_fin(3, 7)
            await tunnel.send(spdy.RstStream(3, spdy.CANCEL), spdy.RstStream(7, spdy.CANCEL))
            await tunnel.until_fin(1, 5)
            assert tunnel.data[3] == b"pod says one\n" and tunnel.data[7] == b"pod says two\n"
            assert tunnel.data.get(1, b"") == b"" and tunnel.data.get(5, b"") == b""
        pod.close()

    run(scenario())


@pytest.mark.parametrize(("path", "subprotocols", "status", "text"), [
    ("/portForward/default/web", ["v4.channel.k8s.io"], 400, "SPDY/3.1+portforward.k8s.io"),
    ("/portForward/default/nope", [], 404,
     'pod "nope" in namespace "default" is not on this node'),
])
def test_port_forward_refusals(path: str, subprotocols: list[str], status: int,
                               text: str) -> None:
    async def scenario() -> None:
        workers = [StandInWorker("default/web", "u-1", "127.0.0.1")]
        async with agent(workers) as agent_port:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(f"ws://127.0.0.1:{agent_port}{path}",
                                   subprotocols=subprotocols or None):  # type: ignore[arg-type]
                    pass
            assert caught.value.response.status_code == status
            assert text in (caught.value.response.body or b"").decode()

    run(scenario())


def test_pod_proxy_relays_method_path_body_and_answer() -> None:
    async def scenario() -> None:
        with http_pod() as port:
            workers = [StandInWorker("default/web", "u-1", "127.0.0.1")]
            async with agent(workers) as agent_port, httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{agent_port}/podProxy/default/web/http:{port}"
                got = await client.get(f"{base}/a/b%2Fc?x=1&y=2")
                assert got.status_code == 200
                doc = got.json()
                assert doc["path"] == "/a/b%2Fc?x=1&y=2"
                assert doc["host"] == f"127.0.0.1:{port}"
                assert got.headers.get_list("set-cookie") == ["a=1", "b=2"]
                assert podproxy.PROXY_ERROR_HEADER not in got.headers
                posted = await client.post(f"{base}/form", content=b"k=v")
                assert posted.status_code == 201
                assert posted.json()["method"] == "POST" and posted.json()["body"] == "k=v"

    run(scenario())


@pytest.mark.parametrize(("target", "pod", "status", "text"), [
    ("http:1", "web", 503, "error trying to reach service: dial tcp 127.0.0.1:1: connect: "
                           "connection refused"),
    ("ftp:21", "web", 400, "invalid proxy target 'ftp:21'"),
    ("http:80", "nope", 404, 'pod "nope" in namespace "default" is not on this node'),
    ("http:80", "starting", 503, 'pod "starting" has no IP address yet'),
])
def test_pod_proxy_refusals_are_marked_as_the_agents(target: str, pod: str, status: int,
                                                     text: str) -> None:
    async def scenario() -> None:
        workers = [StandInWorker("default/web", "u-1", "127.0.0.1"),
                   StandInWorker("default/starting", "u-2", None)]
        async with agent(workers) as agent_port, httpx.AsyncClient() as client:
            got = await client.get(
                f"http://127.0.0.1:{agent_port}/podProxy/default/{pod}/{target}/")
            assert got.status_code == status
            assert got.headers.get(podproxy.PROXY_ERROR_HEADER) == "true"
            assert text in got.text

    run(scenario())
