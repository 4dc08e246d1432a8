"""When the agent posts its Node status: on a change, else every report period.

A kubelet computes its node status every 10 s but posts it only when it changed
(heartbeat times aside) or ``nodeStatusReportFrequency`` (5 min) has passed since
its last post: its Lease is the frequent heartbeat, and every Node write would wake
every Node watcher in the cluster. The agent does the same, with one addition:
while its Lease is not current (not renewed within its duration: a server without
Leases, a refused renewal), the status is the heartbeat again and is posted every
heartbeat interval, so a node whose Lease can't be written is still seen alive.

"Changed" compares with what this agent last posted (not with the API's copy,
which the server may normalise), plus the API's Ready condition: a node the node
lifecycle controller marked Unknown is reported Ready again at the next check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def without_heartbeats(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` without its conditions' ``lastHeartbeatTime`` (which always moves)."""
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                         for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    return out


def report_due(*, desired: Mapping[str, Any], posted: Mapping[str, Any] | None,
               api_ready: str | None, since_post: float, every: float) -> str | None:
    """Why the status must be posted now, or None.

    ``desired``: the status as the agent would post it now; ``posted``: the last one
    it posted (None: none since it started); ``api_ready``: the Ready condition's
    status in the API's copy of the Node ("" if it has none, None while that copy
    isn't known); ``since_post``:
    seconds since that post; ``every``: the report period in force.
    """
    if posted is None:
        return "first report since start"
    if without_heartbeats(desired) != without_heartbeats(posted):
        return "status changed"
    if api_ready is not None and api_ready != "True":
        return f"Ready is {api_ready or 'missing'} in the API"
    if since_post >= every:
        return "periodic report"
    return None
