"""The agent API's route table: each module contributes its routes here.

To add an endpoint (say ``/portForward/{ns}/{pod}``), write a module with a
``routes(workers)`` function returning Starlette routes and list it below; the
server, TLS and the caller check (``server``) apply to every route alike.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from nodeagent.api import forwarding, logs, podproxy, streams
from nodeagent.api.pods import Workers


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def routes(workers: Workers, closing: asyncio.Event) -> list[BaseRoute]:
    """Every endpoint; ``closing`` is set when the agent stops (followed logs end)."""
    return [Route("/healthz", healthz, methods=["GET"]),
            *logs.routes(workers, closing),
            *streams.routes(workers),
            *forwarding.routes(workers),
            *podproxy.routes(workers)]
