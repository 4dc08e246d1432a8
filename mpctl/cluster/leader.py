"""``cluster status``'s line on controller leader election: who holds the Lease, and
which of the cluster's controller processes says it leads (its ``/metrics``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from apimachinery.kinds import LEASE
from client.errors import ApiError, ConnectionFailed, NotFound
from client.http import Client

from .state import ProcessRecord

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "kube-controller-manager"  # mp-controllers' defaults
MASTER = "miniplane_leader_election_master_status"


def says_it_leads(metrics_text: str) -> bool:
    """Whether a controller process's /metrics has its master status at 1."""
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name == MASTER:
            try:
                return float(value) == 1.0
            except ValueError:
                return False
    return False


def describe(lease: Mapping[str, Any] | None, leaders: Iterable[str]) -> str:
    """One line: the leading process(es) and the Lease they hold."""
    where = f"Lease {LEASE_NAMESPACE}/{LEASE_NAME}"
    if lease is None:
        return f"controller leader: none yet (no {where})"
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if not holder:
        return f"controller leader: none ({where} released)"
    who = ", ".join(leaders) or "no process of this cluster"
    count = spec.get("leaseTransitions") or 0
    return (f"controller leader: {who} ({where} held by {holder}, "
            f"{count} transition{'' if count == 1 else 's'})")


def _leads(rec: ProcessRecord) -> bool:
    if not rec.metrics:
        return False
    try:
        return says_it_leads(httpx.get(f"http://{rec.metrics}/metrics", timeout=1).text)
    except httpx.HTTPError:
        return False


def leader_line(client: Client, processes: Iterable[ProcessRecord]) -> str:
    try:
        lease: dict[str, Any] | None = client.get(LEASE, LEASE_NAME, LEASE_NAMESPACE)
    except NotFound:
        lease = None
    except (ApiError, ConnectionFailed) as exc:
        return f"controller leader: unknown ({exc})"
    return describe(lease, [r.name for r in processes
                            if r.name.startswith("controllers") and _leads(r)])
