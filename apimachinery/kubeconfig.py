"""A kubeconfig (``v1 Config``) as data: one cluster, one user, one context.

Pure, so the API server (its ``admin.kubeconfig``), ``mpctl cluster up`` (one per
component) and the compose entry point build the same document; writing it is
the caller's (``client.config.write_kubeconfig`` merges into an existing file).
Certificates and keys are embedded (``*-data``, base64), so the file alone is the
credential, as kubeadm's are.
"""

from __future__ import annotations

import base64
from typing import Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def cluster_entry(server: str, ca_pem: bytes | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": server}
    if ca_pem:
        entry["certificate-authority-data"] = _b64(ca_pem)
    return entry


def user_entry(*, cert_pem: bytes | None = None, key_pem: bytes | None = None,
               token: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if cert_pem and key_pem:
        entry["client-certificate-data"] = _b64(cert_pem)
        entry["client-key-data"] = _b64(key_pem)
    if token:
        entry["token"] = token
    return entry


def kubeconfig(name: str, server: str, ca_pem: bytes | None, *,
               cert_pem: bytes | None = None, key_pem: bytes | None = None,
               token: str | None = None, namespace: str = "default") -> dict[str, Any]:
    """The whole document; cluster, user and context are all called ``name``."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": cluster_entry(server, ca_pem)}],
        "users": [{"name": name, "user": user_entry(cert_pem=cert_pem, key_pem=key_pem,
                                                    token=token)}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                "namespace": namespace}}],
        "current-context": name,
    }
