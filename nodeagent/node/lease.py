"""The node's Lease: created once, renewed every heartbeat, as a kubelet's.

Kubelet's node lease controller (KEP-589) keeps the Lease it last read or wrote
and renews with an update carrying that resourceVersion, so a renewal is one
request. A Lease that changed meanwhile (409) or vanished (404) is read again, or
created, and the renewal tried once more; anything else is the caller's to retry.
The shape of the Lease is ``apimachinery.nodelease``'s.
"""

from __future__ import annotations

from typing import Any

from apimachinery.kinds import LEASE
from apimachinery.nodelease import NODE_LEASE_NAMESPACE, new_lease, renewed
from client.errors import AlreadyExists, Conflict, NotFound
from client.http import AsyncClient


class NodeLease:
    """``renew(now, node_uid)`` keeps ``kube-node-lease/<node>`` renewed."""

    def __init__(self, client: AsyncClient, node: str, *, duration: int) -> None:
        self.client = client
        self.node = node
        self.duration = duration
        self.latest: dict[str, Any] | None = None

    async def renew(self, now: float, node_uid: str | None) -> dict[str, Any]:
        """Renew (creating it if missing) at Unix time ``now``; the Lease as written.
        ``node_uid``: the Node's, for the ownerReference (None while unknown)."""
        for attempt in (1, 2):
            if self.latest is None:
                self.latest, created = await self._get_or_create(now, node_uid)
                if created:
                    return self.latest
            body = renewed(self.latest, self.node, duration=self.duration, now=now,
                           node_uid=node_uid)
            try:
                self.latest = await self.client.replace(LEASE, body, NODE_LEASE_NAMESPACE)
                return self.latest
            except (Conflict, NotFound):
                self.latest = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _get_or_create(self, now: float, node_uid: str | None
                             ) -> tuple[dict[str, Any], bool]:
        try:
            return await self.client.get(LEASE, self.node, NODE_LEASE_NAMESPACE), False
        except NotFound:
            pass
        lease = new_lease(self.node, duration=self.duration, now=now, node_uid=node_uid)
        try:
            return await self.client.create(LEASE, lease, NODE_LEASE_NAMESPACE), True
        except AlreadyExists:  # made meanwhile (an earlier run of ours): renew that one
            return await self.client.get(LEASE, self.node, NODE_LEASE_NAMESPACE), False
