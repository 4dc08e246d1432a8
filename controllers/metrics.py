"""Metrics of mp-controllers in Prometheus text format, and the endpoint serving them.

Names follow client-go's work-queue metrics and the controller-runtime ones
where they exist, prefixed ``miniplane_``:

- ``miniplane_workqueue_depth{name}`` (gauge), ``…_adds_total``, ``…_retries_total``
- ``miniplane_reconcile_total{controller,result}`` with result ``success``,
  ``error`` or ``requeue`` (a deliberate re-check later, e.g. a node's deadline)
- ``miniplane_reconcile_errors_total{controller}``
- ``miniplane_reconcile_duration_seconds{controller}`` (histogram)
- ``miniplane_api_writes_total{controller,verb,resource}``: every write the
  controllers make, which is how churn is measured
- gauges registered by controllers (informers synced, nodes silent, CIDRs used)

The endpoint answers ``GET /metrics``, ``/healthz`` (the event loop answers) and
``/readyz`` (200 once every informer has synced). One asyncio server, no
framework: a scrape is a few lines of HTTP/1.0.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from componentbase.metrics import Registry, StatusServer  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

# Reconciles take from ~50 µs (nothing to do) to seconds (many writes while the API
# server is slow), so buckets span 100 µs to 10 s.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Everything mp-controllers exports; controllers count into it directly.

    Counters are plain dicts (the work queue bumps them by key) read at scrape time.
    """

    def __init__(self) -> None:
        self.registry = Registry()
        self.queue_adds: dict[str, int] = defaultdict(int)
        self.queue_retries: dict[str, int] = defaultdict(int)
        self.reconciles: dict[tuple[str, str], int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.writes: dict[tuple[str, str, str], int] = defaultdict(int)
        self._depths: dict[str, Callable[[], int]] = {}
        self.registry.collector(self._collect_queues)
        self.durations = self.registry.histogram(
            "miniplane_reconcile_duration_seconds", "Time to reconcile one key.",
            DURATION_BUCKETS, labels=("controller",))
        self.registry.collector(self._collect_writes)

    def queue(self, name: str, depth: Callable[[], int]) -> None:
        """Export the depth of work queue ``name``."""
        self._depths[name] = depth

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Export ``read()`` as gauge ``name`` (read at scrape time)."""
        self.registry.gauge(name, help_text, read)

    def reconciled(self, controller: str, result: str, seconds: float) -> None:
        self.reconciles[(controller, result)] += 1
        if result == "error":
            self.errors[controller] += 1
        self.durations.observe(seconds, (controller,))

    def wrote(self, controller: str, verb: str, resource: str) -> None:
        self.writes[(controller, verb, resource)] += 1

    def render(self) -> str:
        return self.registry.render()

    def _collect_queues(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("miniplane_workqueue_depth",
                                  "Keys waiting in a controller's work queue.", labels=["name"])
        for name, read in sorted(self._depths.items()):
            depth.add_metric([name], read())
        yield depth
        yield _counter("miniplane_workqueue_adds_total", "Keys added to a work queue.",
                       ["name"], {(n,): v for n, v in self.queue_adds.items()})
        yield _counter("miniplane_workqueue_retries_total",
                       "Keys requeued after a failed reconcile.",
                       ["name"], {(n,): v for n, v in self.queue_retries.items()})
        yield _counter("miniplane_reconcile_total", "Reconciles, by controller and result.",
                       ["controller", "result"], self.reconciles)
        yield _counter("miniplane_reconcile_errors_total",
                       "Reconciles that failed and were retried.",
                       ["controller"], {(c,): v for c, v in self.errors.items()})

    def _collect_writes(self) -> Iterable[Metric]:
        yield _counter("miniplane_api_writes_total", "Writes sent to the API server.",
                       ["controller", "verb", "resource"], self.writes)


def _counter(name: str, help_text: str, labels: list[str],
             values: Mapping[Any, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
