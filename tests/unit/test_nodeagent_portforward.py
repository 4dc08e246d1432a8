"""Port-forward sessions with the real codec, a real socket pair and real TCP servers.

The client here does what client-go's ``PortForwarder.handleConnection`` does per
local connection (error stream, half-closed at once; data stream; reset of the
data stream after the pod's FIN; read the error stream to its end). The pod is an
asyncio server on 127.0.0.1; the session reaches it through ``dial_in_netns(None)``,
the same dialer a node agent uses with the pod's namespace name.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from nodeagent.api import portforward, spdy

TIMEOUT = 10.0


@dataclass
class Received:
    data: bytearray = field(default_factory=bytearray)
    replied: bool = False
    reply_fin: bool = False
    fin: bool = False


class Client:
    """kubectl's side of one port-forward connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
        self.streams: dict[int, Received] = {}
        self.others: list[spdy.Frame] = []
        self.next_id = 1
        self.changed = asyncio.Condition()
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while data := await self.reader.read(65536):
            for frame in self.decoder.feed(data):
                if isinstance(frame, spdy.SynReply):
                    got = self.streams.setdefault(frame.stream_id, Received())
                    got.replied, got.reply_fin = True, frame.fin
                elif isinstance(frame, spdy.DataFrame):
                    got = self.streams.setdefault(frame.stream_id, Received())
                    got.data += frame.data
                    got.fin = got.fin or frame.fin
                else:
                    self.others.append(frame)
            async with self.changed:
                self.changed.notify_all()

    async def until(self, predicate: Callable[[], object], what: str) -> None:
        async with asyncio.timeout(TIMEOUT), self.changed:
            try:
                await self.changed.wait_for(predicate)
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}") from None

    def send(self, frame: spdy.Frame) -> None:
        self.writer.write(self.encoder.encode(frame))

    def open(self, headers: dict[str, str]) -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        self.streams[sid] = Received()
        self.send(spdy.SynStream(sid, headers))
        return sid

    def forward(self, port: int, request: str) -> tuple[int, int]:
        """Open the error and data streams of one forwarded connection, as kubectl does."""
        headers = {"streamtype": "error", "port": str(port), "requestid": request}
        error = self.open(headers)
        self.send(spdy.DataFrame(error, fin=True))  # kubectl never writes to it
        data = self.open({**headers, "streamtype": "data"})
        return error, data

    async def finish(self, error: int, data: int) -> str:
        """After the pod's FIN: reset the data stream, read the error stream to its end."""
        await self.until(lambda: self.streams[data].fin, "the data stream's FIN")
        self.send(spdy.RstStream(data, spdy.CANCEL))
        await self.until(lambda: self.streams[error].fin, "the error stream's FIN")
        return self.streams[error].data.decode()


@dataclass
class Harness:
    client: Client
    session: asyncio.Task[None]
    pod_port: int
    pod_log: list[bytes]


async def pod_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                       Awaitable[None]]) -> tuple[asyncio.Server, int]:
    # port 0 in this process: the listening socket is held from bind on, no race
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def harness(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                    Awaitable[None]] | None = None,
                  *, creation_timeout: float = portforward.CREATION_TIMEOUT,
                  ) -> AsyncIterator[Harness]:
    pod_log: list[bytes] = []

    async def echo_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             ) -> None:
        line = await reader.readline()
        pod_log.append(line)
        writer.write(b"echo:" + line)
        await writer.drain()
        writer.close()

    server, port = await pod_server(handler or echo_until_eof)
    ours, theirs = socket.socketpair()
    s_reader, s_writer = await asyncio.open_connection(sock=ours)
    c_reader, c_writer = await asyncio.open_connection(sock=theirs)
    session = asyncio.ensure_future(portforward.serve(
        portforward.StreamChannel(s_reader, s_writer), portforward.dial_in_netns(None),
        pod="web", uid="u-1", creation_timeout=creation_timeout))
    client = Client(c_reader, c_writer)
    try:
        yield Harness(client, session, port, pod_log)
    finally:
        c_writer.close()
        async with asyncio.timeout(TIMEOUT):
            await session  # the client going away ends the session
        client.pump.cancel()
        s_writer.close()
        server.close()


def run(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await coro

    asyncio.run(main())


def test_one_connection_is_piped_to_the_pod_and_closed_as_kubectl_expects() -> None:
    async def scenario() -> None:
        async with harness() as h:
            error, data = h.client.forward(h.pod_port, "0")
            h.client.send(spdy.DataFrame(data, b"hello\n"))
            assert await h.client.finish(error, data) == ""
            assert h.client.streams[data].data == b"echo:hello\n"
            assert h.client.streams[error].replied and h.client.streams[data].replied
            assert not h.client.streams[data].reply_fin
            assert h.pod_log == [b"hello\n"]

    run(scenario())


def test_concurrent_connections_share_one_session() -> None:
    async def scenario() -> None:
        async with harness() as h:
            first = h.client.forward(h.pod_port, "0")
            second = h.client.forward(h.pod_port, "1")
            # interleaved: the second connection talks before the first
            h.client.send(spdy.DataFrame(second[1], b"two\n"))
            h.client.send(spdy.DataFrame(first[1], b"one\n"))
            assert await h.client.finish(*second) == ""
            assert await h.client.finish(*first) == ""
            assert h.client.streams[first[1]].data == b"echo:one\n"
            assert h.client.streams[second[1]].data == b"echo:two\n"

    run(scenario())


def test_the_clients_fin_half_closes_the_pod_connection() -> None:
    async def read_all_then_answer(reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
        body = await reader.read()  # until EOF: only a half-close gets here
        writer.write(f"got {len(body)} bytes".encode())
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with harness(read_all_then_answer) as h:
            error, data = h.client.forward(h.pod_port, "0")
            h.client.send(spdy.DataFrame(data, b"x" * 100_000))
            h.client.send(spdy.DataFrame(data, fin=True))
            assert await h.client.finish(error, data) == ""
            assert h.client.streams[data].data == b"got 100000 bytes"

    run(scenario())


def test_a_large_answer_arrives_whole() -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB

    async def send_blob(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(blob)
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with harness(send_blob) as h:
            error, data = h.client.forward(h.pod_port, "0")
            assert await h.client.finish(error, data) == ""
            assert bytes(h.client.streams[data].data) == blob

    run(scenario())


def test_a_closed_pod_port_is_reported_on_the_error_stream() -> None:
    async def scenario() -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
            closed_port = unused.getsockname()[1]
            async with harness() as h:
                error, data = h.client.forward(closed_port, "0")
                message = await h.client.finish(error, data)
                assert message == (f"error forwarding port {closed_port} to pod web, "
                                   f"uid u-1: dial tcp 127.0.0.1:{closed_port}: connect: "
                                   "connection refused")

    run(scenario())


@pytest.mark.parametrize(("headers", "why"), [
    ({"streamtype": "data", "requestid": "0"}, "no port"),
    ({"streamtype": "data", "port": "0", "requestid": "0"}, "port 0"),
    ({"streamtype": "data", "port": "http", "requestid": "0"}, "a named port"),
    ({"streamtype": "data", "port": "70000", "requestid": "0"}, "past 65535"),
    ({"port": "80", "requestid": "0"}, "no stream type"),
    ({"streamtype": "resize", "port": "80", "requestid": "0"}, "an unknown stream type"),
])
def test_a_stream_with_bad_headers_is_rejected(headers: dict[str, str], why: str) -> None:
    async def scenario() -> None:
        async with harness() as h:
            sid = h.client.open(headers)
            await h.client.until(lambda: h.client.streams[sid].replied, "the reply")
            assert h.client.streams[sid].reply_fin, why

    run(scenario())


def test_streams_problem_messages_match_the_kubelets() -> None:
    assert portforward.stream_problem({"streamtype": "data"}) == '"port" header is required'
    assert portforward.stream_problem({"port": "80"}) == '"streamtype" header is required'
    assert portforward.stream_problem({"port": "80", "streamtype": "x"}) == (
        "invalid stream type 'x'")
    assert portforward.stream_problem({"port": "80", "streamtype": "error"}) is None


def test_an_incomplete_pair_times_out_on_its_error_stream() -> None:
    async def scenario() -> None:
        async with harness(creation_timeout=0.2) as h:
            error = h.client.open({"streamtype": "error", "port": str(h.pod_port),
                                   "requestid": "7"})
            await h.client.until(lambda: h.client.streams[error].fin, "the error stream's FIN")
            assert h.client.streams[error].data.decode().endswith(
                "request=7) timed out waiting for streams")

    run(scenario())


def test_a_second_data_stream_for_one_request_is_an_error() -> None:
    async def scenario() -> None:
        async with harness() as h:
            error = h.client.open({"streamtype": "error", "port": "1", "requestid": "0"})
            # a data stream to a port nobody dials yet, then a duplicate of it
            h.client.open({"streamtype": "data", "port": "1", "requestid": "9"})
            h.client.open({"streamtype": "data", "port": "1", "requestid": "9"})
            await h.client.until(lambda: len(h.client.streams) == 3 and all(
                s.replied for s in h.client.streams.values()), "three replies")
            assert h.client.streams[error].data == b""

    run(scenario())


def test_without_request_ids_streams_pair_by_id() -> None:
    async def scenario() -> None:
        async with harness() as h:
            error = h.client.open({"streamtype": "error", "port": str(h.pod_port)})
            data = h.client.open({"streamtype": "data", "port": str(h.pod_port)})
            h.client.send(spdy.DataFrame(data, b"old\n"))
            assert await h.client.finish(error, data) == ""
            assert h.client.streams[data].data == b"echo:old\n"

    run(scenario())


def test_pings_are_echoed_and_unknown_frames_ignored() -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.client.send(spdy.Settings(((0, 7, 65536),)))
            h.client.send(spdy.WindowUpdate(0, 1000))
            h.client.send(spdy.Ping(5))
            await h.client.until(lambda: spdy.Ping(5) in h.client.others, "the ping's echo")

    run(scenario())


def test_broken_framing_ends_the_session_with_goaway() -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.client.writer.write(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
            async with asyncio.timeout(TIMEOUT):
                await h.session
            await h.client.until(lambda: h.client.others, "the GOAWAY")
            assert h.client.others == [spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)]

    run(scenario())


def test_the_client_going_away_closes_the_pod_connections() -> None:
    pod_connected, pod_saw_eof = asyncio.Event(), asyncio.Event()

    async def wait_for_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pod_connected.set()
        await reader.read()
        pod_saw_eof.set()
        writer.close()

    async def scenario() -> None:
        async with harness(wait_for_eof) as h:
            error, data = h.client.forward(h.pod_port, "0")
            h.client.send(spdy.DataFrame(data, b"partial"))
            async with asyncio.timeout(TIMEOUT):
                await pod_connected.wait()
            h.client.writer.close()
            async with asyncio.timeout(TIMEOUT):
                await h.session
                await pod_saw_eof.wait()

    run(scenario())


def test_a_pod_that_stops_reading_does_not_stall_the_other_connections() -> None:
    async def close_on_request(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line != b"close\n":
            writer.write(b"echo:" + line)
            await writer.drain()
        writer.close()  # with data still coming for "close"

    async def scenario() -> None:
        async with harness(close_on_request) as h:
            error, data = h.client.forward(h.pod_port, "0")
            h.client.send(spdy.DataFrame(data, b"close\n"))
            await h.client.until(lambda: h.client.streams[data].fin, "the pod's FIN")
            # far more than a stream's queue holds, for a connection nobody reads
            for _ in range(portforward.QUEUE_FRAMES * 4):
                h.client.send(spdy.DataFrame(data, b"x" * 1024))
            other = h.client.forward(h.pod_port, "1")
            h.client.send(spdy.DataFrame(other[1], b"still here\n"))
            assert await h.client.finish(*other) == ""
            assert h.client.streams[other[1]].data == b"echo:still here\n"
            assert await h.client.finish(error, data) == ""

    run(scenario())


def test_a_namespace_that_is_gone_is_reported_on_the_error_stream() -> None:
    async def scenario() -> None:
        channel_ends = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=channel_ends[0])
        c_reader, c_writer = await asyncio.open_connection(sock=channel_ends[1])
        # no such namespace: entering it fails before any socket is made (root or not)
        session = asyncio.ensure_future(portforward.serve(
            portforward.StreamChannel(reader, writer),
            portforward.dial_in_netns("mp-pf-test-no-such-ns"), pod="web", uid="u-1"))
        client = Client(c_reader, c_writer)
        error, data = client.forward(8080, "0")
        message = await client.finish(error, data)
        assert message == ("error forwarding port 8080 to pod web, uid u-1: cannot enter the "
                           "pod's network namespace mp-pf-test-no-such-ns: No such file or "
                           "directory")
        c_writer.close()
        async with asyncio.timeout(TIMEOUT):
            await session
        client.pump.cancel()
        writer.close()

    run(scenario())
