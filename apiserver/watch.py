"""Watch streams: replay from the event log, then follow the live feed.

A stream subscribes to the hub *before* it reads history, then drops any live
event it already sent (by revision), so nothing falls in the gap between the two.
Each event is one JSON document followed by a newline, the framing client-go and
the Python client split on. An event's line is encoded once and shared by every
watcher that sends it as stored (``Batch.shared``, ``Event.lines``); a watcher
sends everything pending in one chunk. Errors after the stream started arrive as an ERROR
event carrying a Status, as the real API server sends them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

import anyio
import orjson

from apiserver import objects, tables
from apiserver.errors import APIError, Timeout
from apiserver.listcache import ListCache
from apiserver.listopts import ListOptions
from apiserver.registry.strategy import Strategy
from apiserver.storage.backend import Backend, Event
from apiserver.watchhub import Batch, Subscriber, WatchHub

log = logging.getLogger(__name__)

# Kubernetes keeps a watch without timeoutSeconds open for a random 30-60 minutes,
# so clients reconnect spread out instead of in step.
MIN_REQUEST_TIMEOUT = 1800
# Bookmarks let a quiet, filtered watch resume near the head of the log.
BOOKMARK_INTERVAL = 60.0
# How long a watch from a revision we have not published yet may wait for it.
FUTURE_REVISION_WAIT = 3.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


# Bytes one send of a watch stream carries at most: pending events leave in one
# chunk up to this, so a send costs per batch, and a slow reader holds one chunk.
MAX_CHUNK = 1 << 20


def event_line(kind: str, data: str) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + data.encode() + b"}\n"


def chunks(lines: Iterable[bytes], limit: int = MAX_CHUNK) -> Iterator[bytes]:
    """``lines`` joined into as few byte strings as fit ``limit`` (a line is never split)."""
    if isinstance(lines, list) and sum(map(len, lines)) <= limit:
        if lines:
            yield b"".join(lines)
        return
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > limit:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield b"".join(batch)


def error_line(err: APIError) -> bytes:
    return b'{"type":"ERROR","object":' + orjson.dumps(err.status()) + b"}\n"


def bookmark_line(rt: Strategy, revision: int, *, initial_end: bool = False) -> bytes:
    metadata: dict = {"resourceVersion": str(revision)}
    if initial_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": rt.kind.kind, "apiVersion": rt.kind.api_version, "metadata": metadata}
    return b'{"type":"BOOKMARK","object":' + orjson.dumps(obj) + b"}\n"


def convert(event: Event, keep: Callable[[dict], bool] | None) -> tuple[str, str] | None:
    """What a watcher with filter ``keep`` sees of ``event``: (type, object JSON) or nothing.

    An object that stops matching arrives as DELETED (its last matching state at the
    event's revision); one that starts matching arrives as ADDED.
    """
    if keep is None:
        return event.type, event.data
    now_ok = event.type != "DELETED" and keep(event.obj)
    before = event.prev_obj
    was_ok = before is not None and keep(before)
    if event.type == "DELETED":
        return ("DELETED", event.data) if was_ok else None
    if now_ok:
        return ("MODIFIED" if was_ok else "ADDED"), event.data
    if was_ok and before is not None:
        gone = {**before, "metadata": {**before.get("metadata", {}),
                                       "resourceVersion": str(event.rv)}}
        return "DELETED", orjson.dumps(gone).decode()
    return None


async def require_revision(hub: WatchHub, rv: int) -> None:
    """A client may know a revision we have not published yet; wait briefly, then 504."""
    if rv <= hub.last_rv or await hub.wait_for_revision(rv, FUTURE_REVISION_WAIT):
        return
    raise Timeout(f"Too large resource version: {rv}, current: {hub.last_rv}",
                  details={"causes": [{"reason": "ResourceVersionTooLarge",
                                       "message": "Too large resource version"}],
                           "retryAfterSeconds": 1},
                  headers={"Retry-After": "1"})


@dataclass
class WatchRequest:
    rt: Strategy
    namespace: str | None
    opts: ListOptions
    as_table: tables.TableRequest | None = None  # kubectl get -w: one-row Tables

    def line(self, kind: str, data: str) -> bytes:
        if not self.as_table:
            return event_line(kind, data)
        obj = tables.table(self.rt.kind, [orjson.loads(data)], objects.now(),
                           request=self.as_table)
        return b'{"type":"' + kind.encode() + b'","object":' + orjson.dumps(obj) + b"}\n"

    def batch_lines(self, batches: Iterable[Batch], after: int,
                    keep: Callable[[dict], bool] | None) -> tuple[list[bytes], int]:
        """``event_lines`` for what the hub delivered; an unfiltered JSON watcher takes
        each batch's lines as one shared byte string, built by the first to ask."""
        lines: list[bytes] = []
        for batch in batches:
            if keep is None and not self.as_table and batch.first_rv > after:
                lines.append(batch.shared("json", self._joined))
                after = batch.last_rv
            else:
                more, after = self.event_lines(batch.events, after, keep)
                lines += more
        return lines, after

    def _joined(self, events: list[Event]) -> bytes:
        return b"".join(self.event_lines(events, 0, None)[0])

    def event_lines(self, events: Iterable[Event], after: int,
                    keep: Callable[[dict], bool] | None) -> tuple[list[bytes], int]:
        """The lines this watcher sends for ``events`` past revision ``after``, and the
        last revision seen. A line that is the event as stored (any unfiltered
        watcher, a filtered one whose object still matches) is encoded once per
        (event, type, format) and shared by every watcher (Kubernetes' caching objects)."""
        lines: list[bytes] = []
        for event in events:
            if event.rv <= after:
                continue
            after = event.rv
            seen = convert(event, keep)
            if seen is None:
                continue
            kind, data = seen
            if data is not event.data:  # a synthesized DELETED: this filter's own
                lines.append(self.line(kind, data))
                continue
            key = (kind, self.as_table)
            line = event.lines.get(key)
            if line is None:
                line = event.lines[key] = self.line(kind, data)
            lines.append(line)
        return lines, after


class WatchStream:
    """One watch request's subscription and the byte stream built from it.

    ``cut`` resolves when the hub closed the subscription (the client fell behind,
    or the server stops): the response stops waiting for a stuck write then.
    """

    def __init__(self, watcher: Watcher, req: WatchRequest, sub: Subscriber) -> None:
        self.watcher, self.req, self.sub = watcher, req, sub
        self.cut = sub.cut

    def unsubscribe(self) -> None:
        self.watcher.hub.unsubscribe(self.sub)

    def body(self) -> AsyncIterator[bytes]:
        return self.watcher.stream(self.req, self.sub)


class Watcher:
    """Builds the byte stream of one watch request."""

    def __init__(self, store: Backend, hub: WatchHub, *, bookmark_interval: float = BOOKMARK_INTERVAL,
                 cache: ListCache | None = None) -> None:
        self.store = store
        self.hub = hub
        self.cache = cache
        self.bookmark_interval = bookmark_interval

    async def prepare(self, req: WatchRequest) -> None:
        """Checks that must fail as HTTP errors, before the 200 is sent."""
        rv = req.opts.resource_version
        if rv not in (None, "0"):
            await require_revision(self.hub, int(rv))

    def open(self, req: WatchRequest) -> WatchStream:
        """Subscribe now (before history is read, so nothing falls in between)."""
        return WatchStream(self, req, self.hub.subscribe(req.rt.key, req.namespace))

    async def stream(self, req: WatchRequest, sub: Subscriber) -> AsyncIterator[bytes]:
        opts = req.opts
        keep = opts.matcher()
        timeout = opts.timeout_seconds
        if timeout is None:
            timeout = random.randint(MIN_REQUEST_TIMEOUT, 2 * MIN_REQUEST_TIMEOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            initial = opts.send_initial_events
            if initial is None:
                initial = opts.resource_version in (None, "0")
            try:
                if initial and opts.resource_version == "0" and self.cache is not None:
                    # any recent state will do: the cache's, at or after sub.start_rv
                    page = await self.cache.page(req.rt.key, req.namespace, keep)
                elif initial:
                    page = await anyio.to_thread.run_sync(
                        lambda: self.store.list(req.rt.key, req.namespace, keep=keep))
                if initial:
                    for chunk in chunks(req.line("ADDED", data) for data in page.items):
                        yield chunk
                    last = page.revision
                    if opts.send_initial_events and opts.allow_bookmarks:
                        yield bookmark_line(req.rt, last, initial_end=True)
                elif opts.resource_version in (None, "0"):
                    last = sub.start_rv  # sendInitialEvents=false: from now on
                else:
                    last = int(opts.resource_version)
                    history = await anyio.to_thread.run_sync(
                        lambda: self.store.events_after(last, req.rt.key, req.namespace))
                    replay = [e for e in history if e.rv <= sub.start_rv]  # the rest is live
                    lines, last = req.event_lines(replay, last, keep)
                    for chunk in chunks(lines):
                        yield chunk
            except APIError as err:
                yield error_line(err)
                return
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                now = loop.time()
                if now >= deadline:
                    return
                await sub.wait(min(deadline, next_bookmark) - now)
                lines, last = req.batch_lines(sub.drain(), last, keep)
                for chunk in chunks(lines):  # everything pending in one send
                    yield chunk
                if sub.closed:
                    if sub.overflowed:
                        log.info("watch on %s fell behind at revision %d; closed so it resumes",
                                 req.rt.key, last)
                    return
                if opts.allow_bookmarks and loop.time() >= next_bookmark:
                    if sub.idle:
                        last = max(last, self.hub.last_rv)
                    yield bookmark_line(req.rt, last)
                    next_bookmark = loop.time() + self.bookmark_interval
        finally:
            self.hub.unsubscribe(sub)
