"""authentication.k8s.io reviews: asked, answered, never stored.

``SelfSubjectReview`` answers who the caller is (``kubectl auth whoami``);
``TokenReview`` answers who a bearer token stands for, for the audiences asked
(webhook token authentication, for completeness). Both are Kubernetes'
create-only resources: a POST to the collection is the whole API.
"""

from __future__ import annotations

from typing import Any

from apimachinery import kinds
from apiserver import objects
from apiserver.errors import BadRequest, Invalid, required
from apiserver.registry.strategy import RequestContext, Strategy
from apiserver.validation.fields import FieldErrors


def _check_type(strategy: Strategy, body: dict) -> None:
    k = strategy.kind
    if body.get("apiVersion") not in (None, "", k.api_version) \
            or body.get("kind") not in (None, "", k.kind):
        raise BadRequest(f"the API version in the data ({body.get('apiVersion')}) and kind "
                         f"({body.get('kind')}) do not match the expected {k.api_version} "
                         f"{k.kind}")


def _answer(strategy: Strategy, body: dict, **parts: Any) -> dict:
    k = strategy.kind
    meta = _part(body, "metadata")
    return {"kind": k.kind, "apiVersion": k.api_version,
            "metadata": {**({"name": meta["name"]} if meta.get("name") else {}),
                         "creationTimestamp": objects.rfc3339(objects.now())},
            **parts}


def _part(body: dict, key: str) -> dict:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


class SelfSubjectReviewStrategy(Strategy):
    kind = kinds.SELFSUBJECTREVIEW
    stored = False
    reads_no_body = True  # who asks is the whole question
    openapi_root = "V1SelfSubjectReview"

    async def review(self, ctx: RequestContext, body: dict) -> dict:
        _check_type(self, body)
        return _answer(self, body, status={"userInfo": ctx.user.to_status()})


class TokenReviewStrategy(Strategy):
    kind = kinds.TOKENREVIEW
    stored = False
    openapi_root = "V1TokenReview"

    async def review(self, ctx: RequestContext, body: dict) -> dict:
        _check_type(self, body)
        spec = _part(body, "spec")
        errs = FieldErrors()
        token = errs.text(spec.get("token"), "spec.token")
        audiences = [a for _, a in errs.strings(spec.get("audiences"), "spec.audiences")]
        if not token and not errs:
            errs.append(required("spec.token"))
        if errs:
            raise Invalid(self.kind.kind, "", list(errs), self.kind.group)
        assert token is not None
        user = await ctx.authenticate_token(token, audiences or None)
        status: dict[str, Any] = {"authenticated": user is not None}
        if user is not None:
            status["user"] = user.to_status()
            if audiences:
                status["audiences"] = audiences
        else:
            status["error"] = "invalid bearer token"
        return _answer(self, body, spec={k: v for k, v in spec.items()}, status=status)


SELF_SUBJECT_REVIEWS = SelfSubjectReviewStrategy()
TOKEN_REVIEWS = TokenReviewStrategy()
