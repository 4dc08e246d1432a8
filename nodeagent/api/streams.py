"""``/exec/{ns}/{pod}/{container}`` and ``/attach/...`` over WebSocket.

Query (kubelet's names): ``command`` (repeated; exec only), ``stdin``, ``stdout``,
``stderr``, ``tty``. The subprotocol is ``v5.channel.k8s.io`` or ``v4`` (``channels``).

exec runs the command as the container runs (its pod's namespaces, user,
capabilities and mounts: ``PodWorker.exec_argv``), with a pty as its controlling
terminal when ``tty``; it ends with the exit status on the error channel. attach
joins the running container: its output from now on (followed in its log, where
the shim writes it) and, if it has ``stdin: true``, its stdin (``stdinOnce``: closed
when the first attached client's stdin ends); it ends when that instance exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from apimachinery import remotecommand as channels
from componentbase.procs import kill_group
from nodeagent.api.pods import NotServed, Workers, find
from nodeagent.pods import crilog, stdio
from nodeagent.pods.runtime import Container, PodWorker
from nodeagent.pods.security import ROOT_ENV

log = logging.getLogger(__name__)

CHUNK = 32768
FOLLOW_POLL = 0.05
DRAIN = 0.5  # seconds to let an exited container's last output reach its log


def _flag(ws: WebSocket, *names: str) -> bool:
    return any(ws.query_params.get(n, "").lower() in ("1", "true") for n in names)


class Session:
    """One accepted WebSocket speaking a channel protocol."""

    def __init__(self, ws: WebSocket, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        if data:
            async with self.lock:
                await self.ws.send_bytes(channels.frame(channel, data))

    async def finish(self, status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            async with self.lock:
                await self.ws.send_bytes(channels.status_frame(status))
            await self.ws.close()

    async def read(self, *, stdin: Callable[[bytes], Awaitable[None]],
                   end_stdin: Callable[[], Awaitable[None]],
                   resize: Callable[[int, int], None]) -> None:
        """Until the client goes away: stdin, its end (v5's close signal) and resizes."""
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                if not data:
                    continue
                channel, payload = channels.parse(data)
                if channel == channels.STDIN:
                    await stdin(payload)
                elif channel == channels.RESIZE:
                    size = channels.terminal_size(payload)
                    if size is not None:
                        resize(*size)
                elif channel == channels.CLOSE and payload[:1] == bytes((channels.STDIN,)):
                    await end_stdin()
        except (WebSocketDisconnect, RuntimeError):
            return


async def accept(ws: WebSocket) -> Session | None:
    protocol = channels.choose(ws.scope.get("subprotocols") or [])
    if protocol is None:
        await ws.close(code=1002, reason="no supported subprotocol "
                       f"(offer one of {', '.join(channels.PROTOCOLS)})")
        return None
    await ws.accept(subprotocol=protocol)
    return Session(ws, protocol)


def _running(worker: PodWorker, c: Container) -> None:
    if c.pid is None:
        pod = worker.key.split("/", 1)[1]
        raise NotServed(400, f'container "{c.record.name}" in pod "{pod}" is not running')


def routes(workers: Workers) -> list[WebSocketRoute]:
    async def exec_endpoint(ws: WebSocket) -> None:
        await serve(ws, workers, run_exec)

    async def attach_endpoint(ws: WebSocket) -> None:
        await serve(ws, workers, run_attach)

    return [WebSocketRoute("/exec/{namespace}/{pod}/{container}", exec_endpoint),
            WebSocketRoute("/attach/{namespace}/{pod}/{container}", attach_endpoint)]


Runner = Callable[[Session, PodWorker, Container], Awaitable[dict[str, Any]]]


async def serve(ws: WebSocket, workers: Workers, run: Runner) -> None:
    p = ws.path_params
    session = await accept(ws)
    if session is None:
        return
    try:
        worker, c = find(workers, p["namespace"], p["pod"], p["container"])
        _running(worker, c)
        status = await run(session, worker, c)
    except NotServed as exc:
        status = channels.failure(str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the client, logged here
        log.exception("%s of %s/%s failed", ws.url.path.split("/")[1], p["namespace"],
                      p["pod"])
        status = channels.failure(f"{type(exc).__name__}: {exc}")
    await session.finish(status)


# --------------------------------------------------------------------------- exec


async def run_exec(session: Session, worker: PodWorker, c: Container) -> dict[str, Any]:
    ws = session.ws
    command = ws.query_params.getlist("command")
    if not command:
        raise NotServed(400, "you must specify at least one command for the container")
    want_in = _flag(ws, "stdin", "input")
    want_out = _flag(ws, "stdout", "output")
    want_err = _flag(ws, "stderr", "error")
    tty = _flag(ws, "tty")
    try:
        argv = worker.exec_argv(c, command)
    except ValueError as exc:
        raise NotServed(500, f"cannot run in container {c.record.name}: {exc}") from None
    if tty:
        return await _exec_tty(session, argv, command, stdin=want_in)
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=pipe if want_in else null, stdout=pipe if want_out else null,
        stderr=pipe if want_err else null, env=ROOT_ENV, cwd="/", start_new_session=True)
    log.info("exec in %s/%s: %s (pid %d)", worker.key, c.record.name, command, proc.pid)

    async def pump(reader: asyncio.StreamReader | None, channel: int) -> None:
        if reader is None:
            return
        while chunk := await reader.read(CHUNK):
            with contextlib.suppress(Exception):
                await session.send(channel, chunk)

    async def to_stdin(data: bytes) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()

    async def end_stdin() -> None:
        if proc.stdin is not None:
            proc.stdin.close()

    reader = asyncio.create_task(session.read(stdin=to_stdin, end_stdin=end_stdin,
                                              resize=lambda w, h: None))
    pumps = asyncio.gather(pump(proc.stdout, channels.STDOUT),
                           pump(proc.stderr, channels.STDERR))
    return await _until_exit(proc, reader, pumps, command)


async def _exec_tty(session: Session, argv: list[str], command: list[str], *,
                    stdin: bool) -> dict[str, Any]:
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, env=ROOT_ENV, cwd="/",
            start_new_session=True, preexec_fn=stdio.take_terminal)
    finally:
        os.close(slave)

    async def pump() -> None:
        while True:
            try:
                chunk = await asyncio.to_thread(os.read, master, CHUNK)
            except OSError:  # EIO: every holder of the terminal is gone
                return
            if not chunk:
                return
            with contextlib.suppress(Exception):
                await session.send(channels.STDOUT, chunk)

    async def to_stdin(data: bytes) -> None:
        if stdin:
            await asyncio.to_thread(os.write, master, data)

    async def end_stdin() -> None:
        if stdin:
            await asyncio.to_thread(os.write, master, b"\x04")  # a terminal's EOF

    def resize(width: int, height: int) -> None:
        with contextlib.suppress(OSError):
            stdio.resize(master, width=width, height=height)

    reader = asyncio.create_task(session.read(stdin=to_stdin, end_stdin=end_stdin,
                                              resize=resize))
    try:
        return await _until_exit(proc, reader, asyncio.ensure_future(pump()), command)
    finally:
        os.close(master)


async def _until_exit(proc: asyncio.subprocess.Process, reader: asyncio.Task[None],
                      output: asyncio.Future[Any], command: list[str]) -> dict[str, Any]:
    """Wait for the command; a client that goes away first ends it (SIGKILL to its
    session). Its output is sent before its status."""
    waiter = asyncio.ensure_future(proc.wait())
    done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        kill_group(proc.pid, signal.SIGKILL)
    code = await waiter
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN * 4):
            await asyncio.shield(output)
    output.cancel()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await reader
    code = 128 - code if code < 0 else code
    return channels.exit_status(code, command)


# --------------------------------------------------------------------------- attach


async def run_attach(session: Session, worker: PodWorker, c: Container) -> dict[str, Any]:
    ws = session.ws
    want_in = _flag(ws, "stdin", "input")
    want_out = _flag(ws, "stdout", "output") or _flag(ws, "stderr", "error")
    if want_in and not c.spec.get("stdin"):
        raise NotServed(400, f"container {c.record.name} does not have stdin "
                        "(stdin: true) to attach to")
    stdin_once = bool(c.spec.get("stdinOnce"))
    used_stdin = False
    path = worker.log_path(c.record.name)
    instance = c.pid_start

    async def to_stdin(data: bytes) -> None:
        nonlocal used_stdin
        if want_in and c.stdin is not None and c.pid_start == instance:
            used_stdin = True
            fd = c.stdin
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.write, fd, data)

    async def end_stdin() -> None:
        if want_in and stdin_once:
            worker.close_stdin(c)

    def resize(width: int, height: int) -> None:
        if c.tty and c.stdin is not None:
            with contextlib.suppress(OSError):
                stdio.resize(c.stdin, width=width, height=height)

    async def follow() -> None:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            rest = b""
            exited_at: float | None = None
            loop = asyncio.get_running_loop()
            while True:
                chunk = await asyncio.to_thread(f.read, CHUNK)
                if chunk:
                    entries, rest = crilog.parse(rest + chunk)
                    for e in entries:
                        if want_out:
                            await session.send(channels.STDERR if e.stream == "stderr"
                                               and not c.tty else channels.STDOUT,
                                               e.render(timestamps=False))
                    continue
                if c.pid_start != instance or c.exited.is_set():
                    exited_at = exited_at or loop.time()
                    if loop.time() - exited_at >= DRAIN:
                        return
                await asyncio.sleep(FOLLOW_POLL)

    reader = asyncio.create_task(session.read(stdin=to_stdin, end_stdin=end_stdin,
                                              resize=resize))
    follower = asyncio.create_task(follow())
    try:
        done, _ = await asyncio.wait({reader, follower}, return_when=asyncio.FIRST_COMPLETED)
        failed = follower.exception() if follower in done else None
        if failed is not None:
            raise failed
    finally:
        for t in (reader, follower):
            t.cancel()
        for t in (reader, follower):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if stdin_once and (used_stdin or want_in):
            worker.close_stdin(c)
    return channels.success()
