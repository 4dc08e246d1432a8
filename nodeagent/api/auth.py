"""Who may call the agent's API: the API server's client identity, and no one else.

kubelet authenticates the caller's certificate against ``--client-ca-file`` and then
asks the API server (a SubjectAccessReview on ``nodes/proxy``) whether that user may
use it. The agent has one caller, so it checks the verified certificate's subject
against a fixed list (``--authorized-client``, default the API server's
``kube-apiserver-kubelet-client``): a user's or a node's certificate, though signed
by the same CA, is refused. A connection without a certificate never completes its
TLS handshake (``CERT_REQUIRED``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_CLIENT = "kube-apiserver-kubelet-client"


def common_name(peer: Mapping[str, Any] | None) -> str | None:
    """The CN of a certificate as ``SSLSocket.getpeercert()`` describes it."""
    if not peer:
        return None
    for rdn in peer.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def refusal(peer: Mapping[str, Any] | None, allowed: Iterable[str]) -> str | None:
    """Why this caller may not use the API (None: it may)."""
    cn = common_name(peer)
    if cn is None:
        return "a client certificate is required"
    if cn not in set(allowed):
        return f"user {cn!r} may not use the node agent's API (only the API server may)"
    return None
