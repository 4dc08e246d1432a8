"""ConfigMaps: configuration as string and binary data under keys, read by pods."""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class ConfigMapStrategy(Strategy):
    kind = kinds.CONFIGMAP
    openapi_root = "V1ConfigMap"


STRATEGY = ConfigMapStrategy()
