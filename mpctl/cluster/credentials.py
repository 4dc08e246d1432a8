"""The files of a ``plan.PKIPlan``: made on the first ``up``, reused afterwards.

The CA, the API server's serving certificate and the ServiceAccount signing key
are ``componentbase.pki``'s ``ensure_*``: loaded when present and still fitting,
else made. A client's certificate lives only inside its kubeconfig; it is read
back from there and kept while it still fits (same CA, same user and groups, not
close to expiry), so the admin's kubeconfig keeps working across ``down``/``up``.
The kubeconfig itself is rewritten (same certificate) when its server changed,
e.g. another API port because 6443 was taken.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apimachinery.kubeconfig import kubeconfig
from client.config import FALLBACK_EXTENSION
from componentbase import files, pki

from .plan import KUBELET_CLIENT, NODE_GROUP, Credential, PKIPlan, agent_serving_identity


@dataclass(frozen=True)
class Outcome:
    """What ``ensure`` did, for the progress line and the tests."""

    created: tuple[str, ...]  # files made or remade
    kept: tuple[str, ...]  # files reused as they were


def ensure(plan: PKIPlan) -> Outcome:
    """Make what the plan lacks and keep what still fits; the directory is 0700."""
    created: list[str] = []
    kept: list[str] = []

    def note(path: Path, before: bytes | None) -> None:
        (kept if before is not None and path.read_bytes() == before else created).append(
            str(path))

    plan.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(plan.dir, 0o700)
    before = _read(plan.ca_cert)
    ca = pki.ensure_ca(plan.dir)
    note(plan.ca_cert, before)
    before = _read(plan.serving_cert)
    pki.ensure_cert(plan.dir, plan.serving_cert.stem, ca,
                    pki.server_identity("kube-apiserver", plan.serving_names,
                                        plan.serving_ips))
    note(plan.serving_cert, before)
    before = _read(plan.sa_key)
    pki.ensure_signing_key(plan.sa_key)
    note(plan.sa_key, before)
    before = _read(plan.kubelet_client_cert)
    pki.ensure_cert(plan.dir, plan.kubelet_client_cert.stem, ca,
                    pki.client_identity(KUBELET_CLIENT))
    note(plan.kubelet_client_cert, before)
    for cred in plan.credentials:
        if cred.kubeconfig.parent.parent == plan.dir:  # its own directory: private
            cred.kubeconfig.parent.mkdir(exist_ok=True)
            os.chmod(cred.kubeconfig.parent, 0o700)
        before = _read(cred.kubeconfig)
        ensure_kubeconfig(cred, ca, plan.cluster_name)
        note(cred.kubeconfig, before)
        if cred.groups == (NODE_GROUP,):  # a node: its agent's API files beside it
            cert, _key, ca_copy = plan.agent_files(cred.name)
            before = _read(cert)
            pki.ensure_cert(cert.parent, cert.stem, ca, agent_serving_identity(cred.name))
            note(cert, before)
            before = _read(ca_copy)
            if before != ca.cert_pem:
                files.write_atomic(ca_copy, ca.cert_pem, 0o644)
            note(ca_copy, before)
    return Outcome(tuple(created), tuple(kept))


def ensure_kubeconfig(cred: Credential, ca: pki.KeyPair, cluster_name: str) -> None:
    """``cred.kubeconfig`` with a certificate for ``cred`` that fits, written (0600)
    only if anything in it changed."""
    who = pki.client_identity(cred.user, cred.groups)
    old = _load(cred.kubeconfig)
    pair = reusable_pair(old, ca, who) if old is not None else None
    if pair is None:
        pair = pki.issue(ca, who)
    # several API servers: the first is ``server`` (kubectl reads it), the rest are the
    # fallbacks client/ moves to (a cluster extension kubectl keeps and ignores)
    server, *fallbacks = cred.server.split(",")
    doc = kubeconfig(cluster_name, server, ca.cert_pem, cert_pem=pair.cert_pem,
                     key_pem=pair.key_pem)
    if fallbacks:
        doc["clusters"][0]["cluster"]["extensions"] = [
            {"name": FALLBACK_EXTENSION, "extension": {"servers": fallbacks}}]
    if doc == old:
        return
    files.write_atomic(cred.kubeconfig, yaml.safe_dump(doc, sort_keys=False).encode())


def reusable_pair(doc: dict[str, Any], ca: pki.KeyPair, who: pki.Identity
                  ) -> pki.KeyPair | None:
    """The client certificate and key embedded in a kubeconfig, if they still serve
    ``who`` under ``ca``; None when absent, unreadable or no longer fitting."""
    try:
        user = doc["users"][0]["user"]
        pair = pki.KeyPair(base64.b64decode(user["client-certificate-data"], validate=True),
                           base64.b64decode(user["client-key-data"], validate=True))
        if pair.private_key().public_key() != pair.cert.public_key():
            return None
        return pair if pki.fits(pair, ca, who) else None
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error, pki.PKIError):
        return None


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
