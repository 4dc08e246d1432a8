"""Deployments (apps/v1): roll a pod template out through ReplicaSets; the controller does the rolling.

Defaults and rules are apps/v1's (``defaults``, ``validation/deployment.py``).
``kubectl rollout pause|resume|restart`` are patches of ``spec.paused`` and a
template annotation: plain updates here, which bump ``generation`` as any spec change
does. ``/status`` is the controller's, ``/scale`` the replica count (``apiserver/scale.py``).
"""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.defaults import default_deployment
from apiserver.registry.replicaset import WORKLOAD_PATCH_SCHEMA
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, deployment


class DeploymentStrategy(Strategy):
    kind = kinds.DEPLOYMENT
    rules = Rules(spec=deployment.validate_spec, status=deployment.validate_status)
    table = tables.DEPLOYMENT_TABLE
    patch_schema = WORKLOAD_PATCH_SCHEMA
    openapi_root = "V1Deployment"

    def default(self, obj: dict) -> None:
        default_deployment(obj)


STRATEGY = DeploymentStrategy()
