"""Which API server to use, and when a failed request may go to the next one.

Pure: no sockets, no clock, no sleeping. The senders in ``client.http`` classify
what happened (``Failure``) and ask this module what to do; everything that can
go wrong in a failover is decided here and unit-tested as plain values.

- ``Servers`` is one client's rotation over its API servers, shared by all its
  requests. It is sticky: the current server stays current until a request on it
  fails, then the next one in the list becomes current (round robin). It does not
  drift back to the first server when that one returns: a healthy connection is
  not given up for a preference. Concurrent requests that fail on the same server
  move the rotation on once, not once each.
- ``Walk`` is one request's way through the servers: each at most once, starting
  at the current one. After a failure it names the next server to try, or None:
  every server was tried, or the failure forbids sending the request again.

When may a request go again (``may_resend``)? The rule is client-go's: a request
that certainly never reached a server (connection refused, connect timeout, TLS
handshake failure) may be sent anywhere; one that may have been received
(connection reset or EOF after sending, a read timeout) is sent again only if it
is a read (GET, HEAD, OPTIONS), because a POST that was applied and then sent
again creates twice, and a PUT or DELETE sent again answers a misleading 409 or
404 for a write that happened. A 503 *answer* means the server could not serve
at all (not ready, storage away): a read moves on; a write moves on only if the
503 carried ``Retry-After``, which is the server's promise that it did not
process the request (client-go retries writes on that too). Every other HTTP
answer, 5xx included, is the cluster's answer and goes to the caller as is.

Backoff between rounds is the caller's: a request never sleeps (mpctl must not
hang on a dead cluster), it tries each server once and fails. ``Servers.fresh``
tells a looping caller (the informers' ``watch_forever``) whether the server it
will reach next has not failed since the last success, so a broken watch resumes
on the next server at once and only a whole failed round waits for its backoff.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence

# Methods that ask and change nothing: safe to send again after any failure.
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Failure(enum.Enum):
    """How a request on one server failed, as far as failover cares."""

    UNSENT = "unsent"            # never reached the server: refused, connect timeout, TLS
    MAYBE_SENT = "maybe-sent"    # the connection broke after the request went out
    UNAVAILABLE = "unavailable"  # a 503 answer without Retry-After
    RETRY_LATER = "retry-later"  # a 503 answer with Retry-After: not processed


def may_resend(method: str, failure: Failure) -> bool:
    """May a request that failed so be sent to another server? (module docstring)"""
    if failure in (Failure.UNSENT, Failure.RETRY_LATER):
        return True
    return method.upper() in READS


class Servers:
    """The rotation: ``current`` is where requests go; ``failed`` moves it on.

    ``failing`` holds the servers that failed since the last success anywhere, so
    a caller can tell a server worth trying at once from one that just failed.
    Thread-safe (the blocking ``Client`` may be shared by threads); the asyncio
    client needs no lock but taking an uncontended one costs nothing.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("at least one API server URL is needed")
        self.urls = tuple(urls)
        self._index = 0
        self._failing: set[str] = set()
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self.urls[self._index]

    @property
    def several(self) -> bool:
        return len(self.urls) > 1

    def failed(self, url: str) -> str:
        """``url`` failed: if it is still current, the next server becomes current.

        Returns the server now current. A request that failed on a server the
        rotation has already left (another request found it dead first) does not
        move it again.
        """
        with self._lock:
            self._failing.add(url)
            if self.urls[self._index] == url:
                self._index = (self._index + 1) % len(self.urls)
            return self.urls[self._index]

    def succeeded(self, url: str) -> None:
        """A request on ``url`` got an answer: nothing is failing any more."""
        with self._lock:
            self._failing.clear()

    def fresh(self) -> str | None:
        """The current server if it has not failed since the last success (worth
        trying at once); None when every server has (back off first)."""
        with self._lock:
            current = self.urls[self._index]
            return None if current in self._failing else current

    def walk(self, method: str) -> Walk:
        return Walk(self, method)


class Walk:
    """One request's attempts: start at the current server, each server once."""

    def __init__(self, servers: Servers, method: str) -> None:
        self.servers = servers
        self.method = method.upper()
        self.server = servers.current
        self.tried: list[tuple[str, str]] = []  # (server, why it failed), in order

    def failed(self, failure: Failure, why: str) -> str | None:
        """The attempt on ``self.server`` failed: the server to try next, or None to
        give up (then ``tried`` lists every attempt and its reason)."""
        self.tried.append((self.server, why))
        current = self.servers.failed(self.server)
        if not may_resend(self.method, failure):
            return None
        if any(current == server for server, _ in self.tried):
            return None
        self.server = current
        return current

    def succeeded(self) -> None:
        self.servers.succeeded(self.server)
