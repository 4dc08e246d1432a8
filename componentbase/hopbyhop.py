"""Which HTTP headers a proxy relays: both hops of ``pods/proxy`` (the API server
to the node agent, the agent to the pod) drop the same ones.

RFC 9110 section 7.6.1: ``Connection`` and the headers it names, and the classic
hop-by-hop set, are about one connection and are never forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})

# Set by the node agent on an answer it made itself (no such pod, unreachable port),
# so the API server tells it from the pod's own answer and returns a ``Status``.
PROXY_ERROR_HEADER = "x-miniplane-proxy-error"


def relayed_headers(headers: Iterable[tuple[str, str]],
                    drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones, those ``Connection`` names and ``drop``
    (lowercase names), in their order, repeated names kept."""
    pairs = list(headers)
    named = {token.strip().lower() for name, value in pairs if name.lower() == "connection"
             for token in value.split(",")}
    gone = HOP_BY_HOP | named | set(drop)
    return [(n, v) for n, v in pairs if n.lower() not in gone]
