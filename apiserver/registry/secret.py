"""Secrets: base64 data under keys, read by pods that RBAC lets read them."""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class SecretStrategy(Strategy):
    kind = kinds.SECRET
    openapi_root = "V1Secret"


STRATEGY = SecretStrategy()
