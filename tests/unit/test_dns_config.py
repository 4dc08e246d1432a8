"""dnsd.config: mp-dnsd's flags, accepted and rejected (one-line messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsd import cache, resolvconf
from dnsd.config import Config, Listen, parse_args
from dnsd.main import main
from dnsd.upstream import Server
from tests.flagcheck import flag_error


def test_defaults() -> None:
    config = parse_args([])
    assert config == Config(server=None, kubeconfig=None, listen=(Listen("127.0.0.1", 5353),),
                            cluster_domain="cluster.local", ttl=5, upstreams=(),
                            upstream_timeout=2.0, metrics_listen=None, pod_records=True,
                            log_level="info")
    assert config.local_ips == ("127.0.0.1",)
    # issue 15's limits: UDP capped at CoreDNS's bufsize, RRL off, TCP bounded
    assert (config.max_udp_size, config.rrl_responses_per_second, config.rrl_slip) == \
        (1232, 0, 2)
    assert (config.max_tcp_connections, config.max_tcp_connections_per_client,
            config.tcp_idle_timeout) == (1024, 32, 10.0)


def test_limits() -> None:
    config = parse_args(["--max-udp-size", "4096", "--rrl-responses-per-second", "20",
                         "--rrl-slip", "0", "--max-tcp-connections", "10",
                         "--max-tcp-connections-per-client", "3",
                         "--tcp-idle-timeout", "500ms"])
    assert (config.max_udp_size, config.rrl_responses_per_second, config.rrl_slip) == \
        (4096, 20, 0)
    assert (config.max_tcp_connections, config.max_tcp_connections_per_client,
            config.tcp_idle_timeout) == (10, 3, 0.5)


def test_everything() -> None:
    config = parse_args([
        "--server", "https://127.0.0.1:6443", "--kubeconfig", "/etc/dnsd.kubeconfig",
        "--listen", "127.0.0.1:53",
        "--listen", "[::1]:53", "--listen", "netns:mp-c1-fabric:10.250.0.2:53",
        "--listen", "0.0.0.0:5353", "--cluster-domain", "Cluster.Example.",
        "--ttl", "30", "--upstream", "1.1.1.1:53", "--upstream", "[2606:4700::1111]:53",
        "--upstream-timeout", "0.5", "--metrics-listen", "127.0.0.1:9153",
        "--pod-records=disabled", "--log-level", "debug"])
    assert config.kubeconfig == "/etc/dnsd.kubeconfig"
    assert config.listen == (Listen("127.0.0.1", 53), Listen("::1", 53),
                             Listen("10.250.0.2", 53, "mp-c1-fabric"), Listen("0.0.0.0", 5353))
    assert str(config.listen[2]) == "netns:mp-c1-fabric:10.250.0.2:53"
    assert str(config.listen[1]) == "[::1]:53"
    assert config.cluster_domain == "cluster.example"
    assert config.ttl == 30
    assert config.upstreams == (Server("1.1.1.1", 53), Server("2606:4700::1111", 53))
    assert config.upstream_timeout == 0.5
    assert config.metrics_listen == Listen("127.0.0.1", 9153)
    assert not config.pod_records
    assert config.local_ips == ("127.0.0.1", "::1", "10.250.0.2")


@pytest.mark.parametrize(("argv", "message"), [
    (["--listen", "localhost:53"], "not an IP address"),
    (["--listen", "127.0.0.1"], "is not HOST:PORT"),
    (["--listen", "127.0.0.1:99999"], "from 0 to 65535"),
    (["--listen", "::1:53"], "brackets"),
    (["--listen", "netns::127.0.0.1:53"], "netns:NAME:IP:PORT"),
    (["--listen", "netns:a/b:127.0.0.1:53"], "netns:NAME:IP:PORT"),
    (["--ttl", "-1"], "between 0 and 3600"),
    (["--ttl", "3601"], "between 0 and 3600"),
    (["--ttl", "five"], "not an integer"),
    (["--ttl", "9999"], "argument --ttl: must be between 0 and 3600, got 9999"),
    (["--cluster-domain", "bad_domain.local"], "not a valid domain"),
    (["--cluster-domain", ""], "not a valid domain"),
    (["--upstream", "8.8.8.8"], "is not HOST:PORT"),
    (["--upstream", "127.0.0.1:5353"], "queries would loop"),
    (["--listen", "0.0.0.0:53", "--upstream", "127.0.0.1:53"], "queries would loop"),
    (["--upstream-timeout", "0"], "more than 0"),
    (["--upstream-timeout", "61"], "at most 60"),
    (["--pod-records", "maybe"], "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--max-udp-size", "511"], "argument --max-udp-size: must be between 512 and 4096"),
    (["--max-udp-size", "65535"], "must be between 512 and 4096, got 65535"),
    (["--rrl-responses-per-second", "-1"], "argument --rrl-responses-per-second: must be"),
    (["--rrl-slip", "11"], "argument --rrl-slip: must be between 0 and 10"),
    (["--max-tcp-connections", "0"], "argument --max-tcp-connections: must be between"),
    (["--max-tcp-connections-per-client", "0"], "must be between 1 and 100000"),
    (["--tcp-idle-timeout", "0"], "argument --tcp-idle-timeout: must be more than 0"),
])
def test_rejected(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, parse_args, argv, prog="mp-dnsd")


def test_upstream_timeout_takes_a_go_duration() -> None:
    assert parse_args(["--upstream-timeout", "500ms"]).upstream_timeout == 0.5


def test_main_exits_2_with_argparse_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert flag_error(capsys, main, ["--ttl", "9999"], prog="mp-dnsd") == \
        "mp-dnsd: error: argument --ttl: must be between 0 and 3600, got 9999"


def test_metrics_without_a_host_stay_on_loopback() -> None:
    assert parse_args(["--metrics-listen", ":9153"]).metrics_listen == Listen("127.0.0.1", 9153)


# -- the host's upstreams (issue 18) and the cache of their answers ---------------------

RESOLV_CONF = """\
# written by the host
search example.internal
nameserver 192.0.2.53   # the site's resolver
; a comment
nameserver 127.0.0.1
nameserver fe80::1%eth0
nameserver 192.0.2.53
nameserver not-an-address
options ndots:1
"""


def test_resolv_conf_servers_in_order_without_this_server_or_duplicates() -> None:
    found = resolvconf.upstreams(RESOLV_CONF, [Listen("127.0.0.1", 53)])
    assert found.servers == (Server("192.0.2.53", 53), Server("fe80::1%eth0", 53))
    assert found.skipped == ("not-an-address: not an IP address",
                             "127.0.0.1: this server's own --listen 127.0.0.1:53 (a loop)")
    # listening elsewhere (another port, or inside a namespace), 127.0.0.1:53 is another
    for listen in (Listen("127.0.0.1", 5353), Listen("127.0.0.1", 53, "mp-c1-fabric")):
        assert Server("127.0.0.1", 53) in resolvconf.upstreams(RESOLV_CONF, [listen]).servers
    # a wildcard listener is not taken for a loopback stub's address (Docker's 127.0.0.11
    # is DNATed elsewhere); only an explicit --upstream is refused for it
    docker = resolvconf.upstreams("nameserver 127.0.0.11\n", [Listen("0.0.0.0", 53)])
    assert docker.servers == (Server("127.0.0.11", 53),)


def test_upstream_resolv_conf_flag(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(RESOLV_CONF)
    config = parse_args(["--listen", "127.0.0.1:53", "--upstream-resolv-conf", str(path)])
    assert config.upstreams == (Server("192.0.2.53", 53), Server("fe80::1%eth0", 53))
    assert config.upstream_resolv_conf == str(path)
    assert len(config.upstream_skipped) == 2


def test_cache_flags() -> None:
    assert parse_args([]).forward_cache == cache.Limits(10_000, 3600, 1800, 5)
    config = parse_args(["--cache-size", "0", "--cache-success-ttl", "30",
                         "--cache-denial-ttl", "5", "--cache-servfail-ttl", "1"])
    assert config.forward_cache == cache.Limits(0, 30, 5, 1)


@pytest.mark.parametrize(("text", "message"), [
    ("search example.com\n", "no usable nameserver (no nameserver line)"),
    ("nameserver 127.0.0.1\nnameserver bogus\n",
     "no usable nameserver (bogus: not an IP address; "
     "127.0.0.1: this server's own --listen 127.0.0.1:53 (a loop))"),
])
def test_resolv_conf_without_a_usable_nameserver(text: str, message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    err = flag_error(capsys, parse_args, ["--listen", "127.0.0.1:53",
                                          "--upstream-resolv-conf", str(path)], prog="mp-dnsd")
    assert err == f"mp-dnsd: error: --upstream-resolv-conf {path}: {message}"


@pytest.mark.parametrize(("argv", "message"), [
    (["--upstream-resolv-conf", "/nonexistent/resolv.conf"],
     "--upstream-resolv-conf /nonexistent/resolv.conf: No such file or directory"),
    (["--upstream", "192.0.2.1:53", "--upstream-resolv-conf", "/etc/resolv.conf"],
     "give one or the other"),
    (["--cache-size", "-1"], "argument --cache-size: must be between 0 and 1000000"),
    (["--cache-servfail-ttl", "301"], "argument --cache-servfail-ttl: must be between 0"),
])
def test_forwarding_flags_rejected(argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, parse_args, argv, prog="mp-dnsd")
