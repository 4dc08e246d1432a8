"""Node IPAM wiring: every Node without ``spec.podCIDR`` gets the next free subnet.

The allocator (``controllers.ipam.CidrSet``) is rebuilt from the stored Nodes in
``prepare``, after the informer synced and before the first allocation, so CIDRs
survive a restart of this process without a state file. The CIDR is written with a
merge patch of ``spec.podCIDR``/``spec.podCIDRs``; the API server allows that only
from unset to set, so a node that got a CIDR some other way answers 422 and our
pick goes back to the pool. A deleted node's CIDR is released.
"""

from __future__ import annotations

import logging

from apimachinery.keys import object_key
from apimachinery.kinds import NODE
from client.errors import Invalid, NotFound
from client.http import AsyncClient
from controllers.informers import SharedInformers
from controllers.ipam import CidrExhausted, CidrSet
from controllers.metrics import Metrics
from controllers.objects import Object, name_of, spec
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# A full cluster CIDR stays full until a node goes; look again this often.
EXHAUSTED_RECHECK = 30.0


def pod_cidr_of(node: Object) -> str | None:
    s = spec(node)
    cidr = s.get("podCIDR")
    if not cidr:
        cidrs = s.get("podCIDRs")
        cidr = cidrs[0] if isinstance(cidrs, list) and cidrs else None
    return cidr if isinstance(cidr, str) and cidr else None


class NodeIpamController(Controller):
    """Assigns and releases node pod CIDRs."""

    name = "nodeipam"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 cidrs: CidrSet) -> None:
        super().__init__(metrics, workers=1)  # one allocator, one writer: no races
        self.client = client
        self.cidrs = cidrs
        self.nodes = informers.get(NODE)
        self._owner: dict[str, str] = {}  # node name → CIDR we hold for it
        self.nodes.add_handler(self._node_changed, lambda _old, new: self._node_changed(new),
                               self._node_changed)
        metrics.gauge("miniplane_node_ipam_cidrs_used", "Node pod CIDRs in use.",
                      lambda: len(self.cidrs))
        metrics.gauge("miniplane_node_ipam_cidrs_total",
                      "Node pod CIDRs the cluster CIDR holds.", lambda: self.cidrs.capacity)

    def _node_changed(self, node: Object) -> None:
        self.queue.add(object_key(node))

    async def prepare(self) -> None:
        for node in self.nodes.store.list():
            self._adopt(name_of(node), pod_cidr_of(node))
        log.info("node IPAM: %d of %d /%d subnets of %s in use", len(self.cidrs),
                 self.cidrs.capacity, self.cidrs.mask, self.cidrs.network)

    def _adopt(self, name: str, cidr: str | None) -> None:
        """Record the CIDR a stored node already has."""
        if cidr is None or self._owner.get(name) == cidr:
            return
        held = self._owner.pop(name, None)
        if held is not None:
            self.cidrs.release(held)  # we picked one, but the node got another
        if not self.cidrs.occupy(cidr):
            log.warning("node %s: podCIDR %s is not a /%d of the cluster CIDR %s; left alone",
                        name, cidr, self.cidrs.mask, self.cidrs.network)
            return
        other = next((n for n, c in self._owner.items() if c == cidr and n != name), None)
        if other is not None:
            log.warning("node %s: podCIDR %s is also node %s's", name, cidr, other)
        self._owner[name] = cidr

    async def sync(self, key: str) -> float | None:
        node = self.nodes.store.get(key)
        if node is None:
            cidr = self._owner.pop(key, None)
            if cidr is not None and cidr not in self._owner.values():
                self.cidrs.release(cidr)
                log.info("node %s: deleted; podCIDR %s released", key, cidr)
            return None
        current = pod_cidr_of(node)
        if current is not None:
            self._adopt(key, current)
            return None
        cidr = self._owner.get(key)
        if cidr is None:
            try:
                cidr = self.cidrs.allocate()
            except CidrExhausted as exc:
                log.warning("node %s: no podCIDR: %s", key, exc)
                return EXHAUSTED_RECHECK
            self._owner[key] = cidr
        try:
            await self.client.patch(NODE, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except (NotFound, Invalid) as exc:
            self._owner.pop(key, None)
            self.cidrs.release(cidr)
            if isinstance(exc, Invalid):
                raise  # it has another CIDR now: retry once the cache shows which
            return None
        self.metrics.wrote(self.name, "patch", "nodes")
        log.info("node %s: podCIDR %s allocated", key, cidr)
        return None
