"""Leases (coordination.k8s.io/v1): leader election locks and node heartbeats.

A Lease is a plain object: who holds it (``spec.holderIdentity``), for how long
(``leaseDurationSeconds``), when it was acquired and last renewed (MicroTimes),
how often it changed hands. Holders write it with optimistic concurrency on
``resourceVersion``; the server only validates. Who may write which Lease is the
bootstrap policy's (``system:kube-controller-manager``'s own, in any namespace)
and NodeRestriction's (a node: only its own, in ``kube-node-lease``).
"""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apimachinery.timestamps import format_micro_time, parse_micro_time
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, lease
from apiserver.validation.lease import MICRO_TIME_FIELDS


class LeaseStrategy(Strategy):
    kind = kinds.LEASE
    rules = Rules(names.is_dns1123_subdomain, lease.validate_spec)
    table = tables.LEASE_TABLE
    openapi_root = "V1Lease"

    def default(self, obj: dict) -> None:
        """Store MicroTimes as Kubernetes re-encodes them: in UTC (``…Z``)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for key in MICRO_TIME_FIELDS:
            moment = parse_micro_time(spec.get(key))
            if moment is not None:
                spec[key] = format_micro_time(moment)


STRATEGY = LeaseStrategy()
