"""x509 client-certificate authentication over real HTTPS: CN the user, O its groups.

Clients present certificates issued here by the test run's CA (the one every test
API server trusts) or by a CA of their own. The TLS layer verifies a certificate
when one is offered: one of another CA, an expired one or one not meant for
client authentication fails the handshake, so the request gets no HTTP answer at
all (stricter than a 401, and never anonymous). A certificate the CA did sign for
clients but that names nobody gets through TLS and is a 401 from authentication.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from componentbase import pki
from tests.conftest import ApiServer, session_pki

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SA = "/api/v1/namespaces/default/serviceaccounts"


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    """The CA the test API servers trust for client certificates."""
    d = session_pki().directory
    return pki.load(d / "ca.crt", d / "ca.key")


def presenting(pair: pki.KeyPair, tmp: Path) -> ssl.SSLContext:
    """httpx ``verify=``: trusts the server, presents ``pair`` as the client certificate."""
    name = f"client-{len(list(tmp.glob('client-*.crt')))}"
    pki.save(pair, tmp / f"{name}.crt", tmp / f"{name}.key")
    ctx = ssl.create_default_context(cafile=session_pki().ca_file)
    ctx.load_cert_chain(tmp / f"{name}.crt", tmp / f"{name}.key")
    return ctx


def custom(ca: pki.KeyPair, common_name: str, usages: list[x509.ObjectIdentifier], *,
           expired: bool = False) -> pki.KeyPair:
    """A certificate ``pki.issue`` would never make: a chosen subject, usages, validity."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start, end = ((now - datetime.timedelta(days=2), now - datetime.timedelta(days=1))
                  if expired else (now - datetime.timedelta(minutes=5),
                                   now + datetime.timedelta(days=1)))
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca.private_key(), hashes.SHA256()))
    return pki.KeyPair(cert.public_bytes(serialization.Encoding.PEM),
                       key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))


def test_a_client_certificate_is_its_cn_in_its_os(shared_api: ApiServer, ca: pki.KeyPair,
                                                   tmp_path: Path) -> None:
    alice = pki.issue(ca, pki.client_identity("alice", ["dev", "qa"]))
    with httpx.Client(base_url=shared_api.url, verify=presenting(alice, tmp_path),
                      timeout=10) as client:
        answer = client.post(REVIEW, json={})
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"]["userInfo"] == {
            "username": "alice", "groups": ["dev", "qa", "system:authenticated"]}
        # authenticated as alice (not anonymous): RBAC gives her no role, so 403 by name
        denied = client.post(SA, json={"metadata": {"name": "by-alice"}})
        assert denied.status_code == 403, denied.text
        assert denied.json()["message"] == (
            'serviceaccounts is forbidden: User "alice" cannot create resource '
            '"serviceaccounts" in API group "" in the namespace "default"')
    admin = pki.issue(ca, pki.client_identity("someone", ["system:masters"]))
    made = httpx.post(shared_api.url + SA, json={"metadata": {"name": "by-cert"}},
                      verify=presenting(admin, tmp_path), timeout=10)
    assert made.status_code == 201, made.text


def test_a_certificate_of_another_ca_fails_the_handshake_whatever_it_claims(
        shared_api: ApiServer, tmp_path: Path) -> None:
    forged = pki.issue(pki.new_ca(), pki.client_identity("kubernetes-admin",
                                                         ["system:masters"]))
    for path in ("/readyz", SA):
        with pytest.raises(httpx.HTTPError):
            httpx.post(shared_api.url + path, json={"metadata": {"name": "forged"}},
                       verify=presenting(forged, tmp_path), timeout=10)
    with shared_api.http(timeout=10) as admin:
        assert admin.get(f"{SA}/forged").status_code == 404


@pytest.mark.parametrize("case", ["expired", "server-only", "code-signing"])
def test_an_expired_or_non_client_certificate_of_the_ca_fails_the_handshake(
        shared_api: ApiServer, ca: pki.KeyPair, tmp_path: Path, case: str) -> None:
    cert = {
        "expired": lambda: custom(ca, "kubernetes-admin", [ExtendedKeyUsageOID.CLIENT_AUTH],
                                  expired=True),
        "server-only": lambda: pki.issue(ca, pki.server_identity(
            "kubernetes-admin", ["localhost"], ["127.0.0.1"])),
        "code-signing": lambda: custom(ca, "kubernetes-admin",
                                       [ExtendedKeyUsageOID.CODE_SIGNING]),
    }[case]()
    ctx = presenting(cert, tmp_path)
    for path in ("/readyz", "/api/v1/namespaces"):  # not even the anonymous paths
        with pytest.raises(httpx.HTTPError):
            httpx.get(shared_api.url + path, verify=ctx, timeout=10)


def test_a_certificate_naming_nobody_is_401_not_anonymous(
        shared_api: ApiServer, ca: pki.KeyPair, tmp_path: Path) -> None:
    nobody = custom(ca, "", [ExtendedKeyUsageOID.CLIENT_AUTH])
    ctx = presenting(nobody, tmp_path)
    for path in ("/api/v1/namespaces", "/readyz"):
        answer = httpx.get(shared_api.url + path, verify=ctx, timeout=10)
        assert answer.status_code == 401, path
        assert answer.json()["reason"] == "Unauthorized"


def test_a_certificate_wins_over_a_token_and_no_certificate_is_anonymous(
        shared_api: ApiServer, ca: pki.KeyPair, tmp_path: Path) -> None:
    alice = pki.issue(ca, pki.client_identity("alice", ["dev"]))
    answer = httpx.post(shared_api.url + REVIEW, json={}, timeout=10,
                        headers={"Authorization": "Bearer bogus"},
                        verify=presenting(alice, tmp_path))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"]["userInfo"]["username"] == "alice"
    anonymous = session_pki().anonymous_context
    assert httpx.get(shared_api.url + "/readyz", verify=anonymous, timeout=10).status_code == 200
    assert httpx.get(shared_api.url + "/api", verify=anonymous, timeout=10).status_code == 401
