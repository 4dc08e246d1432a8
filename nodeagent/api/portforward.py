"""Port-forward sessions: kubectl's SPDY stream pairs piped to TCP inside a pod.

One session is one upgraded connection from ``kubectl port-forward`` (through
the API server). For every local connection kubectl opens two SPDY streams that
share a ``requestID`` header: ``streamType: error`` (which kubectl half-closes at
once and then reads to the end) and ``streamType: data``, both naming the pod's
``port``. When a pair is complete the session connects to ``127.0.0.1:<port>``
*inside the pod's network namespace* (the dialer makes the socket there) and pipes
bytes both ways: the client's FIN half-closes the pod connection, the pod's EOF
becomes a FIN on the data stream, and the error stream is closed last, which is
kubectl's signal that this connection is over.

What the kubelet does and this copies (pkg/kubelet/cri/streaming/portforward):

- a stream without a valid ``port`` or ``streamType`` header is rejected (its
  reply carries FIN); a request without ``requestID`` (old clients) is paired by
  stream id, error stream ``n`` with data stream ``n + 2``;
- a pair not completed within ``creation_timeout`` (30 s) is dropped with
  "timed out waiting for streams" on its error stream;
- a pod port that cannot be reached is reported on the error stream as
  ``error forwarding port <port> to pod <name>, uid <uid>: <reason>`` (kubectl
  prints it and, as with a kubelet, ends the whole port-forward).

The transport is a ``Channel`` (read bytes, write bytes), so the same session
serves the WebSocket tunnel kubectl 1.31+ uses and a plain ``Upgrade: SPDY/3.1``
connection. Backpressure: the read loop waits while a stream's queue toward a
slow pod is full, which pauses the whole connection, as spdystream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from nodeagent.api import spdy
from nodeagent.pods.netns import socket_in

log = logging.getLogger(__name__)

STREAM_TYPE = "streamtype"
PORT = "port"
REQUEST_ID = "requestid"
TYPE_ERROR = "error"
TYPE_DATA = "data"

CREATION_TIMEOUT = 30.0  # kubelet's StreamCreationTimeout default
READ_CHUNK = 32 * 1024  # one DATA frame per read from the pod
QUEUE_FRAMES = 64  # client DATA frames held per stream before the read loop waits
RST_STREAM_IN_USE = 8  # RST_STREAM status: a SYN_STREAM reused a live stream id


class Channel(Protocol):
    """The upgraded connection: a byte stream in each direction."""

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it is gone."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes to the client; ``ConnectionError`` if it is gone."""
        ...


class StreamChannel:
    """A ``Channel`` over an asyncio stream pair (a plain SPDY upgrade, a test)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(64 * 1024)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Dial = Callable[[int], Awaitable[Connection]]
"""Open a TCP connection to a port of the pod (raises ``OSError`` when it can't)."""


def dial_in_netns(netns: str | None, *, host: str = "127.0.0.1") -> Dial:
    """A ``Dial`` connecting to ``host:port`` inside network namespace ``netns``.

    The socket is made in the namespace on a short-lived thread and connected
    from the event loop: it keeps the namespace for life, so ``127.0.0.1`` is
    the pod's loopback, as a container runtime's port-forward reaches it.
    """
    async def dial(port: int) -> Connection:
        made = asyncio.ensure_future(asyncio.to_thread(socket_in, netns))
        try:
            sock = await asyncio.shield(made)
        except asyncio.CancelledError:  # the thread finishes anyway: close what it makes
            made.add_done_callback(_close_made_socket)
            raise
        except OSError as exc:  # the namespace is gone (the pod went) or can't be entered
            raise OSError(exc.errno, f"cannot enter the pod's network namespace {netns}: "
                                     f"{exc.strerror or exc}") from exc
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            return await asyncio.open_connection(sock=sock)
        except OSError as exc:
            sock.close()
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            # worded as Go's net.Dial error a kubelet's runtime would report
            raise OSError(exc.errno, f"dial tcp {host}:{port}: connect: {reason}") from exc
        except BaseException:
            sock.close()
            raise

    return dial


def _close_made_socket(made: asyncio.Future[socket.socket]) -> None:
    if not made.cancelled() and made.exception() is None:
        made.result().close()


def stream_problem(headers: spdy.Headers) -> str | None:
    """Why a new stream is rejected, or None (kubelet's ``httpStreamReceived``)."""
    port = spdy.first(headers, PORT)
    if not port:
        return f'"{PORT}" header is required'
    if not port.isdigit() or int(port) > 65535:
        return f"unable to parse {port!r} as a port"
    if int(port) < 1:
        return f"port {port!r} must be > 0"
    kind = spdy.first(headers, STREAM_TYPE)
    if not kind:
        return f'"{STREAM_TYPE}" header is required'
    if kind not in (TYPE_ERROR, TYPE_DATA):
        return f"invalid stream type {kind!r}"
    return None


def request_id(headers: spdy.Headers, stream_id: int) -> str:
    """The pair a stream belongs to: its ``requestID``, else derived from its id.

    Clients before ``requestID`` opened error then data streams back to back,
    so error stream ``n`` pairs with data stream ``n + 2`` (kubelet's guess too).
    """
    given = spdy.first(headers, REQUEST_ID)
    if given:
        return given
    if spdy.first(headers, STREAM_TYPE) == TYPE_DATA:
        return str(stream_id - 2)
    return str(stream_id)


@dataclass
class _Stream:
    stream_id: int
    kind: str
    port: int
    inbound: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_FRAMES))
    remote_closed: bool = False  # the client sent FIN or RST
    local_closed: bool = False  # we sent FIN or RST
    reset: bool = False
    unread: bool = False  # nothing takes what the client sends any more: it is dropped


@dataclass
class _Pair:
    request_id: str
    error: _Stream | None = None
    data: _Stream | None = None
    timer: asyncio.TimerHandle | None = None


class PortForwardSession:
    """One kubectl port-forward connection to one pod; ``run`` until it ends."""

    def __init__(self, channel: Channel, dial: Dial, *, pod: str, uid: str,
                 creation_timeout: float = CREATION_TIMEOUT) -> None:
        self._channel = channel
        self._dial = dial
        self._pod, self._uid = pod, uid
        self._creation_timeout = creation_timeout
        self._encoder = spdy.FrameEncoder()
        self._decoder = spdy.FrameDecoder()
        self._write_lock = asyncio.Lock()
        self._streams: dict[int, _Stream] = {}
        self._pairs: dict[str, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_stream_id = 0
        self._closed = False

    async def run(self) -> None:
        """Serve streams until the client goes away, sends GOAWAY or breaks framing."""
        try:
            while not self._closed:
                data = await self._channel.read()
                if not data:
                    return
                try:
                    frames = self._decoder.feed(data)
                except spdy.SpdyProtocolError as exc:
                    log.info("port-forward to %s: %s", self._pod, exc)
                    with contextlib.suppress(ConnectionError):
                        await self._send(spdy.GoAway(self._last_stream_id,
                                                     spdy.GOAWAY_PROTOCOL_ERROR))
                    return
                for frame in frames:
                    await self._handle(frame)
        except ConnectionError:
            return  # the client went away while we wrote to it
        finally:
            self._closed = True
            for pair in self._pairs.values():
                if pair.timer is not None:
                    pair.timer.cancel()
            for stream in list(self._streams.values()):
                # wakes a forward waiting on the client; it then closes its pod connection
                self._client_reset(stream)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # frames from the client

    async def _handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._syn_stream(frame)
        elif isinstance(frame, spdy.DataFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is None or stream.remote_closed:
                return  # late data for a stream already over: nothing to deliver it to
            if frame.data and stream.kind == TYPE_DATA and not stream.unread:
                await stream.inbound.put(frame.data)
            if frame.fin:
                await self._client_fin(stream)
        elif isinstance(frame, spdy.RstStream):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                self._client_reset(stream)
        elif isinstance(frame, spdy.Ping):
            await self._send(frame)  # client pings (odd ids) are echoed
        elif isinstance(frame, spdy.GoAway):
            self._closed = True
        # SETTINGS, WINDOW_UPDATE, HEADERS and SYN_REPLY carry nothing port-forward uses

    async def _syn_stream(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self._last_stream_id:
            status = RST_STREAM_IN_USE if sid in self._streams else spdy.PROTOCOL_ERROR
            await self._send(spdy.RstStream(sid, status))
            return
        self._last_stream_id = sid
        problem = stream_problem(frame.headers)
        if problem is not None:
            log.info("port-forward to %s: stream %d rejected: %s", self._pod, sid, problem)
            await self._send(spdy.SynReply(sid, fin=True))
            return
        stream = _Stream(sid, spdy.first(frame.headers, STREAM_TYPE),
                         int(spdy.first(frame.headers, PORT)))
        self._streams[sid] = stream
        await self._send(spdy.SynReply(sid))
        if frame.fin:
            await self._client_fin(stream)
        rid = request_id(frame.headers, sid)
        pair = self._pairs.get(rid)
        if pair is None:
            pair = self._pairs[rid] = _Pair(rid)
            pair.timer = asyncio.get_running_loop().call_later(
                self._creation_timeout, lambda: self._spawn(self._timed_out(pair)))
        slot = "error" if stream.kind == TYPE_ERROR else "data"
        if getattr(pair, slot) is not None:
            await self._write_error(pair, f"error processing stream for request {rid}: "
                                          f"{slot} stream already assigned")
            self._stop_reading(stream)
            await self._finish(stream)
            return
        setattr(pair, slot, stream)
        if pair.error is not None and pair.data is not None:
            if pair.timer is not None:
                pair.timer.cancel()
            self._spawn(self._forward(pair))

    async def _client_fin(self, stream: _Stream) -> None:
        """The client will send no more on ``stream``: queue the end marker."""
        if stream.remote_closed:
            return
        stream.remote_closed = True
        await stream.inbound.put(None)
        self._forget_if_done(stream)

    def _stop_reading(self, stream: _Stream) -> None:
        """Nothing will take ``stream``'s data any more (the pod connection is gone, or
        never came): drop what is queued and what follows, so the read loop, which
        waits on a full queue, never waits for it."""
        stream.unread = True
        while not stream.inbound.empty():
            stream.inbound.get_nowait()

    def _client_reset(self, stream: _Stream) -> None:
        """``stream`` is over both ways: drop what was queued, wake its forward."""
        stream.reset = stream.remote_closed = stream.local_closed = True
        while not stream.inbound.empty():
            stream.inbound.get_nowait()
        stream.inbound.put_nowait(None)
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: _Stream) -> None:
        if stream.remote_closed and stream.local_closed:
            self._streams.pop(stream.stream_id, None)

    # forwarding

    async def _forward(self, pair: _Pair) -> None:
        assert pair.error is not None and pair.data is not None
        data, error = pair.data, pair.error
        try:
            try:
                reader, writer = await self._dial(data.port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                await self._write_error(pair, f"error forwarding port {data.port} to pod "
                                              f"{self._pod}, uid {self._uid}: {reason}")
                log.info("port-forward to %s port %d: %s", self._pod, data.port, reason)
                return
            log.debug("port-forward to %s port %d: request %s connected",
                      self._pod, data.port, pair.request_id)
            upstream = asyncio.ensure_future(self._client_to_pod(data, writer))
            try:
                await self._pod_to_client(data, reader)
                await upstream  # until the client's FIN or RST
            finally:
                upstream.cancel()
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        finally:
            self._pairs.pop(pair.request_id, None)
            self._stop_reading(data)
            await self._finish(data)
            await self._finish(error)

    async def _client_to_pod(self, data: _Stream, writer: asyncio.StreamWriter) -> None:
        while True:
            chunk = await data.inbound.get()
            if chunk is None:
                if data.reset:
                    writer.close()  # the pod side read then ends, and the forward with it
                elif writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                self._stop_reading(data)  # the pod closed: its EOF ends the other direction
                return

    async def _pod_to_client(self, data: _Stream, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                chunk = await reader.read(READ_CHUNK)
            except OSError:
                chunk = b""  # a reset from the pod ends the stream like an EOF
            if data.local_closed:
                return
            if not chunk:
                await self._finish(data)  # kubectl resets the stream once it sees this
                return
            await self._send(spdy.DataFrame(data.stream_id, chunk))

    async def _write_error(self, pair: _Pair, message: str) -> None:
        if pair.error is not None and not pair.error.local_closed:
            await self._send(spdy.DataFrame(pair.error.stream_id, message.encode()))

    async def _timed_out(self, pair: _Pair) -> None:
        if self._pairs.get(pair.request_id) is not pair:
            return
        del self._pairs[pair.request_id]
        await self._write_error(pair, f"(conn={id(self):#x}, request={pair.request_id}) "
                                      "timed out waiting for streams")
        for stream in (pair.error, pair.data):
            if stream is not None:
                self._stop_reading(stream)
                await self._finish(stream)

    async def _finish(self, stream: _Stream) -> None:
        """Half-close our side of ``stream`` (FIN), once."""
        if stream.local_closed:
            self._forget_if_done(stream)
            return
        stream.local_closed = True
        self._forget_if_done(stream)
        with contextlib.suppress(ConnectionError):
            await self._send(spdy.DataFrame(stream.stream_id, fin=True))

    # plumbing

    async def _send(self, frame: spdy.Frame) -> None:
        if self._closed and not isinstance(frame, spdy.GoAway):
            raise ConnectionError("port-forward session closed")
        async with self._write_lock:  # header compression state: encode and write in order
            payload = self._encoder.encode(frame)
            try:
                await self._channel.write(payload)
            except (ConnectionError, OSError) as exc:
                self._closed = True
                raise ConnectionError(str(exc)) from exc

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            with contextlib.suppress(ConnectionError):
                await work

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def serve(channel: Channel, dial: Dial, *, pod: str, uid: str,
                creation_timeout: float = CREATION_TIMEOUT) -> None:
    """Serve one port-forward connection (see ``PortForwardSession``)."""
    await PortForwardSession(channel, dial, pod=pod, uid=uid,
                             creation_timeout=creation_timeout).run()

