"""The HTTP response of a watch: a chunked stream that a stuck client cannot hold.

A client that stops reading fills its TCP window; the server's write then waits
(uvicorn's flow control) and the stream cannot see that the hub cut it for
falling behind. This response races the stream against that cut: once cut, the
stream gets ``CUT_GRACE`` to end on its own (the terminating chunk, when the
client still reads), then the write is abandoned and the connection dropped at
once (the TCP connection aborted: no TLS close waiting to flush what the client
never reads). The memory a stuck client holds is one chunk (``watch.MAX_CHUNK``)
plus the transport's buffer; its subscription is gone at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from apiserver.connections import DROP_KEY
from apiserver.watch import WatchStream

log = logging.getLogger(__name__)

# How long a cut stream may take to end by itself before its write is abandoned.
CUT_GRACE = 30.0


class WatchResponse(StreamingResponse):
    def __init__(self, stream: WatchStream, media_type: str) -> None:
        super().__init__(stream.body(), media_type=media_type)
        self.stream = stream
        self.drop: Callable[[], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.drop = scope.get(DROP_KEY)  # the HTTP protocol's (serving.ClientCertProtocol)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        pump = asyncio.ensure_future(super().stream_response(send))
        try:
            await asyncio.wait([pump, self.stream.cut], return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                await asyncio.wait([pump], timeout=CUT_GRACE)
        except BaseException:
            pump.cancel()  # the client went away (or we stop): the write goes with it
            raise
        if pump.done():
            pump.result()
            return
        # cut, and still stuck writing to a client that does not read
        pump.cancel()
        await asyncio.wait([pump])
        log.info("watch on %s stopped reading; its connection is closed",
                 self.stream.req.rt.key)
        self.stream.unsubscribe()
        aclose = getattr(self.body_iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()  # its finally runs now, not when collected
        if self.drop is not None:
            await self.drop()  # else the server closes it, as it would any
