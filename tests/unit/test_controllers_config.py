"""mp-controllers flags: defaults, every rejection, the controller list."""

from __future__ import annotations

import pytest

from componentbase.flags import HostPort
from controllers.config import CONTROLLERS, LeaderElection, parse_args, parse_controllers
from controllers.main import main
from tests.flagcheck import flag_error


def test_defaults_match_the_command_line_contract():
    config = parse_args([])
    assert config.server is None
    assert config.cluster_cidr == "10.244.0.0/16"
    assert config.node_cidr_mask_size == 24
    assert config.node_monitor_grace_period == 40.0
    assert config.metrics_listen is None
    assert config.max_endpoints_per_slice == 100
    assert config.controllers == frozenset(CONTROLLERS)


def test_every_flag_is_read():
    config = parse_args(["--server", "http://a:1", "--cluster-cidr", "10.0.0.0/8",
                         "--node-cidr-mask-size", "16", "--node-monitor-grace-period", "2.5",
                         "--metrics-listen", "[::1]:9000", "--max-endpoints-per-slice", "1000",
                         "--concurrent-endpointslice-syncs", "2", "--controllers",
                         "*,-scheduler", "--log-level", "debug"])
    assert config.server == "http://a:1"
    assert (config.cluster_cidr, config.node_cidr_mask_size) == ("10.0.0.0/8", 16)
    assert config.node_monitor_grace_period == 2.5
    assert config.metrics_listen == HostPort("::1", 9000)
    assert str(config.metrics_listen) == "[::1]:9000"
    assert config.max_endpoints_per_slice == 1000
    assert config.endpointslice_workers == 2
    assert "scheduler" not in config.controllers and "endpointslice" in config.controllers
    assert config.log_level == "debug"


@pytest.mark.parametrize(("argv", "needle"), [
    (["--max-endpoints-per-slice", "0"],
     "argument --max-endpoints-per-slice: must be between 1 and 1000, got 0"),
    (["--max-endpoints-per-slice", "1001"], "between 1 and 1000"),
    (["--max-endpoints-per-slice", "ten"], "'ten' is not an integer"),
    (["--node-monitor-grace-period", "0"], "must be more than 0 seconds"),
    (["--node-monitor-grace-period", "-1"], "must be more than 0 seconds"),
    (["--node-monitor-grace-period", "nan"], "is not a duration"),
    (["--node-monitor-grace-period", "soon"], "is not a duration"),
    (["--cluster-cidr", "10.244.0.0/33"], "--cluster-cidr"),
    (["--cluster-cidr", "10.244.1.0/16"], "host bits"),
    (["--cluster-cidr", "10.244.0.0/16", "--node-cidr-mask-size", "8"], "mask"),
    (["--metrics-listen", "9000"], "HOST:PORT"),
    (["--metrics-listen", "localhost:http"], "port must be a number"),
    (["--controllers", "endpointslice,dns"], "argument --controllers: unknown controller 'dns'"),
    (["--log-level", "loud"], "invalid choice"),
    (["--lb-pool", "10.0.0.9-10.0.0.1"], "argument --lb-pool: '10.0.0.9-10.0.0.1': the range"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_flags_are_one_line_errors(argv, needle, capsys):
    assert needle in flag_error(capsys, parse_args, argv, prog="mp-controllers")


def test_bad_flag_exits_2_with_one_line_on_stderr(capsys):
    assert flag_error(capsys, main, ["--max-endpoints-per-slice", "0"], prog="mp-controllers") \
        == "mp-controllers: error: argument --max-endpoints-per-slice: must be between 1 and " \
           "1000, got 0"


def test_grace_period_takes_a_go_duration_too():
    assert parse_args(["--node-monitor-grace-period", "1m30s"]).node_monitor_grace_period == 90


@pytest.mark.parametrize(("text", "chosen"), [
    ("*", set(CONTROLLERS)),
    ("endpointslice", {"endpointslice"}),
    ("endpointslice, scheduler", {"endpointslice", "scheduler"}),
    ("*,-podgc,-nodeipam", set(CONTROLLERS) - {"podgc", "nodeipam"}),
    ("", set()),
])
def test_controller_lists(text, chosen):
    assert parse_controllers(text) == chosen


def test_metrics_without_a_host_stay_on_loopback() -> None:
    assert parse_args(["--metrics-listen", ":10257"]).metrics_listen == ("127.0.0.1", 10257)


# ---------------------------------------------------------------------------- leader election


def test_leader_election_is_on_by_default_with_kube_controller_managers_settings():
    assert parse_args([]).leader_election == LeaderElection(
        15.0, 10.0, 2.0, "kube-controller-manager", "kube-system")


@pytest.mark.parametrize("argv", [["--leader-elect=false"], ["--leader-elect", "false"],
                                  ["--leader-elect=0"], ["--leader-elect=False"]])
def test_leader_election_off(argv):
    assert parse_args(argv).leader_election is None


def test_leader_election_flags_are_read():
    config = parse_args(["--leader-elect", "--leader-elect-lease-duration", "30s",
                         "--leader-elect-renew-deadline", "20", "--leader-elect-retry-period",
                         "500ms", "--leader-elect-resource-name", "mp-ctl",
                         "--leader-elect-resource-namespace", "ops"])
    assert config.leader_election == LeaderElection(30.0, 20.0, 0.5, "mp-ctl", "ops")


@pytest.mark.parametrize(("argv", "needle"), [
    (["--leader-elect-renew-deadline", "15s"],
     "--leader-elect-lease-duration (15s) must be greater than --leader-elect-renew-deadline "
     "(15s)"),
    (["--leader-elect-lease-duration", "5s"],
     "--leader-elect-lease-duration (5s) must be greater than --leader-elect-renew-deadline"),
    (["--leader-elect-retry-period", "9s"],
     "--leader-elect-renew-deadline (10s) must be greater than 1.2 × "
     "--leader-elect-retry-period (9s)"),
    (["--leader-elect-lease-duration", "15.5s"],
     "--leader-elect-lease-duration must be a whole number of seconds"),
    (["--leader-elect-retry-period", "0"], "must be more than 0 seconds"),
    (["--leader-elect=maybe"], "argument --leader-elect: 'maybe' is not a boolean"),
    (["--leader-elect-resource-name", "Kube_CM"], "argument --leader-elect-resource-name: "
                                                  "'Kube_CM': a lowercase RFC 1123 subdomain"),
    (["--leader-elect-resource-namespace", "a.b"],
     "argument --leader-elect-resource-namespace: 'a.b'"),
])
def test_bad_leader_election_flags_are_one_line_errors(argv, needle, capsys):
    assert needle in flag_error(capsys, parse_args, argv, prog="mp-controllers")


def test_timing_is_not_checked_when_election_is_off():
    config = parse_args(["--leader-elect=false", "--leader-elect-renew-deadline", "60s"])
    assert config.leader_election is None


def test_lb_pool_is_off_unless_given() -> None:
    assert parse_args([]).lb_pool is None
    assert str(parse_args(["--lb-pool", "10.250.0.200/30"]).lb_pool) == \
        "10.250.0.200-10.250.0.203"
