"""Deployments (apps/v1): roll a pod template out through ReplicaSets; the controller does the rolling."""

from __future__ import annotations

from apimachinery import kinds
from apiserver.registry.strategy import Strategy


class DeploymentStrategy(Strategy):
    kind = kinds.DEPLOYMENT
    openapi_root = "V1Deployment"


STRATEGY = DeploymentStrategy()
