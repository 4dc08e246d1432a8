"""authorization.k8s.io/v1 access reviews: asked, answered, never stored.

Four create-only kinds (SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview, SelfSubjectRulesReview), answered by the server's
authorizer (``apiserver/auth/reviews.py``) through the same review path as
authentication.k8s.io's (``stored = False``).
"""

from __future__ import annotations

from apimachinery import kinds
from apiserver.auth import reviews
from apiserver.errors import InternalError
from apiserver.registry.strategy import RequestContext, Strategy


class _AccessReview(Strategy):
    stored = False

    async def review(self, ctx: RequestContext, body: dict) -> dict:
        authz = ctx.authorization
        if authz is None:
            raise InternalError("this server has no authorizer to answer access reviews")
        return reviews.review(self.kind, body, ctx.user, authz, authz.index, ctx.namespace)


class SubjectAccessReviewStrategy(_AccessReview):
    kind = kinds.SUBJECTACCESSREVIEW
    openapi_root = "V1SubjectAccessReview"


class LocalSubjectAccessReviewStrategy(_AccessReview):
    kind = kinds.LOCALSUBJECTACCESSREVIEW
    openapi_root = "V1LocalSubjectAccessReview"


class SelfSubjectAccessReviewStrategy(_AccessReview):
    kind = kinds.SELFSUBJECTACCESSREVIEW
    openapi_root = "V1SelfSubjectAccessReview"


class SelfSubjectRulesReviewStrategy(_AccessReview):
    kind = kinds.SELFSUBJECTRULESREVIEW
    openapi_root = "V1SelfSubjectRulesReview"


STRATEGIES = (SubjectAccessReviewStrategy(), LocalSubjectAccessReviewStrategy(),
              SelfSubjectAccessReviewStrategy(), SelfSubjectRulesReviewStrategy())
