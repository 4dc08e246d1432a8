"""componentbase.flags: the value types every command's flags share, good and bad."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pytest

from apiserver.main import build_parser as apiserver_parser
from apiserver.main import config_from_args
from apiserver.main import parse_args as apiserver_parse_args
from componentbase import flags
from componentbase.flags import HostPort
from tests.flagcheck import flag_error

GOOD: list[tuple[Callable[[str], Any], str, Any]] = [
    (flags.host_port(), "127.0.0.1:80", HostPort("127.0.0.1", 80)),
    (flags.host_port(), "[::1]:9000", HostPort("::1", 9000)),
    (flags.host_port(), "localhost:0", HostPort("localhost", 0)),
    (flags.host_port(default_host="127.0.0.1"), ":6443", HostPort("127.0.0.1", 6443)),
    (flags.host_port(ip_only=True), "[fd00:0::1]:53", HostPort("fd00::1", 53)),
    (flags.duration(), "40", 40.0),
    (flags.duration(), "0.5", 0.5),
    (flags.duration(), "500ms", 0.5),
    (flags.duration(), "1m30s", 90.0),
    (flags.duration(), "2h", 7200.0),
    (flags.duration(), "1.5s", 1.5),
    (flags.duration(), "250us", 0.00025),
    (flags.duration(positive=False), "0s", 0.0),
    (flags.duration(maximum=60), "60", 60.0),
    (flags.integer(0, 3600), "0", 0),
    (flags.integer(0, 3600), "3600", 3600),
    (flags.integer(1), "10000000", 10_000_000),
    (flags.cidr(), "10.96.0.0/16", "10.96.0.0/16"),
    (flags.cidr(), "fd00::/108", "fd00::/108"),
    (flags.cidr(ipv4_only=True, allow_empty=True), "", ""),
    (flags.port_range(), "30000-32767", "30000-32767"),
    (flags.port_range(), "30000+100", "30000+100"),
    (flags.boolean(), "true", True),
    (flags.boolean(), "T", True),
    (flags.boolean(), "1", True),
    (flags.boolean(), "False", False),
    (flags.boolean(), "0", False),
]

BAD: list[tuple[Callable[[str], Any], str, str]] = [
    (flags.host_port(), "9000", "'9000' is not HOST:PORT"),
    (flags.host_port(), ":9000", "the host is missing"),
    (flags.host_port(), "::1:9000", "put an IPv6 address in brackets"),
    (flags.host_port(), "a:65536", "from 0 to 65535"),
    (flags.host_port(), "a:http", "from 0 to 65535"),
    (flags.host_port(min_port=1), "a:0", "from 1 to 65535"),
    (flags.host_port(ip_only=True), "localhost:53", "'localhost' is not an IP address"),
    (flags.duration(), "0", "must be more than 0 seconds"),
    (flags.duration(), "-1s", "is not a duration"),
    (flags.duration(), "-1", "must be more than 0 seconds"),
    (flags.duration(), "soon", "is not a duration"),
    (flags.duration(), "1x", "is not a duration"),
    (flags.duration(), "1s2", "is not a duration"),
    (flags.duration(), "", "is not a duration"),
    (flags.duration(), "nan", "is not a duration"),
    (flags.duration(), "inf", "is not a duration"),
    (flags.duration(maximum=60), "2m", "must be at most 60 seconds"),
    (flags.duration(positive=False, minimum=1), "0.5", "must be at least 1 seconds"),
    (flags.integer(0, 3600), "3601", "must be between 0 and 3600, got 3601"),
    (flags.integer(0, 3600), "1.5", "'1.5' is not an integer"),
    (flags.integer(1), "0", "must be at least 1, got 0"),
    (flags.integer(high=5), "6", "must be at most 5, got 6"),
    (flags.cidr(), "10.96.0.1/16", "host bits are set (did you mean 10.96.0.0/16?)"),
    (flags.cidr(), "10.96.0.0", "missing prefix length"),
    (flags.cidr(), "", "expected an address/prefix"),
    (flags.cidr(ipv4_only=True), "fd00::/64", "expected an IPv4 CIDR"),
    (flags.cidr(), "fd00:0::/64", "not in canonical form (fd00::/64)"),
    (flags.port_range(), "40000-30000", "end port is less than start port"),
    (flags.port_range(), "0-10", "between 1 and 65535"),
    (flags.port_range(), "a-b", "expected A-B"),
    (flags.boolean(), "yes", "'yes' is not a boolean (true or false)"),
    (flags.boolean(), "", "is not a boolean"),
]


@pytest.mark.parametrize(("convert", "text", "value"), GOOD)
def test_good_values(convert: Callable[[str], Any], text: str, value: Any) -> None:
    assert convert(text) == value


@pytest.mark.parametrize(("convert", "text", "message"), BAD)
def test_bad_values_raise_argparse_errors(convert: Callable[[str], Any], text: str,
                                          message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        convert(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_host_port_prints_brackets_for_ipv6() -> None:
    assert str(HostPort("::1", 53)) == "[::1]:53" and str(HostPort("a", 1)) == "a:1"


def test_parser_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    p = flags.Parser(prog="mp-x")
    p.add_argument("--ttl", type=flags.integer(0, 3600))
    assert flag_error(capsys, p.parse_args, ["--ttl", "9999"], prog="mp-x") == \
        "mp-x: error: argument --ttl: must be between 0 and 3600, got 9999"
    assert "unrecognized arguments: --bogus" in flag_error(
        capsys, p.parse_args, ["--bogus"], prog="mp-x")


@pytest.mark.parametrize(("argv", "message"), [
    (["--listen", "127.0.0.1:0"], "argument --listen: '127.0.0.1:0': the port must be"),
    (["--listen", "localhost:6443"], "argument --listen: 'localhost:6443': 'localhost' is not "
                                     "an IP address"),
    (["--listen", "netns::1.2.3.4:1"], "argument --listen: 'netns::1.2.3.4:1': expected "
                                       "netns:NAME:IP:PORT"),
    (["--advertise-address", "apiserver"], "argument --advertise-address:"),
    (["--tls-san", "not a name"], "argument --tls-san: 'not a name' is neither"),
    (["--compaction-interval", "0"], "argument --compaction-interval: must be more than 0"),
    (["--watch-buffer", "x"], "argument --watch-buffer: 'x' is not an integer"),
    (["--service-cluster-ip-range", "10.96.0.0/31"], "argument --service-cluster-ip-range:"),
    (["--max-requests-inflight", "-1"], "argument --max-requests-inflight: must be at least 0"),
    (["--max-mutating-requests-inflight", "x"], "argument --max-mutating-requests-inflight: "
                                                "'x' is not an integer"),
    (["--request-timeout", "0"], "argument --request-timeout: must be more than 0"),
    (["--read-header-timeout", "soon"], "argument --read-header-timeout: 'soon' is not a"),
    (["--max-connections", "0"], "argument --max-connections: must be at least 1, got 0"),
    (["--endpoint-lease-duration", "500ms"], "argument --endpoint-lease-duration: must be at "
                                             "least 1 seconds"),
    (["--endpoint-reconcile-interval", "15s"], "argument --endpoint-reconcile-interval: must "
                                               "be less than --endpoint-lease-duration"),
    (["--endpoint-lease-duration", "3s", "--endpoint-reconcile-interval", "3s"],
     "argument --endpoint-reconcile-interval: must be less than --endpoint-lease-duration"),
])
def test_apiserver_flags(argv: list[str], message: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, apiserver_parse_args, argv, prog="mp-apiserver")


def test_apiserver_defaults_and_durations() -> None:
    args = apiserver_parser().parse_args(["--compaction-interval", "2s"])
    assert args.listen is None and args.compaction_interval == 2.0  # main: 127.0.0.1:6443
    args = apiserver_parser().parse_args(["--listen", ":6443", "--listen",
                                          "netns:mp-c1-fabric:10.250.0.1:6443"])
    assert [str(li) for li in args.listen] == ["127.0.0.1:6443",
                                               "netns:mp-c1-fabric:10.250.0.1:6443"]


def test_apiserver_serving_limits_default_as_kube_apiserver() -> None:
    args = apiserver_parser().parse_args(["--storage-url", "sqlite:///:memory:"])
    assert (args.read_header_timeout, args.idle_timeout, args.max_connections) == \
        (32.0, 90.0, None)
    config = config_from_args(args)
    assert (config.max_requests_inflight, config.max_mutating_requests_inflight,
            config.request_timeout) == (400, 200, 60.0)
    args = apiserver_parser().parse_args(["--storage-url", "sqlite:///:memory:",
                                          "--request-timeout", "1m30s",
                                          "--max-requests-inflight", "0"])
    config = config_from_args(args)
    assert (config.request_timeout, config.max_requests_inflight) == (90.0, 0)
