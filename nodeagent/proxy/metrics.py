"""The proxy's metrics (Prometheus text) and the small HTTP endpoint serving them.

Names are kube-proxy's (``kubeproxy_…``, reference §9.2), so existing dashboards and
the network-programming-latency SLI read them unchanged:

- ``kubeproxy_sync_proxy_rules_duration_seconds`` (and the ``full``/``partial``
  variants): time of one sync, build to last restore;
- ``kubeproxy_sync_proxy_rules_last_timestamp_seconds``: last successful sync;
  ``…_last_queued_timestamp_seconds``: oldest change not yet applied;
- ``kubeproxy_network_programming_duration_seconds``: from an EndpointSlice's
  ``last-change-trigger-time`` to its rules being in the kernel;
- ``kubeproxy_sync_proxy_rules_iptables_total{table}``: rules we own;
  ``…_iptables_last{table}``: rules written by the last sync;
- restore failures, no-local-endpoint Services, conntrack entries cleared.

``/healthz`` answers 503 when a queued change has waited more than twice the sync
period (kube-proxy's rule: the proxy is stuck), ``/readyz`` 503 until the first sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from client.metrics import Histogram, StatusServer  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

# kube-proxy's sync buckets: 1 ms doubling 15 times (~16 s).
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
# kube-proxy's programming-latency buckets span 0.25 s … 5 min; ours start at 10 ms,
# since a local sync takes tens of milliseconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
                   8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
                   300.0)



@dataclass
class Metrics:
    """Every metric the proxy exports; the sync loop updates the fields directly."""

    sync_duration: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    full_sync_duration: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    partial_sync_duration: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    programming: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    last_sync: float = 0.0
    last_queued: float = 0.0
    rules_total: dict[str, int] = field(default_factory=lambda: {"filter": 0, "nat": 0})
    rules_last: dict[str, int] = field(default_factory=lambda: {"filter": 0, "nat": 0})
    restore_failures: int = 0
    partial_restore_failures: int = 0
    service_changes: int = 0
    endpoint_changes: int = 0
    invalid_objects: int = 0
    no_local_endpoints: dict[str, int] = field(
        default_factory=lambda: {"internal": 0, "external": 0})
    conntrack_deleted: int = 0
    drift_repairs: int = 0
    gauges: dict[str, tuple[str, Callable[[], float]]] = field(default_factory=dict)

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Export ``fn()`` as gauge ``name``, read at scrape time."""
        self.gauges[name] = (help_text, fn)

    def render(self) -> str:
        p = "kubeproxy_"
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, body: list[str]) -> None:
            lines.extend([f"# HELP {p}{name} {help_text}", f"# TYPE {p}{name} {kind}", *body])

        metric("sync_proxy_rules_duration_seconds", "histogram",
               "SyncProxyRules latency in seconds (full and partial).",
               self.sync_duration.lines(p + "sync_proxy_rules_duration_seconds"))
        metric("sync_full_proxy_rules_duration_seconds", "histogram",
               "Latency of full syncs in seconds.",
               self.full_sync_duration.lines(p + "sync_full_proxy_rules_duration_seconds"))
        metric("sync_partial_proxy_rules_duration_seconds", "histogram",
               "Latency of partial syncs in seconds.",
               self.partial_sync_duration.lines(p + "sync_partial_proxy_rules_duration_seconds"))
        metric("network_programming_duration_seconds", "histogram",
               "From an EndpointSlice's last-change-trigger-time to its rules being applied.",
               self.programming.lines(p + "network_programming_duration_seconds"))
        metric("sync_proxy_rules_last_timestamp_seconds", "gauge",
               "The last time rules were successfully synced (unix seconds).",
               [f"{p}sync_proxy_rules_last_timestamp_seconds {self.last_sync!r}"])
        metric("sync_proxy_rules_last_queued_timestamp_seconds", "gauge",
               "The oldest change not yet synced (unix seconds; 0 when none is pending).",
               [f"{p}sync_proxy_rules_last_queued_timestamp_seconds {self.last_queued!r}"])
        metric("sync_proxy_rules_iptables_total", "gauge",
               "Rules owned by the proxy, by table.",
               [f'{p}sync_proxy_rules_iptables_total{{table="{t}"}} {n}'
                for t, n in sorted(self.rules_total.items())])
        metric("sync_proxy_rules_iptables_last", "gauge",
               "Rules written by the last sync, by table.",
               [f'{p}sync_proxy_rules_iptables_last{{table="{t}"}} {n}'
                for t, n in sorted(self.rules_last.items())])
        metric("sync_proxy_rules_iptables_restore_failures_total", "counter",
               "iptables-restore runs that failed (full and partial).",
               [f"{p}sync_proxy_rules_iptables_restore_failures_total {self.restore_failures}"])
        metric("sync_proxy_rules_iptables_partial_restore_failures_total", "counter",
               "Partial iptables-restore runs that failed (a full sync follows).",
               [f"{p}sync_proxy_rules_iptables_partial_restore_failures_total "
                f"{self.partial_restore_failures}"])
        metric("sync_proxy_rules_service_changes_total", "counter",
               "Service changes seen.",
               [f"{p}sync_proxy_rules_service_changes_total {self.service_changes}"])
        metric("sync_proxy_rules_endpoint_changes_total", "counter",
               "EndpointSlice changes seen.",
               [f"{p}sync_proxy_rules_endpoint_changes_total {self.endpoint_changes}"])
        metric("sync_proxy_rules_no_local_endpoints_total", "gauge",
               "Service ports with a Local traffic policy and no local endpoint.",
               [f'{p}sync_proxy_rules_no_local_endpoints_total{{traffic_policy="{k}"}} {n}'
                for k, n in sorted(self.no_local_endpoints.items())])
        metric("invalid_objects_total", "counter",
               "Services and EndpointSlices skipped because a field was unsafe or malformed.",
               [f"{p}invalid_objects_total {self.invalid_objects}"])
        metric("conntrack_entries_deleted_total", "counter",
               "Stale UDP conntrack entries deleted after endpoint changes.",
               [f"{p}conntrack_entries_deleted_total {self.conntrack_deleted}"])
        metric("drift_repairs_total", "counter",
               "Full syncs started because the kernel's rules differed from ours.",
               [f"{p}drift_repairs_total {self.drift_repairs}"])
        for name, (help_text, fn) in sorted(self.gauges.items()):
            metric(name, "gauge", help_text, [f"{p}{name} {fn()!r}"])
        return "\n".join(lines) + "\n"
