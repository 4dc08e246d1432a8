"""Load shedding and the request deadline, as kube-apiserver's filters do it.

``InFlight.admit`` is ``WithMaxInFlightLimit``: at most ``--max-requests-inflight``
read-only (GET, HEAD) and ``--max-mutating-requests-inflight`` other requests run at
once; one over its limit is answered at once with 429 ``TooManyRequests``,
``Retry-After: 1`` and ``details.retryAfterSeconds`` (clients retry by them) instead
of queueing without bound. Long-running requests (watches: a watch holds its
request for minutes) are counted apart and never limited, nor are the health probes
(``/healthz``, ``/livez``, ``/readyz``), which must answer most when the server is
busiest. A member of ``system:masters`` is served even over the limit (without
taking a slot), so an administrator can still act on an overloaded server. 0
turns a limit off.

``InFlight.within`` is ``WithTimeoutForNonLongRunningRequests``: a non-watch request
still working after ``--request-timeout`` (or the shorter ``?timeout=`` it asked
for) is answered 504 ``Timeout`` and its work
cancelled where it waits; a read or decode running on a worker thread finishes
there, its result dropped, and keeps the request's in-flight slot until then (so a
client asking for ``?timeout=1ms`` can't start scans without bound). A write already handed to the store's writer may still commit: the
message says its outcome is unknown, as Kubernetes' does, so a client reads the
object before trying again.

Everything here runs on the event loop's thread: plain counters, no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs

import anyio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.datastructures import QueryParams

from apiserver import podconnect, proxytargets
from apiserver.auth.user import MASTERS, UserInfo
from apiserver.errors import BadRequest, Timeout, TooManyRequests
from apiserver.listopts import watch_requested
from apiserver.paths import parse_path
from componentbase.flags import parse_duration

READ_ONLY = "readOnly"  # kube-apiserver's request_kind label values
MUTATING = "mutating"
LONG_RUNNING = "longRunning"
RETRY_AFTER_SECONDS = 1  # what kube-apiserver's max-in-flight filter tells a client
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
_READ_METHODS = frozenset({"GET", "HEAD"})
T = TypeVar("T")


def is_health(path: str) -> bool:
    """A probe path (``/readyz`` or under it): never shed, never timed out."""
    return any(path == p or path.startswith(p + "/") for p in HEALTH_PATHS)


def is_long_running(scope: MutableMapping[str, Any]) -> bool:
    """A watch: it lasts as long as the client wants, so neither the in-flight limits
    nor the request timeout apply. It is what the handler serves as one: a GET of a
    collection whose ``?watch`` (read by ``listopts.watch_requested``, as the handler
    reads it) is true; and the subresources a node agent serves (``podconnect``: a
    followed log, an exec session, a port-forward; ``pods/proxy`` and
    ``services/proxy``), kube-apiserver's other long-running requests."""
    if podconnect.connect_target(scope.get("path", "")) is not None:
        return True
    if proxytargets.is_proxy_path(scope.get("path", "")):  # a proxied answer may stream
        return True
    if scope.get("method") != "GET":
        return False
    query: bytes = scope.get("query_string") or b""
    if b"watch" not in query and b"%" not in query:
        return False  # the common case, without parsing (a name may be percent-encoded)
    try:
        if not watch_requested(QueryParams(query)):
            return False
    except BadRequest:
        return False  # answered 400 by the handler, under the limits
    target = parse_path(scope["path"])
    return target is not None and target.resource is not None and target.name is None


def request_kind(method: str) -> str:
    return READ_ONLY if method in _READ_METHODS else MUTATING


class InFlight:
    """The server's in-flight counts and limits (0: no limit) and its request timeout."""

    def __init__(self, max_read_only: int, max_mutating: int, request_timeout: float) -> None:
        self.limits = {READ_ONLY: max_read_only, MUTATING: max_mutating}
        self.request_timeout = request_timeout
        self.current = {READ_ONLY: 0, MUTATING: 0}
        self.dropped = {READ_ONLY: 0, MUTATING: 0}
        self.long_running = 0
        self.timeouts = 0

    def admit(self, scope: MutableMapping[str, Any], user: UserInfo) -> Slot:
        """A slot for the request, to ``release`` when it is answered; raises
        ``TooManyRequests`` when its kind is at its limit."""
        if is_health(scope["path"]):
            return Slot(self, None, bounded=False)
        if is_long_running(scope):
            self.long_running += 1
            return Slot(self, LONG_RUNNING, bounded=False)
        kind = request_kind(scope["method"])
        limit = self.limits[kind]
        if limit and self.current[kind] >= limit:
            if MASTERS not in user.groups:
                self.dropped[kind] += 1
                raise TooManyRequests("Too many requests, please try again later.",
                                      RETRY_AFTER_SECONDS)
            return Slot(self, None, bounded=True)  # over the limit, holding no slot
        self.current[kind] += 1
        return Slot(self, kind, bounded=True)

    def timeout_for(self, scope: MutableMapping[str, Any]) -> float:
        """The request's deadline in seconds: ``--request-timeout``, or less when the
        client asks for less with ``?timeout=`` (client-go sends its own timeout so;
        kube-apiserver's rule: more than the flag, or not above 0, is the flag). There
        is no floor, as there is none in kube-apiserver (``WithRequestDeadline``): a
        ``?timeout=1ms`` is a 504 at once, its work holding its slot until it ends."""
        query: bytes = scope.get("query_string") or b""
        if b"timeout=" not in query:
            return self.request_timeout
        value = parse_qs(query.decode("latin-1")).get("timeout", [""])[0]
        try:
            asked = parse_duration(value)
        except ValueError:
            raise BadRequest(f"invalid timeout specified in the request URL: {value!r} is "
                             "not a duration (like 30s or 1m)") from None
        return asked if 0 < asked < self.request_timeout else self.request_timeout

    async def bounded(self, slot: Slot, scope: MutableMapping[str, Any],
                      work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``work()`` under the request's deadline when ``slot`` is bounded, else as is;
        ``BadRequest`` for a ``?timeout=`` that is no duration."""
        if not slot.bounded:
            return await work()
        timeout = self.timeout_for(scope)
        return await self.within(work(), request_kind(scope["method"]) == MUTATING, timeout,
                                 slot)

    async def within(self, work: Coroutine[Any, Any, T], mutating: bool,
                     timeout: float | None = None, slot: Slot | None = None) -> T:
        """``work``'s result, or ``Timeout`` once ``timeout`` (the request timeout) has
        passed. The work is then cancelled where it waits, but a read or decode running
        on a worker thread can't be interrupted: it finishes there, and ``slot`` stays
        taken until it has (kube-apiserver's timeout filter, outside its in-flight one,
        does the same), so a client timing out at once can't start work without bound.

        A future woken by whichever comes first, the work or a timer: about half the
        cost of ``asyncio.wait`` on this per-request path."""
        timeout = self.request_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        cancel = anyio.CancelScope()  # unlike Task.cancel, waits out a running thread
        task = loop.create_task(_within(cancel, work))
        woken = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(timeout, wake)
        try:
            await woken
        except asyncio.CancelledError:
            _abandon(task, cancel, slot)
            raise
        finally:
            timer.cancel()
        if task.done():
            return task.result()
        _abandon(task, cancel, slot)
        self.timeouts += 1
        message = f"request did not complete within the allotted timeout of {timeout:g}s"
        if mutating:
            message += ("; the write may or may not have been committed: read the object "
                        "to find out before trying again")
        raise Timeout(message)

    def collect(self) -> Iterable[Metric]:
        """kube-apiserver's series, for ``/metrics``."""
        current = GaugeMetricFamily("apiserver_current_inflight_requests",
                                    "Requests being served, by kind (watches apart).",
                                    labels=("request_kind",))
        dropped = CounterMetricFamily("apiserver_dropped_requests",
                                      "Requests refused with 429 over the in-flight limit.",
                                      labels=("request_kind",))
        for kind in (MUTATING, READ_ONLY):
            current.add_metric((kind,), self.current[kind])
            dropped.add_metric((kind,), self.dropped[kind])
        yield current
        yield dropped
        yield GaugeMetricFamily("apiserver_longrunning_requests",
                                "Long-running requests (watches) being served.",
                                value=self.long_running)
        yield CounterMetricFamily("apiserver_request_timeouts",
                                  "Requests answered 504 after --request-timeout.",
                                  value=self.timeouts)


@dataclass
class Slot:
    """A request's place in the counts; ``bounded``: the request timeout applies."""

    owner: InFlight
    kind: str | None  # what it counts under; None: nothing
    bounded: bool
    work: asyncio.Future | None = None  # abandoned at the timeout, still running

    def release(self) -> None:
        """Give the place back, or, while abandoned work still runs, when it ends."""
        if self.work is not None and not self.work.done():
            return
        if self.kind == LONG_RUNNING:
            self.owner.long_running -= 1
        elif self.kind is not None:
            self.owner.current[self.kind] -= 1
        self.kind = None  # twice is once

    def keep_until_done(self, work: asyncio.Future) -> None:
        """Hold the place until ``work`` (abandoned by its request) has ended."""
        self.work = work
        work.add_done_callback(lambda _: self.release())


async def _within(cancel: anyio.CancelScope, work: Coroutine[Any, Any, T]) -> T:
    """``work`` under ``cancel``: cancelled, it ends once a thread it waits on has."""
    with cancel:
        return await work
    raise asyncio.CancelledError  # cancelled: the request no longer waits for a result


def _abandon(task: asyncio.Task, cancel: anyio.CancelScope, slot: Slot | None) -> None:
    """Cancel work its request no longer waits for; its slot is held until it ends."""
    cancel.cancel()
    task.add_done_callback(_forget)
    if slot is not None:
        slot.keep_until_done(task)


def _forget(task: asyncio.Future) -> None:
    """Retrieve a timed-out request's outcome, so asyncio logs no 'never retrieved'."""
    if not task.cancelled():
        task.exception()
