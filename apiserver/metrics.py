"""The API server's request and storage metrics, on a ``componentbase`` registry.

Names are kube-apiserver's: ``apiserver_request_total{verb,resource,code}``,
``apiserver_request_duration_seconds`` (its ``_sum`` and ``_count`` by verb and
resource), ``apiserver_watch_started_total``; the app passes its storage and watch
gauges at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from componentbase.metrics import Registry

# What the gauges the app passes to ``render`` mean (the name, when not listed).
GAUGE_HELP = {
    "apiserver_storage_revision": "The newest revision of the event log.",
    "apiserver_storage_compacted_revision": "The revision the event log is compacted to.",
    "apiserver_storage_write_batches": "Write transactions committed (group commits).",
    "apiserver_storage_writes": "Writes committed.",
    "apiserver_watchers": "Watch streams open.",
    "apiserver_watch_streams_cut": "Watch streams closed because their client fell "
                                   "--watch-buffer events behind (it resumes).",
    "apiserver_service_cluster_ips_used": "ClusterIPs allocated.",
    "apiserver_service_node_ports_used": "NodePorts allocated.",
}


class Metrics:
    """Requests by verb, resource and code; watches started (the handlers bump
    ``watchers_started``); the app's gauges."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.watchers_started = 0
        self._gauges: dict[str, Callable[[], float]] = {}
        self._requests = prometheus_client.Counter(
            "apiserver_request_total", "Requests, by verb, resource and HTTP code.",
            ("verb", "resource", "code"), registry=self.registry.prometheus)
        # kube-apiserver's is a histogram; a summary keeps our series (_sum, _count)
        self._seconds = prometheus_client.Summary(
            "apiserver_request_duration_seconds", "Time to answer a request.",
            ("verb", "resource"), registry=self.registry.prometheus)
        self.registry.collector(self._collect)

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self._requests.labels(verb, resource, str(code)).inc()
        self._seconds.labels(verb, resource).observe(seconds)

    def render(self, gauges: dict[str, Callable[[], float]]) -> str:
        """The exposition, with ``gauges`` read now."""
        self._gauges = gauges
        return self.registry.render()

    def _collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily("apiserver_watch_started_total", "Watch streams started.",
                                  value=self.watchers_started)
        for name, read in sorted(self._gauges.items()):
            yield GaugeMetricFamily(name, GAUGE_HELP.get(name, name), value=float(read()))
