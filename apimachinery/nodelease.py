"""A node's Lease in ``kube-node-lease``: the heartbeat its agent renews (KEP-589).

As a kubelet's: named after the node, ``holderIdentity`` the node's name,
``leaseDurationSeconds`` 40 by default and renewed every quarter of that, owned by
its Node (an ownerReference carrying the Node's uid). The node agent writes it,
the node lifecycle controller reads ``renew_time_of``; both share these pure
builders, so the shape is written down once.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from apimachinery.timestamps import format_micro_time

NODE_LEASE_NAMESPACE = "kube-node-lease"
API_VERSION = "coordination.k8s.io/v1"
# kubelet: nodeLeaseDurationSeconds 40, renewed every 0.25 of it (renewIntervalFraction)
DEFAULT_DURATION_SECONDS = 40
RENEW_FRACTION = 0.25


def duration_for(renew_interval: float) -> int:
    """``leaseDurationSeconds`` for a Lease renewed every ``renew_interval`` seconds:
    the interval is a quarter of the duration, as a kubelet's (10 s → 40)."""
    return max(1, math.ceil(renew_interval / RENEW_FRACTION))


def renew_time_of(lease: Mapping[str, Any] | None) -> str | None:
    """The Lease's ``spec.renewTime`` (None without a Lease or a renewal)."""
    spec = lease.get("spec") if lease is not None else None
    value = spec.get("renewTime") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) and value else None


def node_owner(node: str, uid: str) -> dict[str, Any]:
    """The ownerReference a kubelet puts on its Lease: its Node."""
    return {"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}


def new_lease(node: str, *, duration: int, now: float, node_uid: str | None) -> dict[str, Any]:
    """The Lease an agent creates for ``node`` (owned by it once its uid is known)."""
    meta: dict[str, Any] = {"name": node, "namespace": NODE_LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [node_owner(node, node_uid)]
    return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration,
                     "renewTime": format_micro_time(now)}}


def renewed(lease: Mapping[str, Any], node: str, *, duration: int, now: float,
            node_uid: str | None) -> dict[str, Any]:
    """``lease`` (as last read, resourceVersion and all) renewed at ``now`` by ``node``;
    an ownerReference to an older Node of that name is replaced by the current one,
    other owners are kept."""
    out = copy.deepcopy(dict(lease))
    meta = out.setdefault("metadata", {})
    if node_uid:
        others = [r for r in meta.get("ownerReferences") or []
                  if not (isinstance(r, Mapping) and r.get("kind") == "Node"
                          and r.get("apiVersion") == "v1")]
        meta["ownerReferences"] = [*others, node_owner(node, node_uid)]
    spec = out.setdefault("spec", {})
    spec.update({"holderIdentity": node, "leaseDurationSeconds": duration,
                 "renewTime": format_micro_time(now)})
    return out
