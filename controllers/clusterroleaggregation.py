"""ClusterRole aggregation wiring: ClusterRole events → aggregated roles → rule writes.

As Kubernetes' clusterrole-aggregation controller: a ClusterRole with an
``aggregationRule`` holds the rules of the ClusterRoles its selectors pick
(``apimachinery.rbac.aggregated_rules``, the same function the API server's
bootstrap policy fills admin/edit/view with). Any ClusterRole changing queues every
aggregated role (there are few), whose rules are written when they differ. The
write is an optimistic replace: a conflict raises, so the key is retried with backoff.
"""

from __future__ import annotations

import logging

from apimachinery.kinds import CLUSTERROLE
from apimachinery.rbac import aggregated_rules
from client.errors import NotFound
from client.http import AsyncClient
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, name_of
from controllers.runtime import Controller

log = logging.getLogger(__name__)


class ClusterRoleAggregationController(Controller):
    """Keeps aggregated ClusterRoles' rules the union of the roles they select."""

    name = "clusterrole-aggregation"

    def __init__(self, client: AsyncClient, informers: SharedInformers,
                 metrics: Metrics) -> None:
        super().__init__(metrics, workers=1)
        self.client = client
        self.roles = informers.get(CLUSTERROLE)
        self.roles.add_handler(self._changed, lambda _old, new: self._changed(new),
                               self._changed)

    def _changed(self, _role: Object) -> None:
        for role in self.roles.store.list():
            if role.get("aggregationRule") is not None:
                self.queue.add(name_of(role))

    async def sync(self, key: str) -> float | None:
        role = self.roles.store.get(key)
        if role is None:
            return None
        rules = aggregated_rules(role, self.roles.store.list())
        if rules is None or rules == (role.get("rules") or []):
            return None
        body = {**role, "rules": rules}
        try:
            await self.client.replace(CLUSTERROLE, body)
        except NotFound:
            return None
        self.metrics.wrote(self.name, "update", "clusterroles")
        log.info("clusterrole %s: %d aggregated rules", key, len(rules))
        return None
