"""``GET /containerLogs/{namespace}/{pod}/{container}``: kubelet's log endpoint.

Query (kubelet's names): ``follow``, ``tailLines``, ``sinceSeconds``/``sinceTime``,
``timestamps``, ``previous`` (the last instance's log, kept at each restart) and
``limitBytes``. The answer streams ``text/plain``: the selected lines of the CRI
log (``crilog``), then, when following, what the container writes next, until it
exits (and its output is flushed) or the client goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from nodeagent.api.pods import NotServed, Workers, find
from nodeagent.pods import crilog
from nodeagent.pods.runtime import Container, PodWorker

FOLLOW_POLL = 0.1  # seconds between looks at a followed file
DRAIN = 1.0  # seconds the shim may take to flush the output of an exited container
CHUNK = 65536


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true")


def _int(request: Request, name: str, *, minimum: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise NotServed(400, f"{name}: {text!r} is not an integer") from None
    if value < minimum:
        raise NotServed(400, f"{name}: must be at least {minimum}")
    return value


def since(request: Request, now: float) -> float | None:
    seconds = _int(request, "sinceSeconds", minimum=1)
    if seconds is not None:
        return now - seconds
    text = request.query_params.get("sinceTime")
    if text:
        try:
            return crilog.parse_time(text)
        except ValueError:
            raise NotServed(400, f"sinceTime: {text!r} is not an RFC 3339 time") from None
    return None


def routes(workers: Workers, closing: asyncio.Event) -> list[Route]:
    async def container_logs(request: Request) -> Response:
        p = request.path_params
        try:
            worker, c = find(workers, p["namespace"], p["pod"], p["container"])
            return serve(request, worker, c, closing)
        except NotServed as exc:
            return exc.response()

    return [Route("/containerLogs/{namespace}/{pod}/{container}", container_logs,
                  methods=["GET"])]


def serve(request: Request, worker: PodWorker, c: Container, closing: asyncio.Event
          ) -> Response:
    previous = _flag(request, "previous")
    path = worker.log_path(c.record.name, previous=previous)
    pod = worker.key.split("/", 1)[1]
    if not path.exists():
        if previous:
            raise NotServed(400, f'previous terminated container "{c.record.name}" in pod '
                            f'"{pod}" not found')
        waiting = ((c.record.state or {}).get("waiting") or {}).get("reason")
        raise NotServed(400, f'container "{c.record.name}" in pod "{pod}" is waiting to '
                        f"start: {waiting or 'ContainerCreating'}")
    tail = _int(request, "tailLines", minimum=0)
    limit = _int(request, "limitBytes", minimum=1)
    start = since(request, time.time())
    follow = _flag(request, "follow") and not previous
    timestamps = _flag(request, "timestamps")
    body = stream(path, c, tail=tail, since=start, follow=follow, timestamps=timestamps,
                  closing=closing)
    if limit is not None:
        body = limited(body, limit)
    return StreamingResponse(body, media_type="text/plain")


async def stream(path: Path, c: Container, *, tail: int | None, since: float | None,
                 follow: bool, timestamps: bool,
                 closing: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """The log's entries; with ``follow``, new ones until that instance of the
    container has exited and its last output is read, or the agent stops."""
    with open(path, "rb") as f:
        entries, rest = crilog.parse(await asyncio.to_thread(f.read))
        first = b"".join(e.render(timestamps=timestamps)
                         for e in crilog.select(entries, tail=tail, since=since))
        if first:
            yield first
        if not follow:
            return
        instance = c.pid_start
        drain_until: float | None = None
        while True:
            chunk = await asyncio.to_thread(f.read, CHUNK)
            if chunk:
                entries, rest = crilog.parse(rest + chunk)
                out = b"".join(e.render(timestamps=timestamps)
                               for e in crilog.select(entries, tail=None, since=since))
                if out:
                    yield out
                continue
            if closing is not None and closing.is_set():  # the agent stops: end cleanly
                return
            if c.pid is None or c.pid_start != instance:  # that instance exited
                drain_until = drain_until or time.monotonic() + DRAIN
                if time.monotonic() >= drain_until or not path.exists():
                    return
            await asyncio.sleep(FOLLOW_POLL)


async def limited(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """At most ``limit`` bytes of ``body`` (kubelet cuts mid-line too)."""
    left = limit
    async for chunk in body:
        yield chunk[:left]
        left -= len(chunk)
        if left <= 0:
            return
