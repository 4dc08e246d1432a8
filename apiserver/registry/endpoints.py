"""v1 Endpoints: the one-object-per-Service address list older tools read, kept by a controller.

Subsets of addresses and ports (``validation/endpoints.py``); ports default to TCP.
Only the controller and cluster-admin write them: since Kubernetes 1.22 the
``edit`` role may not (CVE-2021-25740, ``apiserver/auth/policy.py``).
"""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.defaults import default_endpoints
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, endpoints


class EndpointsStrategy(Strategy):
    """Subsets carry no patch strategy in Kubernetes: a patch replaces them whole."""

    kind = kinds.ENDPOINTS
    rules = Rules(spec=endpoints.validate_spec)
    table = tables.ENDPOINTS_TABLE
    openapi_root = "V1Endpoints"

    def default(self, obj: dict) -> None:
        default_endpoints(obj)


STRATEGY = EndpointsStrategy()
