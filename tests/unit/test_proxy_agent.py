"""Change tracking, fragment memoisation, metrics text and flags (no root, no iptables)."""

from __future__ import annotations

from typing import Any

import pytest

from componentbase.flags import parse_duration
from nodeagent.main import main, parse_args
from nodeagent.proxy.apply import Backend
from nodeagent.proxy.metrics import Metrics, StatusServer
from nodeagent.proxy.sync import Proxier, ProxyConfig
from tests.flagcheck import flag_error


def service(name: str, ip: str, ports: list[dict[str, Any]], rv: str = "1",
            **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": name, "resourceVersion": rv},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports, **spec}}


def endpoint_slice(name: str, owner: str, ips: list[str], ports: list[dict[str, Any]],
                   rv: str = "1", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": name, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": owner},
                         "annotations": annotations or {}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [ip]} for ip in ips]}


PORTS = [{"name": "http", "port": 80, "protocol": "TCP"},
         {"name": "dns", "port": 53, "protocol": "UDP"}]
SLICE_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "dns", "port": 5353, "protocol": "UDP"}]


@pytest.fixture
def proxier() -> Proxier:
    # update() never runs iptables; the backend is only named
    return Proxier(Backend("nft", "mp-unused"), ProxyConfig(node_name="node-a"))


def test_multi_port_service_from_objects(proxier: Proxier) -> None:
    t = proxier.tracker
    t.service_added(service("web", "10.96.0.20", PORTS))
    t.slice_added(endpoint_slice("web-a", "web", ["10.244.1.5"], SLICE_PORTS))
    t.slice_added(endpoint_slice("web-b", "web", ["10.244.1.6"], SLICE_PORTS[:1]))
    changes, _ = t.take()
    assert list(changes) == [("demo", "web")]
    proxier.update(changes)
    assert set(proxier.fragments) == {"demo/web:http/TCP", "demo/web:dns/UDP"}
    http = [r for c in proxier.fragments["demo/web:http/TCP"].chains for r in c.rules
            if "DNAT" in r]
    dns = [r for c in proxier.fragments["demo/web:dns/UDP"].chains for r in c.rules
           if "DNAT" in r]
    assert {r.rsplit(" ", 1)[1] for r in http} == {"10.244.1.6:8080", "10.244.1.5:8080"}
    assert {r.rsplit(" ", 1)[1] for r in dns} == {"10.244.1.5:5353"}
    assert set(proxier.udp) == {"demo/web:dns/UDP"}


def test_unchanged_services_keep_their_fragment_objects(proxier: Proxier) -> None:
    t = proxier.tracker
    for name, ip in (("a", "10.96.0.1"), ("b", "10.96.0.2")):
        t.service_added(service(name, ip, PORTS[:1]))
        t.slice_added(endpoint_slice(f"{name}-x", name, ["10.244.1.5"], SLICE_PORTS[:1]))
    proxier.update(t.take()[0])
    before = dict(proxier.fragments)
    t.slice_updated(endpoint_slice("b-x", "b", ["10.244.1.5"], SLICE_PORTS[:1]),
                    endpoint_slice("b-x", "b", ["10.244.1.9"], SLICE_PORTS[:1], rv="2"))
    changes, _ = t.take()
    assert list(changes) == [("demo", "b")]
    proxier.update(changes)
    assert proxier.fragments["demo/a:http/TCP"] is before["demo/a:http/TCP"]
    assert proxier.fragments["demo/b:http/TCP"] != before["demo/b:http/TCP"]


def test_resync_with_same_version_is_not_a_change(proxier: Proxier) -> None:
    t = proxier.tracker
    obj = service("a", "10.96.0.1", PORTS)
    t.service_added(obj)
    t.take()
    t.service_updated(obj, obj)
    assert not t.pending


def test_invalid_service_gets_no_rules_and_is_counted(proxier: Proxier) -> None:
    t = proxier.tracker
    t.service_added(service("a", "10.96.0.1", PORTS))
    proxier.update(t.take()[0])
    assert proxier.fragments
    t.service_updated(service("a", "10.96.0.1", PORTS),
                      service("a", "10.96.0.1 -j ACCEPT", PORTS, rv="2"))
    proxier.update(t.take()[0])
    assert proxier.fragments == {} and proxier.metrics.invalid_objects == 1


def test_slice_relabelled_to_another_service_moves(proxier: Proxier) -> None:
    t = proxier.tracker
    t.service_added(service("a", "10.96.0.1", PORTS[:1]))
    t.service_added(service("b", "10.96.0.2", PORTS[:1]))
    t.slice_added(endpoint_slice("x", "a", ["10.244.1.5"], SLICE_PORTS[:1]))
    proxier.update(t.take()[0])
    t.slice_updated(endpoint_slice("x", "a", ["10.244.1.5"], SLICE_PORTS[:1]),
                    endpoint_slice("x", "b", ["10.244.1.5"], SLICE_PORTS[:1], rv="2"))
    changes, _ = t.take()
    assert set(changes) == {("demo", "a"), ("demo", "b")}
    proxier.update(changes)
    assert not proxier.fragments["demo/a:http/TCP"].chains  # REJECT only
    assert proxier.fragments["demo/b:http/TCP"].chains


def test_trigger_times_are_collected(proxier: Proxier) -> None:
    t = proxier.tracker
    t.slice_added(endpoint_slice("x", "a", [], [], annotations={
        "endpoints.kubernetes.io/last-change-trigger-time": "2023-11-14T22:13:20Z"}))
    assert t.take()[1] == [1700000000.0]


def test_large_cluster_mode_rebuilds_without_comments(proxier: Proxier) -> None:
    t = proxier.tracker
    t.service_added(service("a", "10.96.0.1", PORTS[:1]))
    t.slice_added(endpoint_slice("x", "a", ["10.244.1.5"], SLICE_PORTS[:1]))
    proxier.update(t.take()[0])
    assert any("->" in r for c in proxier.fragments["demo/a:http/TCP"].chains for r in c.rules)
    t.service_added(service("big", "10.96.0.2", PORTS[:1]))
    t.slice_added(endpoint_slice("big-x", "big",
                                 [f"10.244.{i // 250}.{i % 250 + 2}" for i in range(1001)],
                                 SLICE_PORTS[:1]))
    proxier.update(t.take()[0])
    assert proxier.ctx.large_cluster
    assert not any("->" in r for c in proxier.fragments["demo/a:http/TCP"].chains
                   for r in c.rules)
    # hysteresis: 950 endpoints keeps the mode, 899 leaves it
    for count, large in ((950, True), (899, False)):
        t.slice_updated(endpoint_slice("big-x", "big", [], SLICE_PORTS[:1]),
                        endpoint_slice("big-x", "big",
                                       [f"10.244.{i // 250}.{i % 250 + 2}"
                                        for i in range(count - 1)],
                                       SLICE_PORTS[:1], rv=str(count)))
        proxier.update(t.take()[0])
        assert proxier.ctx.large_cluster is large


def test_metrics_text() -> None:
    m = Metrics()
    m.sync_duration.observe(0.003)
    m.programming.observe(0.2)
    m.rules_total["nat"] = 7
    m.restore_failures += 1
    m.gauge("services", "Service ports programmed.", lambda: 3)
    text = m.render().splitlines()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004"} 1.0' in text
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 1.0" in text
    assert 'kubeproxy_network_programming_duration_seconds_bucket{le="0.25"} 1.0' in text
    assert 'kubeproxy_sync_proxy_rules_iptables_total{table="nat"} 7.0' in text
    assert "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge" in text
    assert "# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter" in text
    assert "kubeproxy_sync_proxy_rules_iptables_restore_failures_total 1.0" in text
    assert "kubeproxy_services 3.0" in text


def test_status_endpoint_answers() -> None:
    server = StatusServer(Metrics().render, health=lambda: (True, ""),
                          readiness=lambda: (False, "rules not synced yet"))
    def respond(line: bytes) -> tuple[str, str, bytes]:
        return server.respond(line + b"\r\n\r\n", from_loopback=True)

    assert respond(b"GET /healthz HTTP/1.1")[0] == "200 OK"
    status, _, body = respond(b"GET /readyz HTTP/1.1")
    assert status.startswith("503") and b"not synced" in body
    assert respond(b"GET /metrics HTTP/1.1")[0] == "200 OK"
    assert respond(b"POST /metrics HTTP/1.1")[0].startswith("405")
    assert respond(b"GET /nope HTTP/1.1")[0].startswith("404")


def test_flags() -> None:
    opts = parse_args(["--node", "Node-1", "--netns", "mp-x-node", "--iptables-backend",
                       "legacy", "--min-sync-period", "250ms", "--sync-period", "1m",
                       "--metrics-listen", "127.0.0.1:0", "--cluster-cidr", ""])
    assert opts.node == "node-1" and opts.netns == "mp-x-node" and opts.backend == "legacy"
    assert opts.proxy.min_sync_period == 0.25 and opts.proxy.sync_period == 60.0
    assert opts.proxy.cluster_cidr is None and opts.metrics_listen == ("127.0.0.1", 0)
    assert parse_args([]).backend == "nft"
    assert parse_duration("1.5s") == 1.5 and parse_duration("2h") == 7200


@pytest.mark.parametrize(("argv", "message"), [
    (["--cluster-cidr", "10.244.0.1/16"], "argument --cluster-cidr: invalid CIDR"),
    (["--cluster-cidr", "fd00::/64"], "expected an IPv4 CIDR"),
    (["--netns", "../etc"], "argument --netns: '../etc' is not a namespace name"),
    (["--min-sync-period", "1m", "--sync-period", "1s"],
     "argument --min-sync-period: must not exceed --sync-period"),
    (["--sync-period", "0"], "argument --sync-period: must be more than 0 seconds"),
    (["--full-sync-period", "soon"], "argument --full-sync-period: 'soon' is not a duration"),
    (["--metrics-listen", "127.0.0.1:x"], "argument --metrics-listen:"),
    (["--node", "bad node"], "argument --node: 'bad node' is not a DNS-1123 subdomain"),
])
def test_bad_flags(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, parse_args, argv, prog="mp-nodeagent")


def test_main_exits_2_with_argparse_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert flag_error(capsys, main, ["--heartbeat-interval", "0s"], prog="mp-nodeagent") == \
        "mp-nodeagent: error: argument --heartbeat-interval: must be more than 0 seconds, " \
        "got '0s'"
