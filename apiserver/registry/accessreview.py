"""authorization.k8s.io/v1 access reviews: listed for discovery, never stored.

Four create-only kinds (SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview, SelfSubjectRulesReview) answered by the authorizer in the
request path (``apiserver/auth/reviews.py``): a POST never reaches the write path,
so these strategies only describe the kinds (discovery, OpenAPI).
"""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class SubjectAccessReviewStrategy(Strategy):
    kind = kinds.SUBJECTACCESSREVIEW
    openapi_root = "V1SubjectAccessReview"


class LocalSubjectAccessReviewStrategy(Strategy):
    kind = kinds.LOCALSUBJECTACCESSREVIEW
    openapi_root = "V1LocalSubjectAccessReview"


class SelfSubjectAccessReviewStrategy(Strategy):
    kind = kinds.SELFSUBJECTACCESSREVIEW
    openapi_root = "V1SelfSubjectAccessReview"


class SelfSubjectRulesReviewStrategy(Strategy):
    kind = kinds.SELFSUBJECTRULESREVIEW
    openapi_root = "V1SelfSubjectRulesReview"


STRATEGIES = (SubjectAccessReviewStrategy(), LocalSubjectAccessReviewStrategy(),
              SelfSubjectAccessReviewStrategy(), SelfSubjectRulesReviewStrategy())
