"""Authentication's pure parts: the token CSV, RS256 JWTs, ServiceAccount claims,
the Authorization header, client-certificate users, TokenRequest validation, and
the ServiceAccount controller's decision."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from apiserver.auth import jwt
from apiserver.auth.authn import (
    AuthenticationConfigError,
    AuthenticationOptions,
    Authenticator,
    BadCredentials,
    bearer_token,
    user_from_certificate,
)
from apiserver.auth.serviceaccount_tokens import (
    BoundPod,
    KeyFileError,
    TokenInvalid,
    build_claims,
    check_claims,
    load_verifying_keys,
)
from apiserver.auth.tokenfile import TokenFileError, parse_token_csv
from apiserver.auth.user import AUTHENTICATED, UserInfo
from apiserver.registry.serviceaccount import validate_token_request
from componentbase import pki
from controllers.serviceaccount import missing_accounts

ISSUER = "https://kubernetes.default.svc.cluster.local"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ------------------------------------------------------------------ --token-auth-file


def test_token_csv_reads_users_uids_and_quoted_groups() -> None:
    text = ('\ufeffs3cret,alice,1001,"dev,ops"\n'
            "\n"
            "t0ken,bob,1002\n"
            "solo,carol,1003,viewers,ignored-extra-column\n")
    tokens = parse_token_csv(text)
    assert tokens == {
        "s3cret": UserInfo("alice", ("dev", "ops"), "1001"),
        "t0ken": UserInfo("bob", (), "1002"),
        "solo": UserInfo("carol", ("viewers",), "1003"),
    }


@pytest.mark.parametrize(("text", "message"), [
    ("tok,alice\n", "tokens.csv, line 1: must have at least 3 columns (token, user name, "
                    "user uid), found 2"),
    ("a,alice,1\n,bob,2\n", "tokens.csv, line 2: the token is empty"),
    ("a,,1\n", "tokens.csv, line 1: the user name is empty"),
    ("a,alice,1\nb,bob,2\na,eve,3\n", "tokens.csv, line 3: duplicate token"),
    ('a,alice,1,"dev\n', "tokens.csv, line"),
])
def test_a_bad_token_line_is_an_error_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(TokenFileError) as err:
        parse_token_csv(text, "tokens.csv")
    assert str(err.value).startswith(message)


def test_a_bad_token_file_stops_the_authenticator_from_being_built(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.csv"
    bad.write_text("only-two,columns\n")
    options = AuthenticationOptions(tmp_path / "sa.key", token_auth_file=bad)
    with pytest.raises(AuthenticationConfigError, match=r"tokens.csv, line 1: must have"):
        Authenticator.from_options(options)
    missing = AuthenticationOptions(tmp_path / "sa.key", token_auth_file=tmp_path / "nope")
    with pytest.raises(AuthenticationConfigError, match="cannot read token file"):
        Authenticator.from_options(missing)


# ------------------------------------------------------------------ JWT


def _claims(**over: object) -> dict:
    claims = build_claims(issuer=ISSUER, audiences=[ISSUER], namespace="ns", name="robot",
                          uid="sa-uid", pod=None, now=NOW, expiration_seconds=3600, jti="j1")
    claims.update(over)
    return claims


def test_jwt_round_trip_with_the_kid_kubernetes_computes(key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(_claims(), key)
    header = json.loads(jwt.b64url_decode(token.split(".")[0]))
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert header == {"alg": "RS256",
                      "kid": base64.urlsafe_b64encode(hashlib.sha256(der).digest())
                      .rstrip(b"=").decode()}
    assert jwt.decode(token, [jwt.verifying_key(key.public_key())]) == _claims()


def test_jwt_another_key_a_changed_claim_or_alg_none_does_not_verify(
        key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    keys = [jwt.verifying_key(key.public_key())]
    with pytest.raises(jwt.JWTError, match="no key verifies"):
        jwt.decode(jwt.encode(_claims(), other_key), keys)
    head, _, sig = jwt.encode(_claims(), key).split(".")
    forged = jwt.b64url(json.dumps(_claims(sub="system:serviceaccount:ns:admin")).encode())
    with pytest.raises(jwt.JWTError):
        jwt.decode(f"{head}.{forged}.{sig}", keys)
    none_head = jwt.b64url(b'{"alg":"none"}')
    with pytest.raises(jwt.JWTError, match="unsupported alg"):
        jwt.decode(f"{none_head}.{forged}.", keys)
    for junk in ("", "a.b", "a.b.c", "é.é.é", "x" * 20000):
        with pytest.raises(jwt.JWTError):
            jwt.decode(junk, keys)


def test_jwt_verifies_with_any_key_given(key: rsa.RSAPrivateKey,
                                         other_key: rsa.RSAPrivateKey) -> None:
    keys = [jwt.verifying_key(key.public_key()), jwt.verifying_key(other_key.public_key())]
    assert jwt.decode(jwt.encode(_claims(), other_key), keys)["iss"] == ISSUER


def test_verifying_keys_are_read_from_public_private_and_certificate_pem(
        tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    both = tmp_path / "keys.pem"
    both.write_bytes(public + private)
    assert [k.kid for k in load_verifying_keys(both)] == [jwt.key_id(key.public_key())] * 2
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(KeyFileError, match="no RSA public key"):
        load_verifying_keys(empty)


# ------------------------------------------------------------------ ServiceAccount claims


def test_claims_have_kubernetes_layout_and_check_back() -> None:
    claims = build_claims(issuer=ISSUER, audiences=["api"], namespace="ns", name="robot",
                          uid="sa-uid", pod=BoundPod("web", "pod-uid"), now=NOW,
                          expiration_seconds=600, jti="j1")
    assert claims == {"aud": ["api"], "exp": NOW + 600, "iat": NOW, "iss": ISSUER, "jti": "j1",
                      "kubernetes.io": {"namespace": "ns",
                                        "serviceaccount": {"name": "robot", "uid": "sa-uid"},
                                        "pod": {"name": "web", "uid": "pod-uid"}},
                      "nbf": NOW, "sub": "system:serviceaccount:ns:robot"}
    token = check_claims(claims, issuers=[ISSUER], audiences=["api"], now=NOW + 10)
    user = token.user()
    assert user.name == "system:serviceaccount:ns:robot"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", AUTHENTICATED)
    assert user.uid == "sa-uid"
    assert user.extra == {"authentication.kubernetes.io/pod-name": ("web",),
                          "authentication.kubernetes.io/pod-uid": ("pod-uid",),
                          "authentication.kubernetes.io/credential-id": ("JTI=j1",)}


@pytest.mark.parametrize(("over", "now", "why"), [
    ({}, NOW + 3600, "expired"),
    ({"iss": "https://evil.example"}, NOW, "issuer"),
    ({"aud": ["other"]}, NOW, "audiences"),
    ({"aud": []}, NOW, "audiences"),
    ({"nbf": NOW + 3600}, NOW, "not valid yet"),
    ({"exp": "never"}, NOW, "no expiry"),
    ({"sub": "system:serviceaccount:ns:admin"}, NOW, "subject"),
    ({"kubernetes.io": {"namespace": "ns"}}, NOW, "serviceaccount"),
])
def test_claims_refused(over: dict, now: int, why: str) -> None:
    with pytest.raises(TokenInvalid, match=why):
        check_claims(_claims(**over), issuers=[ISSUER], audiences=[ISSUER], now=now)


# ------------------------------------------------------------------ the request's credentials


@pytest.mark.parametrize(("headers", "token"), [
    ([], None),
    ([(b"cookie", b"session=abc")], None),
    ([(b"authorization", b"Bearer abc.def")], "abc.def"),
    ([(b"authorization", b"bearer  abc ")], "abc"),
])
def test_bearer_token(headers: list, token: str | None) -> None:
    assert bearer_token(headers) == token


@pytest.mark.parametrize("headers", [
    [(b"authorization", b"Basic YWxpY2U6cHc=")],
    [(b"authorization", b"Bearer ")],
    [(b"authorization", b"Bearer a b")],
    [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
])
def test_credentials_that_are_not_a_bearer_token_are_bad_not_absent(headers: list) -> None:
    with pytest.raises(BadCredentials):
        bearer_token(headers)


# ------------------------------------------------------------------ x509


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca()


def test_a_client_certificate_names_user_and_groups(ca: pki.KeyPair) -> None:
    pair = pki.issue(ca, pki.client_identity("kubernetes-admin", ["system:masters"]))
    now = datetime.datetime.now(datetime.UTC)
    assert user_from_certificate(pair.cert, now) == UserInfo(
        "kubernetes-admin", ("system:masters", AUTHENTICATED))
    later = now + datetime.timedelta(days=400)
    assert user_from_certificate(pair.cert, later) is None


def test_a_serving_certificate_or_one_without_cn_names_nobody(ca: pki.KeyPair) -> None:
    now = datetime.datetime.now(datetime.UTC)
    serving = pki.issue(ca, pki.server_identity("apiserver", ["localhost"], ["127.0.0.1"]))
    assert user_from_certificate(serving.cert, now) is None
    key = ec.generate_private_key(ec.SECP256R1())
    nameless = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "system:masters")]))
                .issuer_name(ca.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(ca.private_key(), hashes.SHA256()))
    assert user_from_certificate(nameless, now) is None


# ------------------------------------------------------------------ TokenRequest


@pytest.mark.parametrize(("spec", "fields"), [
    ({}, []),
    ({"expirationSeconds": 600, "audiences": ["a"]}, []),
    ({"expirationSeconds": 599}, ["spec.expirationSeconds"]),
    ({"expirationSeconds": 1 << 33}, ["spec.expirationSeconds"]),
    ({"expirationSeconds": "long"}, ["spec.expirationSeconds"]),
    ({"audiences": [1]}, ["spec.audiences[0]"]),
    ({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1"}}, ["spec.boundObjectRef.name"]),
])
def test_token_request_validation(spec: dict, fields: list[str]) -> None:
    assert [e.field for e in validate_token_request(spec)] == fields


def test_too_short_an_expiry_is_worded_as_kubernetes() -> None:
    (error,) = validate_token_request({"expirationSeconds": 60})
    assert error.describe() == "Invalid value: 60: may not specify a duration less than " \
                               "10 minutes"


# ------------------------------------------------------------------ ServiceAccount controller


def test_missing_accounts() -> None:
    active = {"metadata": {"name": "ns"}, "status": {"phase": "Active"}}
    assert missing_accounts(active, set()) == ["default"]
    assert missing_accounts(active, {"default"}) == []
    assert missing_accounts(None, set()) == []
    assert missing_accounts({**active, "status": {"phase": "Terminating"}}, set()) == []
    deleting = {"metadata": {"name": "ns", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert missing_accounts(deleting, set()) == []
