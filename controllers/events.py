"""Kubernetes Events about the objects the controllers act on (for ``mpctl describe``).

Events are best effort, as in client-go's recorder: they are written in the
background so a slow or failing write never delays a reconcile, and a failure is
logged at debug level only. The number in flight is bounded; beyond that, new
events are dropped rather than queued without limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from apimachinery.kinds import EVENT
from client.errors import ApiError
from client.http import AsyncClient
from componentbase.tasks import cancel_and_wait
from controllers.objects import format_time, meta

log = logging.getLogger(__name__)

# Enough for a burst of scheduling decisions; more than this in flight means the
# API server is struggling, and events are the first thing to shed.
MAX_IN_FLIGHT = 200


def event_body(obj: Mapping[str, Any], *, kind: str, api_version: str, type_: str,
               reason: str, message: str, component: str, now: float) -> dict[str, Any]:
    """A core/v1 Event about ``obj`` (in its namespace; "default" for cluster objects),
    named ``<object>.<nanoseconds in hex>`` as client-go's recorder names them."""
    m = meta(obj)
    namespace = str(m.get("namespace") or "default")
    name = str(m.get("name") or "")
    stamp = format_time(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{int(now * 1e9):x}", "namespace": namespace},
        "involvedObject": {"kind": kind, "apiVersion": api_version, "name": name,
                           "namespace": str(m.get("namespace") or ""),
                           "uid": str(m.get("uid") or "")},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class Recorder:
    """Writes events in the background for one component."""

    def __init__(self, client: AsyncClient, component: str, *,
                 wall: Callable[[], float]) -> None:
        self.client = client
        self.component = component
        self._wall = wall
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, obj: Mapping[str, Any], *, kind: str, type_: str, reason: str,
               message: str, api_version: str = "v1") -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.debug("dropping event %s for %s: too many in flight", reason, kind)
            return
        body = event_body(obj, kind=kind, api_version=api_version, type_=type_,
                          reason=reason, message=message, component=self.component,
                          now=self._wall())
        task = asyncio.create_task(self._write(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, body: dict[str, Any]) -> None:
        try:
            await self.client.create(EVENT, body, body["metadata"]["namespace"])
        except ApiError as exc:
            log.debug("event %s not written: %s", body["reason"], exc.message)

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
