"""Compact JWS with RS256: what ServiceAccount tokens are, signed and checked.

Only what Kubernetes' ServiceAccount tokens use: the compact serialisation
(``header.claims.signature``, base64url without padding), RSASSA-PKCS1-v1_5 with
SHA-256, and a ``kid`` naming the key (base64url of the SHA-256 of the public
key's DER, as kube-apiserver computes it). Any other ``alg`` — ``none`` above
all — is refused before a key is touched. Claims are not judged here (expiry,
issuer, audience are ``serviceaccount_tokens``' business): this module only says
whether the bytes were signed by one of the keys given.

    JWTError             malformed token, unsupported alg, or no key verifies it
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "RS256"
# Longer than any token this server issues; a bigger one is refused unparsed.
MAX_TOKEN_BYTES = 16 * 1024


class JWTError(ValueError):
    """The token is not a JWS this server accepts; the message says why (for logs)."""


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    key: rsa.RSAPublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError("not base64url") from exc


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """kube-apiserver's ``kid``: base64url(SHA-256(PKIX DER of the public key))."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def verifying_key(public_key: rsa.RSAPublicKey) -> VerifyingKey:
    return VerifyingKey(key_id(public_key), public_key)


def encode(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """Sign ``claims`` (JSON-able) as an RS256 compact JWS with the key's ``kid``."""
    header = {"alg": ALGORITHM, "kid": key_id(private_key.public_key())}
    signing_input = (b64url(orjson.dumps(header)) + "." + b64url(orjson.dumps(dict(claims))))
    signature = private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                 hashes.SHA256())
    return signing_input + "." + b64url(signature)


def looks_like_jwt(token: str) -> bool:
    """Cheap shape test (three dot-separated parts), to skip JWT work for other tokens."""
    return token.count(".") == 2


def decode(token: str, keys: Iterable[VerifyingKey]) -> dict[str, Any]:
    """The claims of ``token`` if one of ``keys`` signed it (RS256); else JWTError.

    The key named by the header's ``kid`` is tried first, then the others (a
    token signed before a key file was given a new name still verifies).
    """
    if len(token) > MAX_TOKEN_BYTES or not token.isascii() or not looks_like_jwt(token):
        raise JWTError("not a compact JWS")
    head_b64, claims_b64, sig_b64 = token.split(".")
    try:
        header = orjson.loads(b64url_decode(head_b64))
    except orjson.JSONDecodeError as exc:
        raise JWTError("header is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        raise JWTError(f"unsupported alg {header.get('alg') if isinstance(header, dict) else None!r}")
    signature = b64url_decode(sig_b64)
    signed = f"{head_b64}.{claims_b64}".encode("ascii")
    kid = header.get("kid")
    ordered = sorted(keys, key=lambda k: k.kid != kid)
    for candidate in ordered:
        try:
            candidate.key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        break
    else:
        raise JWTError("no key verifies the signature")
    try:
        claims = orjson.loads(b64url_decode(claims_b64))
    except orjson.JSONDecodeError as exc:
        raise JWTError("claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise JWTError("claims are not an object")
    return claims
