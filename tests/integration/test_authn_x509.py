"""x509 client-certificate authentication through the real app, at the ASGI level.

Until the TLS layer serves the app, nothing puts a verified certificate in the
scope over a socket; here a one-line ASGI wrapper plays that layer (it puts the
DER under ``CLIENT_CERT_KEY``, exactly what the TLS server does after verifying
the chain) in front of the real ``create_app`` on a temporary SQLite database.
After the TLS merge this belongs over HTTPS with ``curl --cert``-style clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from apiserver.app import Config, create_app
from apiserver.auth.authn import AuthenticationOptions, Authenticator
from apiserver.auth.user import CLIENT_CERT_KEY
from componentbase import pki

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca()


def der(pair: pki.KeyPair) -> bytes:
    return pair.cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def client_with(tmp_path: Path) -> Iterator:
    """``client_with(der)``: a TestClient whose every request arrives with that certificate."""
    authenticator = Authenticator.from_options(AuthenticationOptions(tmp_path / "pki" / "sa.key"))
    app = create_app(Config(storage_url=f"sqlite:///{tmp_path / 'state.db'}"), authenticator)
    presented: dict[str, bytes | None] = {"der": None}

    async def tls_layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and presented["der"] is not None:
            scope[CLIENT_CERT_KEY] = presented["der"]
        await app(scope, receive, send)

    with TestClient(tls_layer) as client:
        def make(cert: bytes | None) -> TestClient:
            presented["der"] = cert
            return client
        yield make


def test_a_client_certificate_is_its_cn_in_its_os(client_with, ca: pki.KeyPair) -> None:
    admin = pki.issue(ca, pki.client_identity("kubernetes-admin", ["system:masters"]))
    answer = client_with(der(admin)).post(REVIEW, json={})
    assert answer.status_code == 201
    assert answer.json()["status"]["userInfo"] == {
        "username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
    node = pki.issue(ca, pki.client_identity("system:node:n1", ["system:nodes"]))
    created = client_with(der(node)).post("/api/v1/namespaces/default/serviceaccounts",
                                          json={"metadata": {"name": "by-cert"}})
    assert created.status_code == 201  # authenticated: authorization is another part's test


def test_a_certificate_not_for_clients_is_401_not_anonymous(client_with,
                                                            ca: pki.KeyPair) -> None:
    serving = pki.issue(ca, pki.server_identity("apiserver", ["localhost"], ["127.0.0.1"]))
    client = client_with(der(serving))
    for path in ("/api/v1/namespaces", "/readyz"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["reason"] == "Unauthorized"


def test_a_certificate_wins_over_a_token_and_no_certificate_is_anonymous(
        client_with, ca: pki.KeyPair) -> None:
    user = pki.issue(ca, pki.client_identity("alice", ["dev"]))
    answer = client_with(der(user)).post(REVIEW, json={},
                                         headers={"Authorization": "Bearer bogus"})
    assert answer.json()["status"]["userInfo"]["username"] == "alice"
    anonymous = client_with(None)
    assert anonymous.get("/readyz").status_code == 200
    assert anonymous.get("/api").status_code == 401
