"""Kubernetes Events about objects, written as client-go's (core/v1) recorder writes them.

One ``Recorder`` per component (the controllers, a node agent). ``record`` never
waits and never fails: it builds the Event, runs it through the
``EventCorrelator`` (``client.correlator``: aggregation, de-duplication into
``count``, a per-object spam filter) and queues the write. One writer task sends
the writes in order, so a patch of an Event's ``count`` always follows its create.
Events are best effort: the queue is bounded (a full queue drops the event, as a
struggling API server should shed events first), and a failed write is logged at
debug level only. A patch of an Event that is gone (deleted, expired) is sent
again as a create, as client-go does.

The Events look like the legacy recorder's: named ``<object>.<nanoseconds in hex>``
in the object's namespace ("default" for cluster objects), ``source`` {component,
host}, ``reportingComponent``/``reportingInstance`` the same two, ``firstTimestamp``
and ``lastTimestamp`` in whole seconds, ``count``, no ``eventTime`` or ``series``
(which only the events.k8s.io recorder writes). ``kubectl describe`` shows
``<last seen> (x<count> over <first seen>)`` from exactly these fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from apimachinery.kinds import EVENT
from client.correlator import EventCorrelator, Write, event_name, stamp
from client.errors import ApiError, NotFound
from client.http import AsyncClient

log = logging.getLogger(__name__)

# Enough for a burst of scheduling decisions or a node's pods starting at once; more
# than this waiting means the API server is struggling, and events are shed first.
MAX_QUEUED = 200

NORMAL = "Normal"
WARNING = "Warning"


def event_body(obj: Mapping[str, Any], *, kind: str, api_version: str, type_: str,
               reason: str, message: str, component: str, now: float, host: str = "",
               field_path: str = "") -> dict[str, Any]:
    """A core/v1 Event about ``obj``, as client-go's legacy recorder makes it."""
    m = obj.get("metadata") or {}
    namespace = str(m.get("namespace") or "default")
    name = str(m.get("name") or "")
    involved = {"kind": kind, "apiVersion": api_version, "name": name,
                "namespace": str(m.get("namespace") or ""), "uid": str(m.get("uid") or "")}
    if m.get("resourceVersion"):
        involved["resourceVersion"] = str(m["resourceVersion"])
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": component, **({"host": host} if host else {})}
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": event_name(name, now), "namespace": namespace},
        "involvedObject": involved,
        "type": type_, "reason": reason, "message": message,
        "source": source, "reportingComponent": component, "reportingInstance": host,
        "firstTimestamp": stamp(now), "lastTimestamp": stamp(now), "count": 1,
        "eventTime": None,
    }


class _Writer:
    """The one queue and task that send a process's event writes, in order."""

    def __init__(self, client: AsyncClient, correlator: EventCorrelator) -> None:
        self.client = client
        self.correlator = correlator
        self.queue: asyncio.Queue[Write] = asyncio.Queue(MAX_QUEUED)
        self.task: asyncio.Task[None] | None = None

    def put(self, write: Write) -> bool:
        try:
            self.queue.put_nowait(write)
        except asyncio.QueueFull:
            return False
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop(), name="event-writer")
        return True

    async def _loop(self) -> None:
        while True:
            write = await self.queue.get()
            try:
                written = await self._send(write)
            except ApiError as exc:
                log.debug("event %s not written: %s", write.body["reason"], exc.message)
            else:
                self.correlator.update_state(write.key, written)
            finally:
                self.queue.task_done()

    async def _send(self, write: Write) -> dict[str, Any]:
        ns = write.body["metadata"]["namespace"]
        if write.patch is not None:
            with contextlib.suppress(NotFound):
                return await self.client.patch(EVENT, write.body["metadata"]["name"],
                                               write.patch, namespace=ns)
        return await self.client.create(EVENT, write.body, ns)


class Recorder:
    """Writes one component's events in the background (see the module docstring)."""

    def __init__(self, client: AsyncClient, component: str, *,
                 wall: Callable[[], float], host: str = "",
                 correlator: EventCorrelator | None = None) -> None:
        self.component = component
        self.host = host
        self._wall = wall
        self.correlator = correlator or EventCorrelator(clock=wall)
        self._writer = _Writer(client, self.correlator)

    def for_component(self, component: str) -> Recorder:
        """The same recorder (queue, writer, correlator) reporting as ``component``,
        as kube-controller-manager's controllers each name themselves
        (``default-scheduler``, ``node-controller``) on one event broadcaster."""
        view = copy.copy(self)
        view.component = component
        return view

    def record(self, obj: Mapping[str, Any], *, kind: str, type_: str, reason: str,
               message: str, api_version: str = "v1", field_path: str = "") -> None:
        now = self._wall()
        body = event_body(obj, kind=kind, api_version=api_version, type_=type_,
                          reason=reason, message=message, component=self.component,
                          now=now, host=self.host, field_path=field_path)
        body["metadata"]["name"] = self.correlator.namer(body["involvedObject"]["name"], now)
        write = self.correlator.correlate(body)
        if write is None:
            log.debug("event %s about %s %s dropped by the spam filter", reason, kind,
                      body["involvedObject"]["name"])
        elif not self._writer.put(write):
            log.debug("event %s about %s dropped: %d writes waiting", reason, kind, MAX_QUEUED)

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued writes (before a clean stop)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._writer.queue.join()

    async def close(self) -> None:
        """Stop the writer (of every ``for_component`` view too)."""
        task = self._writer.task
        if task is not None:  # (componentbase's cancel_and_wait: a layer above client/)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
