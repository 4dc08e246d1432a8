"""ReplicaSets (apps/v1): keep ``spec.replicas`` pods from a template; the controller does the keeping."""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class ReplicaSetStrategy(Strategy):
    kind = kinds.REPLICASET
    openapi_root = "V1ReplicaSet"


STRATEGY = ReplicaSetStrategy()
