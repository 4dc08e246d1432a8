"""EndpointSlices (discovery.k8s.io/v1): written by the EndpointSlice controller."""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apiserver.defaults import default_endpoint_slice
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, endpointslice


class EndpointSliceStrategy(Strategy):
    kind = kinds.ENDPOINTSLICE
    rules = Rules(names.is_dns1123_subdomain, endpointslice.validate_spec)
    extra_fields = ("addressType",)
    table = tables.ENDPOINTSLICE_TABLE
    openapi_root = "V1EndpointSlice"

    def default(self, obj: dict) -> None:
        default_endpoint_slice(obj)


STRATEGY = EndpointSliceStrategy()
