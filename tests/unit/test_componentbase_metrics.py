"""componentbase.metrics: a component's registry on prometheus_client, and its text."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from componentbase.metrics import Registry, StatusServer


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    registry = Registry()
    h = registry.histogram("t", "A test histogram.", (0.1, 1.0), labels=("c",))
    for v in (0.05, 0.5, 0.5, 3.0):
        h.observe(v, ("x",))
    lines = registry.render().splitlines()
    assert lines == [
        "# HELP t A test histogram.", "# TYPE t histogram",
        't_bucket{c="x",le="0.1"} 1.0', 't_bucket{c="x",le="1.0"} 3.0',
        't_bucket{c="x",le="+Inf"} 4.0', 't_count{c="x"} 4.0', 't_sum{c="x"} 4.05']
    assert h.count(("x",)) == 4 and h.count(("y",)) == 0 and h.total(("x",)) == 4.05


def test_unlabelled_histogram_shows_zero_buckets_before_any_observation() -> None:
    registry = Registry()
    registry.histogram("t", "T.", (1.0,))
    assert 't_bucket{le="+Inf"} 0.0' in registry.render().splitlines()


def test_gauges_read_at_scrape_time_and_collectors_read_fields() -> None:
    registry = Registry()
    state = {"n": 1}
    registry.gauge("g", "A gauge.", lambda: state["n"])
    registry.collector(lambda: [CounterMetricFamily("c_total", "A counter.", value=state["n"])])
    state["n"] = 7
    text = registry.render()
    assert "g 7.0" in text.splitlines() and "c_total 7.0" in text.splitlines()
    assert "# TYPE c_total counter" in text and "_created" not in text


def test_registries_are_separate() -> None:
    a, b = Registry(), Registry()
    a.histogram("same_name", "A.", (1.0,)).observe(0.5)
    b.histogram("same_name", "B.", (1.0,))  # no clash: each component has its own
    assert "same_name_count 1.0" in a.render() and "same_name_count 0.0" in b.render()


def test_status_server_answers_metrics_health_and_readiness() -> None:
    registry = Registry()
    server = StatusServer(registry.render, readiness=lambda: (False, "not synced"))
    status, ctype, body = server.respond(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == "200 OK" and ctype.startswith("text/plain; version=0.0.4")
    assert server.respond(b"GET /readyz HTTP/1.1\r\n\r\n")[0].startswith("503")
    assert server.respond(b"HEAD /healthz HTTP/1.1\r\n\r\n")[0] == "200 OK"
