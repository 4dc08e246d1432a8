"""The proxy's metrics (on a ``componentbase`` registry) and the small HTTP endpoint.

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
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from componentbase.metrics import Registry, StatusServer  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

# kube-proxy's sync buckets: 1 ms doubling 15 times (~16 s).
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
# kube-proxy's programming-latency buckets span 0.25 s … 5 min; ours start at 10 ms,
# since a local sync takes tens of milliseconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
                   8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
                   300.0)

P = "kubeproxy_"


class Metrics:
    """Every metric the proxy exports; the sync loop updates the fields directly, and
    they are read when scraped."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.sync_duration = self.registry.histogram(
            P + "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds (full and partial).", SYNC_BUCKETS)
        self.full_sync_duration = self.registry.histogram(
            P + "sync_full_proxy_rules_duration_seconds", "Latency of full syncs in seconds.",
            SYNC_BUCKETS)
        self.partial_sync_duration = self.registry.histogram(
            P + "sync_partial_proxy_rules_duration_seconds",
            "Latency of partial syncs in seconds.", SYNC_BUCKETS)
        self.programming = self.registry.histogram(
            P + "network_programming_duration_seconds",
            "From an EndpointSlice's last-change-trigger-time to its rules being applied.",
            LATENCY_BUCKETS)
        self.last_sync = 0.0
        self.last_queued = 0.0
        self.rules_total: dict[str, int] = {"filter": 0, "nat": 0}
        self.rules_last: dict[str, int] = {"filter": 0, "nat": 0}
        self.restore_failures = 0
        self.partial_restore_failures = 0
        self.service_changes = 0
        self.endpoint_changes = 0
        self.invalid_objects = 0
        self.no_local_endpoints: dict[str, int] = {"internal": 0, "external": 0}
        self.conntrack_deleted = 0
        self.drift_repairs = 0
        self.registry.collector(self._collect_fields)

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Export ``fn()`` as gauge ``kubeproxy_<name>``, read at scrape time."""
        self.registry.gauge(P + name, help_text, fn)

    def render(self) -> str:
        return self.registry.render()

    def _collect_fields(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(P + "sync_proxy_rules_last_timestamp_seconds",
                                "The last time rules were successfully synced (unix seconds).",
                                value=self.last_sync)
        yield GaugeMetricFamily(P + "sync_proxy_rules_last_queued_timestamp_seconds",
                                "The oldest change not yet synced (unix seconds; 0 when none "
                                "is pending).", value=self.last_queued)
        yield _by_label(P + "sync_proxy_rules_iptables_total",
                        "Rules owned by the proxy, by table.", "table", self.rules_total)
        yield _by_label(P + "sync_proxy_rules_iptables_last",
                        "Rules written by the last sync, by table.", "table", self.rules_last)
        for name, help_text, value in (
                ("sync_proxy_rules_iptables_restore_failures_total",
                 "iptables-restore runs that failed (full and partial).",
                 self.restore_failures),
                ("sync_proxy_rules_iptables_partial_restore_failures_total",
                 "Partial iptables-restore runs that failed (a full sync follows).",
                 self.partial_restore_failures),
                ("sync_proxy_rules_service_changes_total", "Service changes seen.",
                 self.service_changes),
                ("sync_proxy_rules_endpoint_changes_total", "EndpointSlice changes seen.",
                 self.endpoint_changes)):
            yield CounterMetricFamily(P + name, help_text, value=value)
        yield _by_label(P + "sync_proxy_rules_no_local_endpoints_total",
                        "Service ports with a Local traffic policy and no local endpoint.",
                        "traffic_policy", self.no_local_endpoints)
        for name, help_text, value in (
                ("invalid_objects_total", "Services and EndpointSlices skipped because a "
                 "field was unsafe or malformed.", self.invalid_objects),
                ("conntrack_entries_deleted_total",
                 "Stale UDP conntrack entries deleted after endpoint changes.",
                 self.conntrack_deleted),
                ("drift_repairs_total",
                 "Full syncs started because the kernel's rules differed from ours.",
                 self.drift_repairs)):
            yield CounterMetricFamily(P + name, help_text, value=value)


def _by_label(name: str, help_text: str, label: str, values: dict[str, int]) -> Metric:
    """A gauge with one series per ``label`` value (kube-proxy's ``…_total`` gauges)."""
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
