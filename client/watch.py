"""List then watch, resumed forever: the reflector half of an informer.

Two generators, as kopf splits them:

- ``list_then_watch`` is finite and holds the logic: optionally list (paginated)
  and yield a ``Listed`` marker with the items and the list's resourceVersion, then
  watch from that version and yield events until the server ends the stream. It
  raises ``Expired`` (410: relist), ``ConnectionFailed`` and the other typed errors,
  and treats a watch that ends within a second with no events as a failure, so a
  server that closes watches at once can't make its clients spin.
- ``watch_forever`` is the trivial endless loop around it: resume from the last
  version seen (``BOOKMARK``\\s move it too), relist after ``Expired``, back off with
  jitter after errors, one log line per retry. Endless loops are hard to test, so
  it has no other logic.

Resume rules (client-go's reflector): list at first; after a stream ends, watch
again from the last version seen, without listing; after a 410, list again; after
"too large resource version" (a server behind the version we saw, e.g. the one we
failed over to), list again too, rather than wait for it forever.

With several API servers the client moves to the next one when a connection
fails (``client.failover``); the watch resumes there from the last version seen
at once, without a backoff, the first time in a streak of failures. Servers that
share one database share the versions, so the consumer sees no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from apimachinery.kinds import Kind
from client.backoff import Backoff
from client.errors import ApiError, ConnectionFailed, Expired
from client.http import AsyncClient

log = logging.getLogger(__name__)

# kubectl and client-go list with 500 items per page: big enough that small
# collections take one request, small enough to bound one response's size.
PAGE_SIZE = 500

# client-go's reflector asks for watches of a random length in [5, 10) minutes, so
# clients started together don't all reconnect in the same second.
MIN_WATCH_TIMEOUT = 300.0

# A watch that ends this fast with no events is a broken server, not a timeout.
VERY_SHORT_WATCH = 1.0


@dataclass(frozen=True)
class Listed:
    """Marker yielded after a (re)list: the complete collection at ``resource_version``."""

    items: list[dict[str, Any]]
    resource_version: str


Item = Listed | dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What is listed and watched: a kind, optionally narrowed."""

    kind: Kind
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    def describe(self) -> str:
        """Short label for log lines: ``services in default (app=web)``."""
        text = self.kind.plural
        if self.namespace and self.kind.namespaced:
            text += f" in {self.namespace}"
        selectors = ",".join(s for s in (self.label_selector, self.field_selector) if s)
        return f"{text} ({selectors})" if selectors else text


def resource_version_of(item: Item) -> str | None:
    """The version a watch can resume from after ``item`` (any event type, incl. BOOKMARK)."""
    if isinstance(item, Listed):
        return item.resource_version
    return ((item.get("object") or {}).get("metadata") or {}).get("resourceVersion")


# A list+watch round that lasted this long was served; its end is not a failure streak.
HEALTHY_ROUND = 10.0


def too_large_resource_version(error: ApiError) -> bool:
    """The server answered that our resourceVersion is ahead of it (504, cause
    ``ResourceVersionTooLarge``), as client-go's reflector recognises it."""
    if error.code != 504:
        return False
    causes = error.details.get("causes")
    return isinstance(causes, list) and any(
        isinstance(c, dict) and c.get("reason") == "ResourceVersionTooLarge" for c in causes)


def watch_timeout_seconds(min_timeout: float, rng: random.Random) -> int:
    """A random watch length in [min, 2·min) seconds, at least 1."""
    return max(1, int(rng.uniform(min_timeout, 2 * min_timeout)))


async def list_then_watch(client: AsyncClient, target: Target, *,
                          resource_version: str | None, timeout_seconds: int,
                          page_size: int = PAGE_SIZE,
                          clock: Callable[[], float] = time.monotonic,
                          ) -> AsyncGenerator[Item, None]:
    """One finite round: list when ``resource_version`` is None, then one watch.

    Yields a ``Listed`` first if it listed, then the watch's events in order.
    """
    if resource_version is None:
        listed = await client.list_all(target.kind, target.namespace,
                                       label_selector=target.label_selector,
                                       field_selector=target.field_selector, limit=page_size)
        resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        yield Listed(list(listed.get("items") or []), resource_version)

    started = clock()
    count = 0
    events = client.watch(target.kind, target.namespace, resource_version=resource_version,
                          label_selector=target.label_selector,
                          field_selector=target.field_selector,
                          timeout_seconds=timeout_seconds, allow_bookmarks=True)
    async with aclosing(events):
        async for event in events:
            count += 1
            yield event
    if count == 0 and clock() - started < VERY_SHORT_WATCH:
        raise ConnectionFailed(f"very short watch of {target.describe()}: the stream ended "
                               f"within {VERY_SHORT_WATCH:.0f}s with no events")


async def watch_forever(client: AsyncClient, target: Target, *,
                        backoff: Backoff | None = None,
                        min_watch_timeout: float = MIN_WATCH_TIMEOUT,
                        page_size: int = PAGE_SIZE,
                        rng: random.Random | None = None,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                        clock: Callable[[], float] = time.monotonic,
                        ) -> AsyncGenerator[Item, None]:
    """Endless: ``list_then_watch`` again and again; never raises an ``ApiError``.

    Two counters drive the backoff. ``failures`` counts errors in a row; any answer
    (a list, an event, a normal end, even a 410) resets it. ``expiries`` counts 410s
    (and too-large versions) in a row and only a watch event or a normal end resets it: the first 410
    relists at once, a loop of "list succeeds, watch answers 410" backs off. A round
    that stayed up for ``HEALTHY_ROUND`` seconds before failing also resets
    ``failures``: a watch that was answered and then dropped (a server restart) is
    not one more failure in a row, even if no event came through it.
    """
    backoff = backoff or Backoff()
    rng = rng or random.Random()
    resource_version: str | None = None
    failures = expiries = 0
    while True:
        started = clock()
        rounds = list_then_watch(client, target, resource_version=resource_version,
                                 timeout_seconds=watch_timeout_seconds(min_watch_timeout, rng),
                                 page_size=page_size)
        try:
            async with aclosing(rounds):
                async for item in rounds:
                    resource_version = resource_version_of(item) or resource_version
                    failures = 0
                    if not isinstance(item, Listed):
                        expiries = 0
                    yield item
            failures = expiries = 0
        except ApiError as exc:
            if isinstance(exc, Expired) or too_large_resource_version(exc):
                failures, expiries = 0, expiries + 1
                delay = backoff.next(expiries - 1)
                log.info("%s: resourceVersion %s %s (%s); relisting%s", target.describe(),
                         resource_version,
                         "expired" if isinstance(exc, Expired) else "is unknown to the server",
                         exc.message, f" in {delay:.1f}s" if delay else "")
                resource_version = None
                if delay:
                    await sleep(delay)
                continue
            if clock() - started >= HEALTHY_ROUND:
                failures = 0
            failures += 1
            verb = "list" if resource_version is None else "watch"
            if isinstance(exc, ConnectionFailed) and exc.next_server and failures == 1:
                log.info("%s: %s failed: %s; resuming on %s%s", target.describe(), verb,
                         exc.message, exc.next_server,
                         f" from resourceVersion {resource_version}" if resource_version
                         else "")
                continue
            delay = max(backoff.next(failures), exc.retry_after or 0.0)
            log.warning("%s: %s failed: %s; retry %d in %.1fs", target.describe(), verb,
                        exc.message, failures, delay)
            await sleep(delay)
