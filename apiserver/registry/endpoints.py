"""v1 Endpoints: the one-object-per-Service address list older tools read, kept by a controller."""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class EndpointsStrategy(Strategy):
    kind = kinds.ENDPOINTS
    openapi_root = "V1Endpoints"


STRATEGY = EndpointsStrategy()
