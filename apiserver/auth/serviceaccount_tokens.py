"""ServiceAccount tokens: the claims kube-apiserver puts in them, issued and judged.

A token is an RS256 JWT (``apiserver.auth.jwt``) with Kubernetes' claims::

    iss  the issuer (--service-account-issuer; the first one signs)
    sub  system:serviceaccount:<ns>:<name>
    aud  audiences (the API server's own, --api-audiences, unless asked otherwise)
    exp, iat, nbf  seconds since the epoch
    jti  a random id (shown as the credential id)
    kubernetes.io  {namespace, serviceaccount{name, uid}, pod{name, uid}}

Everything here is pure given ``now``: building claims, and checking a decoded
token's issuer, audience, times and shape. Whether the ServiceAccount and the
bound Pod still exist is a store lookup, left to the authenticator.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apiserver.auth import jwt
from apiserver.auth.user import SERVICE_ACCOUNT_PREFIX, UserInfo, service_account_user

PRIVATE_CLAIM = "kubernetes.io"
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# TokenRequest's bounds on expirationSeconds (Kubernetes: at least 10 minutes;
# our cap is --service-account-max-token-expiration's usual 48h).
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 48 * 3600
# Servers' clocks may disagree a little: a token is accepted this long before its nbf/iat.
CLOCK_SKEW_SECONDS = 60

# user.Info extra keys kube-apiserver sets for a token bound to a pod
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


class TokenInvalid(ValueError):
    """A signed token this server must not accept; the message is for the log only."""


class KeyFileError(ValueError):
    """A --service-account-*-key-file can't be used; one line naming the file."""


@dataclass(frozen=True)
class BoundPod:
    name: str
    uid: str


@dataclass(frozen=True)
class ServiceAccountToken:
    """What a valid token says: whose it is, what it is bound to, when it ends."""

    namespace: str
    name: str
    uid: str
    pod: BoundPod | None
    expires: int
    credential_id: str = ""

    def user(self) -> UserInfo:
        extra: dict[str, tuple[str, ...]] = {}
        if self.pod is not None:
            extra[EXTRA_POD_NAME] = (self.pod.name,)
            extra[EXTRA_POD_UID] = (self.pod.uid,)
        if self.credential_id:
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={self.credential_id}",)
        return service_account_user(self.namespace, self.name, self.uid, extra)


def build_claims(*, issuer: str, audiences: Sequence[str], namespace: str, name: str,
                 uid: str, pod: BoundPod | None, now: int, expiration_seconds: int,
                 jti: str | None = None) -> dict[str, Any]:
    """The claims of a new token, in Kubernetes' layout."""
    private: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": name, "uid": uid}}
    if pod is not None:
        private["pod"] = {"name": pod.name, "uid": pod.uid}
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now,
            "iss": issuer, "jti": jti or str(uuid.uuid4()), PRIVATE_CLAIM: private,
            "nbf": now, "sub": f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"}


def check_claims(claims: dict[str, Any], *, issuers: Iterable[str],
                 audiences: Iterable[str], now: float) -> ServiceAccountToken:
    """Judge decoded claims (pure); TokenInvalid unless every check passes."""
    if claims.get("iss") not in set(issuers):
        raise TokenInvalid("issuer is not accepted")
    aud = claims.get("aud")
    token_audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(token_audiences, list) or not set(audiences) & {
            a for a in token_audiences if isinstance(a, str)}:
        raise TokenInvalid("token audiences do not include the server's")
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not _is_time(exp):
        raise TokenInvalid("no expiry")
    if now >= exp:
        raise TokenInvalid("token has expired")
    for moment in (nbf, iat):
        if moment is not None and (not _is_time(moment) or moment > now + CLOCK_SKEW_SECONDS):
            raise TokenInvalid("token is not valid yet")
    private = claims.get(PRIVATE_CLAIM)
    if not isinstance(private, dict):
        raise TokenInvalid(f"no {PRIVATE_CLAIM} claim")
    namespace = private.get("namespace")
    sa = private.get("serviceaccount")
    if not isinstance(namespace, str) or not namespace or not isinstance(sa, dict):
        raise TokenInvalid("no namespace or serviceaccount")
    name, uid = sa.get("name"), sa.get("uid")
    if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
        raise TokenInvalid("serviceaccount name or uid missing")
    if claims.get("sub") != f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}":
        raise TokenInvalid("subject does not match the serviceaccount")
    pod = None
    pod_claim = private.get("pod")
    if pod_claim is not None:
        if not isinstance(pod_claim, dict) or not isinstance(pod_claim.get("name"), str) \
                or not isinstance(pod_claim.get("uid"), str) or not pod_claim["uid"]:
            raise TokenInvalid("pod claim without name or uid")
        pod = BoundPod(pod_claim["name"], pod_claim["uid"])
    jti = claims.get("jti")
    return ServiceAccountToken(namespace, name, uid, pod, int(exp),
                               jti if isinstance(jti, str) else "")


def _is_time(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- keys ------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


def load_signing_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not a PEM private key without a password") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: service account tokens are signed with RSA (RS256); "
                           f"this key is not RSA")
    return key


def load_verifying_keys(path: str | os.PathLike[str]) -> list[jwt.VerifyingKey]:
    """The RSA public keys in a PEM file: public keys, private keys or certificates,
    as many blocks as it holds (``--service-account-key-file``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    keys: list[jwt.VerifyingKey] = []
    for block in _PEM_BLOCK.finditer(data):
        label, pem = block.group(1), block.group(0)
        try:
            if label == b"CERTIFICATE":
                public: object = x509.load_pem_x509_certificate(pem).public_key()
            elif label.endswith(b"PRIVATE KEY"):
                public = serialization.load_pem_private_key(pem, password=None).public_key()
            elif label.endswith(b"PUBLIC KEY"):
                public = serialization.load_pem_public_key(pem)
            else:
                continue
        except (ValueError, TypeError):
            raise KeyFileError(f"{path}: a {label.decode()} block can't be read") from None
        if isinstance(public, rsa.RSAPublicKey):
            keys.append(jwt.verifying_key(public))
    if not keys:
        raise KeyFileError(f"{path}: no RSA public key, private key or certificate in it")
    return keys
