"""Authentication as kube-apiserver does it: who sent this request?

Tried in Kubernetes' order, first answer wins:

1. an x509 client certificate the TLS layer verified against the client CA
   (DER in the scope under ``CLIENT_CERT_KEY``): CN the user, O its groups;
2. ``Authorization: Bearer <token>`` from ``--token-auth-file``;
3. the same header holding a ServiceAccount token: an RS256 JWT signed by the
   signing key (or one of ``--service-account-key-file``), of an accepted issuer,
   for one of the API audiences, not expired, whose ServiceAccount (and bound Pod)
   still exists with the uid in the token.

Every authenticated user is also in ``system:authenticated``. A request with no
credentials at all is ``system:anonymous``; the gate lets it reach only the
public health and version paths. Credentials that are present but not good —
an unknown or expired token, a certificate without a user — are a 401 and never
fall back to anonymous. Cookies are never looked at.

Cost per request: a header scan and a dict lookup. Parsed certificates are kept
by their DER and verified ServiceAccount tokens by their text until they
expire (bounded caches); a ServiceAccount token still costs one snapshot read of
its ServiceAccount (and Pod) per request, since either may be deleted any time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from apiserver.auth import jwt
from apiserver.auth.serviceaccount_tokens import (
    DEFAULT_ISSUER,
    BoundPod,
    KeyFileError,
    ServiceAccountToken,
    TokenInvalid,
    build_claims,
    check_claims,
    load_signing_key,
    load_verifying_keys,
)
from apiserver.auth.tokenfile import TokenFile, TokenFileError, load_token_file
from apiserver.auth.user import (
    ANONYMOUS_USER,
    AUTHENTICATED,
    CLIENT_CERT_KEY,
    UserInfo,
)
from apiserver.errors import Unauthorized
from componentbase import pki

log = logging.getLogger(__name__)

# What system:anonymous may reach (Kubernetes' system:public-info-viewer paths).
ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
# A pod being deleted keeps its tokens this long past its deletionTimestamp (as Kubernetes).
DELETED_POD_GRACE_SECONDS = 60
# Bounds on the caches: enough for every client of a small cluster, small in memory.
MAX_CACHED_TOKENS = 4096
MAX_CACHED_CERTS = 1024

# Storage keys of the objects a token names (``apiserver.resources`` keys).
SERVICEACCOUNTS = "serviceaccounts"
PODS = "pods"


class AuthenticationConfigError(ValueError):
    """A flag's file can't be used; one line for ``mp-apiserver: error: ...``."""


class ObjectReader(Protocol):
    """The one store read the authenticator needs (``Backend.get``: JSON text or None)."""

    def get(self, resource: str, namespace: str, name: str) -> str | None: ...


def unauthorized() -> Unauthorized:
    """Kubernetes' answer to bad credentials: it says no more than that."""
    return Unauthorized("Unauthorized")


@dataclass(frozen=True)
class AuthenticationOptions:
    """The flags of authentication (kube-apiserver's names)."""

    service_account_signing_key_file: Path
    token_auth_file: Path | None = None
    service_account_key_files: tuple[Path, ...] = ()
    service_account_issuers: tuple[str, ...] = (DEFAULT_ISSUER,)
    api_audiences: tuple[str, ...] = ()  # empty: the issuers

    @property
    def audiences(self) -> tuple[str, ...]:
        return self.api_audiences or self.service_account_issuers


# -- x509 --------------------------------------------------------------------------------


def user_from_certificate(cert: x509.Certificate, now: datetime) -> UserInfo | None:
    """Pure: the user a verified client certificate names (CN, O), or None when it names
    nobody, is outside its validity, or is not meant for client authentication."""
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and \
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            return None
    except x509.ExtensionNotFound:
        pass  # no restriction on use
    name, groups = pki.subject(cert)
    if not name:
        return None
    return _with_authenticated(UserInfo(name, groups))


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


# -- the request's credentials -----------------------------------------------------------


class BadCredentials(Exception):
    """Credentials were sent but are malformed (e.g. two Authorization headers)."""


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header; None without one.

    Any other Authorization (another scheme, an empty token, two headers) is
    BadCredentials: the client meant to authenticate, so it must not pass as anonymous.
    """
    found: bytes | None = None
    for key, value in headers:
        if key == b"authorization":
            if found is not None:
                raise BadCredentials("more than one Authorization header")
            found = value
    if found is None:
        return None
    scheme, _, token = found.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise BadCredentials("Authorization is not a bearer token")
    return token


# -- ServiceAccount tokens: issuing and checking -----------------------------------------


class TokenIssuer:
    """Signs ServiceAccount tokens with the signing key, for the first issuer."""

    def __init__(self, private_key: rsa.RSAPrivateKey, issuer: str,
                 audiences: Sequence[str]) -> None:
        self._key = private_key
        self.issuer = issuer
        self.audiences = tuple(audiences)

    def issue(self, *, namespace: str, name: str, uid: str, pod: BoundPod | None,
              audiences: Sequence[str], expiration_seconds: int, now: int) -> tuple[str, int]:
        """(token, expiry in seconds since the epoch)."""
        claims = build_claims(issuer=self.issuer, audiences=audiences, namespace=namespace,
                              name=name, uid=uid, pod=pod, now=now,
                              expiration_seconds=expiration_seconds)
        return jwt.encode(claims, self._key), int(claims["exp"])


def binding_is_live(token: ServiceAccountToken, reader: ObjectReader, now: float) -> bool:
    """Do the ServiceAccount and the bound Pod still exist, as the same objects (uids)?"""
    sa = _read(reader, SERVICEACCOUNTS, token.namespace, token.name)
    if sa is None or _uid(sa) != token.uid or _deleted_before(sa, now):
        return False
    if token.pod is None:
        return True
    pod = _read(reader, PODS, token.namespace, token.pod.name)
    return pod is not None and _uid(pod) == token.pod.uid and not _deleted_before(pod, now)


def _read(reader: ObjectReader, resource: str, namespace: str, name: str) -> dict | None:
    data = reader.get(resource, namespace, name)
    return orjson.loads(data) if data is not None else None


def _uid(obj: dict) -> Any:
    return (obj.get("metadata") or {}).get("uid")


def _deleted_before(obj: dict, now: float) -> bool:
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return True
    return moment + DELETED_POD_GRACE_SECONDS < now


# -- the authenticator ---------------------------------------------------------------------


@dataclass
class Authenticator:
    """Every authenticator of the server, and the caches that keep them cheap."""

    tokens: TokenFile
    issuer: TokenIssuer
    verifying_keys: list[jwt.VerifyingKey]
    issuers: tuple[str, ...]
    audiences: tuple[str, ...]
    clock: Callable[[], float] = time.time
    _certs: OrderedDict[bytes, UserInfo | None] = field(default_factory=OrderedDict)
    _sa_tokens: OrderedDict[str, ServiceAccountToken] = field(default_factory=OrderedDict)

    @classmethod
    def from_options(cls, options: AuthenticationOptions) -> Authenticator:
        """Read the key and token files (AuthenticationConfigError naming the bad one);
        the signing key is created if absent, as ``--cert-dir`` files are."""
        try:
            pki.ensure_signing_key(options.service_account_signing_key_file)
            signing = load_signing_key(options.service_account_signing_key_file)
            keys = [jwt.verifying_key(signing.public_key())]
            for path in options.service_account_key_files:
                keys += load_verifying_keys(path)
            tokens = load_token_file(options.token_auth_file) \
                if options.token_auth_file is not None else {}
        except (pki.PKIError, KeyFileError, TokenFileError) as exc:
            raise AuthenticationConfigError(str(exc)) from None
        except OSError as exc:
            raise AuthenticationConfigError(
                f"cannot create {options.service_account_signing_key_file}: "
                f"{exc.strerror}") from None
        audiences = options.audiences
        return cls(TokenFile(tokens), TokenIssuer(signing, options.service_account_issuers[0],
                                                  audiences),
                   keys, options.service_account_issuers, audiences)

    async def authenticate(self, scope: Mapping[str, Any], reader: ObjectReader | None) -> UserInfo:
        """The request's user; ANONYMOUS_USER without credentials; Unauthorized for bad ones."""
        der = scope.get(CLIENT_CERT_KEY)
        if der is not None:
            user = self.certificate_user(der)
            if user is not None:
                return user
        try:
            token = bearer_token(scope.get("headers") or ())
        except BadCredentials:
            raise unauthorized() from None
        if token is None:
            if der is not None:
                raise unauthorized()  # a certificate that names nobody
            return ANONYMOUS_USER
        user = await self.token_user(token, reader)
        if user is None:
            raise unauthorized()
        return user

    def certificate_user(self, der: bytes) -> UserInfo | None:
        cached = self._certs.get(der, False)
        if cached is False:
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                return None
            cached = user_from_certificate(cert, datetime.fromtimestamp(self.clock(), tz=UTC))
            _remember(self._certs, der, cached, MAX_CACHED_CERTS)
        return cached  # type: ignore[return-value]

    async def token_user(self, token: str, reader: ObjectReader | None,
                         audiences: Sequence[str] | None = None) -> UserInfo | None:
        """The user a bearer token stands for (static token, then ServiceAccount token)."""
        user = self.tokens.authenticate(token)
        if user is not None:
            return _with_authenticated(user)
        if not jwt.looks_like_jwt(token):
            return None
        now = self.clock()
        sa_token = self.verify_service_account_token(token, audiences, now)
        if sa_token is None or reader is None:
            return None
        live = await anyio.to_thread.run_sync(binding_is_live, sa_token, reader, now)
        return sa_token.user() if live else None

    def verify_service_account_token(self, token: str, audiences: Sequence[str] | None,
                                     now: float) -> ServiceAccountToken | None:
        """Signature and claims (pure but for the cache); None if not acceptable."""
        default = audiences is None or tuple(audiences) == self.audiences
        if default:
            cached = self._sa_tokens.get(token)
            if cached is not None:
                if now < cached.expires:
                    return cached
                del self._sa_tokens[token]
                return None
        try:
            claims = jwt.decode(token, self.verifying_keys)
            checked = check_claims(claims, issuers=self.issuers,
                                   audiences=self.audiences if audiences is None else audiences,
                                   now=now)
        except (jwt.JWTError, TokenInvalid) as exc:
            log.debug("service account token refused: %s", exc)
            return None
        if default:
            _remember(self._sa_tokens, token, checked, MAX_CACHED_TOKENS)
        return checked


def _remember(cache: OrderedDict, key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)


def is_public_path(path: str) -> bool:
    """May system:anonymous reach ``path``?"""
    return path in ANONYMOUS_PATHS
