"""dnsd's metrics on a ``componentbase`` registry, and the small HTTP endpoint serving them.

Counting sits on the query fast path, so the hot counters are plain ints and a
list indexed by rcode, not labelled objects, read when scraped: one increment per
query; the latency histograms are prometheus_client's. Names follow CoreDNS's where it has one
(``dns_requests_total``, ``dns_responses_total{rcode}``,
``dns_request_duration_seconds``, ``dns_programming_duration_seconds{service_kind}``).

The endpoint answers ``GET /metrics``, ``/healthz`` (the process is up) and
``/readyz`` (200 only when the index has synced and every watch is connected).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import dns.rcode
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from componentbase.metrics import Registry, StatusServer  # noqa: F401 - re-exported
from dnsd.cache import ForwardCache

log = logging.getLogger(__name__)

# Query latency inside the server: a fast-path answer takes tens of microseconds,
# a forwarded one up to the upstream timeout, so buckets span 25 µs to 5 s.
QUERY_BUCKETS = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Programming latency: from a write to its answer being served; milliseconds when
# healthy, minutes when a watch was down. CoreDNS's range (1 ms … ~17 min) coarsened.
PROGRAMMING_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                       10.0, 30.0, 60.0, 300.0, 1020.0)
MAX_RCODE = 24  # rcodes 0..23 are defined; BADVERS (16) is the largest dnsd sends


class Metrics:
    """Every metric dnsd exports. Hot-path fields are public for direct increments."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.requests = {"udp": 0, "tcp": 0}
        self.responses = [0] * MAX_RCODE
        self.fast_path = 0
        self.slow_path = 0
        self.malformed = 0
        self.forwarded = {"ok": 0, "timeout": 0, "error": 0}
        self.rate_limited = {"drop": 0, "slip": 0}
        self.tcp_refused = {"total": 0, "per_client": 0}
        self.registry.collector(self._collect_counters)
        self.query_duration = self.registry.histogram(
            "dns_request_duration_seconds",
            "Time from receiving a query to sending its answer.", QUERY_BUCKETS)
        self.programming = self.registry.histogram(
            "dns_programming_duration_seconds",
            "Time from an object's write (its trigger-time annotation, or a sub-second "
            "creationTimestamp) to its answers being served.", PROGRAMMING_BUCKETS,
            labels=("service_kind",))

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        """Export ``fn()`` as gauge ``name``, read at scrape time."""
        self.registry.gauge(name, help_text, fn)

    def forward_cache(self, cache: ForwardCache) -> None:
        """Export the cache of forwarded answers (CoreDNS's ``cache_*`` metrics)."""

        def collect() -> Iterable[Metric]:
            yield GaugeMetricFamily("dns_cache_entries", "Forwarded answers kept.",
                                    value=len(cache))
            yield CounterMetricFamily("dns_cache_hits_total",
                                      "Forwarded questions answered from the cache.",
                                      value=cache.hits)
            yield CounterMetricFamily("dns_cache_misses_total",
                                      "Forwarded questions the cache had no answer for.",
                                      value=cache.misses)
            yield CounterMetricFamily("dns_cache_evictions_total",
                                      "Kept answers dropped to make room.",
                                      value=cache.evictions)

        self.registry.collector(collect)

    def render(self) -> str:
        return self.registry.render()

    def _collect_counters(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("dns_requests_total",
                                       "DNS queries received, by transport.", labels=["proto"])
        for proto, n in self.requests.items():
            requests.add_metric([proto], n)
        responses = CounterMetricFamily("dns_responses_total", "DNS responses sent, by rcode.",
                                        labels=["rcode"])
        for code, n in enumerate(self.responses):
            if n:
                responses.add_metric([dns.rcode.Rcode.to_text(code)], n)
        forwarded = CounterMetricFamily("dns_forward_requests_total",
                                        "Queries forwarded upstream, by outcome.",
                                        labels=["result"])
        for result, n in self.forwarded.items():
            forwarded.add_metric([result], n)
        yield requests
        yield responses
        yield CounterMetricFamily("dns_fast_path_total",
                                  "Queries answered from precomputed wire bytes.",
                                  value=self.fast_path)
        yield CounterMetricFamily("dns_slow_path_total",
                                  "Queries parsed and answered with dnspython.",
                                  value=self.slow_path)
        yield CounterMetricFamily("dns_malformed_total",
                                  "Packets answered with FORMERR or dropped.",
                                  value=self.malformed)
        yield forwarded
        limited = CounterMetricFamily("dns_rrl_responses_total",
                                      "UDP responses over the rate limit, by what was done: "
                                      "drop (nothing sent) or slip (an empty TC reply).",
                                      labels=["action"])
        for action, n in self.rate_limited.items():
            limited.add_metric([action], n)
        yield limited
        refused = CounterMetricFamily("dns_tcp_connections_refused_total",
                                      "TCP connections closed at once, by the limit hit.",
                                      labels=["limit"])
        for limit, n in self.tcp_refused.items():
            refused.add_metric([limit], n)
        yield refused
