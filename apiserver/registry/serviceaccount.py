"""ServiceAccounts: identities for processes in pods, and their tokens.

The object itself is plain (a name, secrets, ``automountServiceAccountToken``);
what makes it matter is ``POST serviceaccounts/<name>/token``, Kubernetes'
TokenRequest: the server signs a JWT for ``system:serviceaccount:<ns>:<name>``
with the audiences and lifetime asked, optionally bound to a Pod that runs as
this ServiceAccount, and keeps nothing. The token is good until it expires or
until the ServiceAccount or the Pod (the same objects: uids are in the token)
is deleted — the authenticator looks them up (``apiserver.auth.authn``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from apimachinery import kinds, names, tables
from apiserver import objects
from apiserver.auth.serviceaccount_tokens import (
    DEFAULT_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    BoundPod,
)
from apiserver.errors import BadRequest, Conflict, FieldError, Invalid, NotFound, invalid
from apiserver.patch.schemas import METADATA, merge_by, struct
from apiserver.registry.strategy import Action, Strategy, WriteContext
from apiserver.validation import Rules, serviceaccount
from apiserver.validation.fields import FieldErrors

AUTHENTICATION = "authentication.k8s.io"
TOKEN_REQUEST = "TokenRequest"
# Kubernetes' upper bound on what a client may even ask (TokenRequest validation).
MAX_ASKED_SECONDS = 1 << 32
DEFAULT_SERVICE_ACCOUNT = "default"


def validate_token_request(spec: dict) -> list[FieldError]:
    """Pure: the errors of a TokenRequest's spec, fields named as Kubernetes names them."""
    errs = FieldErrors()
    seconds = errs.integer(spec.get("expirationSeconds"), "spec.expirationSeconds")
    if seconds is not None:
        if seconds < MIN_EXPIRATION_SECONDS:
            errs.append(invalid("spec.expirationSeconds", seconds,
                                "may not specify a duration less than 10 minutes"))
        elif seconds > MAX_ASKED_SECONDS:
            errs.append(invalid("spec.expirationSeconds", seconds,
                                "may not specify a duration larger than 2^32 seconds"))
    list(errs.strings(spec.get("audiences"), "spec.audiences"))
    ref = errs.obj(spec.get("boundObjectRef"), "spec.boundObjectRef")
    if ref is not None:
        for key in ("kind", "apiVersion", "name", "uid"):
            errs.text(ref.get(key), f"spec.boundObjectRef.{key}")
        if not ref.get("name"):
            errs.append(invalid("spec.boundObjectRef.name", ref.get("name"),
                                "must name the object the token is bound to"))
    return list(errs)


def _bound_pod(ctx: WriteContext, namespace: str, sa_name: str, ref: dict) -> BoundPod:
    """The Pod ``ref`` names, checked: it exists (same uid) and runs as this account."""
    kind, api_version = ref.get("kind") or "", ref.get("apiVersion") or ""
    if (kind, api_version) != ("Pod", "v1"):
        raise BadRequest(f"cannot bind token to object of type {api_version}, Kind={kind}: "
                         f"only v1 Pod is supported")
    name = ref["name"]
    pods = ctx.strategy_for_key("pods")
    pod = ctx.txn.get(pods.key if pods else "pods", namespace, name)
    if pod is None:
        raise NotFound.of("pods", name)
    uid = (pod.get("metadata") or {}).get("uid") or ""
    if ref.get("uid") and ref["uid"] != uid:
        raise Conflict(f'Operation cannot be fulfilled on Pod "{name}": the UID in the bound '
                       f'object reference ({ref["uid"]}) does not match the UID in record. '
                       f'The object might have been deleted and then recreated',
                       details={"name": name, "kind": "Pod"})
    spec = pod.get("spec") or {}
    runs_as = spec.get("serviceAccountName") or spec.get("serviceAccount") \
        or DEFAULT_SERVICE_ACCOUNT
    if runs_as != sa_name:
        raise BadRequest(f'cannot bind token for serviceaccount "{sa_name}" to pod running '
                         f'with different serviceaccount name.')
    return BoundPod(name, uid)


def request_token(ctx: WriteContext, namespace: str, name: str, body: dict) -> dict:
    """``POST serviceaccounts/<name>/token``: a signed token in a TokenRequest's status."""
    if body.get("apiVersion") not in (None, f"{AUTHENTICATION}/v1") \
            or body.get("kind") not in (None, TOKEN_REQUEST):
        raise BadRequest(f"the body must be a {TOKEN_REQUEST} of {AUTHENTICATION}/v1")
    spec = _part(body, "spec")
    errors = validate_token_request(spec)
    if errors:
        raise Invalid(TOKEN_REQUEST, name, errors, AUTHENTICATION)
    sa = ctx.txn.get(STRATEGY.key, namespace, name)
    if sa is None:
        raise NotFound.of(STRATEGY.kind.plural, name)
    ref = spec.get("boundObjectRef")
    pod = _bound_pod(ctx, namespace, name, ref) if ref else None
    issuer = ctx.tokens
    audiences = list(spec.get("audiences") or issuer.audiences)
    seconds = min(int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS),
                  MAX_EXPIRATION_SECONDS)
    moment = objects.now()
    token, expires = issuer.issue(namespace=namespace, name=name,
                                  uid=str((sa.get("metadata") or {}).get("uid") or ""),
                                  pod=pod, audiences=audiences, expiration_seconds=seconds,
                                  now=int(moment.timestamp()))
    answer_spec: dict = {"audiences": audiences, "expirationSeconds": seconds}
    if pod is not None:
        answer_spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod.name,
                                         "uid": pod.uid}
    return {"kind": TOKEN_REQUEST, "apiVersion": f"{AUTHENTICATION}/v1",
            "metadata": {"name": name, "namespace": namespace,
                         "creationTimestamp": objects.rfc3339(moment)},
            "spec": answer_spec,
            "status": {"token": token, "expirationTimestamp": objects.rfc3339(
                datetime.fromtimestamp(expires, tz=UTC))}}


def _part(body: dict, key: str) -> dict:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


class ServiceAccountStrategy(Strategy):
    kind = kinds.SERVICEACCOUNT
    rules = Rules(names.is_dns1123_subdomain, serviceaccount.validate_spec)
    actions = {"token": Action(TOKEN_REQUEST, request_token,
                               openapi_root="AuthenticationV1TokenRequest")}
    table = tables.SERVICEACCOUNT_TABLE
    patch_schema = struct(metadata=METADATA, secrets=merge_by("name"),
                          imagePullSecrets=merge_by("name"))
    openapi_root = "V1ServiceAccount"


STRATEGY = ServiceAccountStrategy()
