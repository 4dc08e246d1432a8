"""Zones in a local cluster: ``mpctl cluster up --zones`` and the agent's ``--node-labels``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpctl.cluster import plan
from nodeagent.main import parse_args
from tests.flagcheck import flag_error


def spec(nodes: int, zones: tuple[str, ...]) -> plan.ClusterSpec:
    ports = {"controllers": 1, "dnsd": 2, **{f"node-{i}": 10 + i for i in range(1, nodes + 1)}}
    return plan.ClusterSpec(name="z", nodes=nodes, state_dir=Path("/tmp/z"), api_port=6443,
                            dns_port=5353, metrics_ports=ports, zones=zones)


def node_labels(cluster: plan.ClusterSpec) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for cmd in plan.component_commands(cluster, Path("/venv/bin")):
        if cmd.name.startswith("node-"):
            argv = cmd.argv
            out[cmd.name] = argv[argv.index("--node-labels") + 1] \
                if "--node-labels" in argv else None
    return out


def test_nodes_are_spread_over_the_zones_round_robin() -> None:
    assert node_labels(spec(3, ("a", "b"))) == {
        "node-1": "topology.kubernetes.io/zone=a", "node-2": "topology.kubernetes.io/zone=b",
        "node-3": "topology.kubernetes.io/zone=a"}
    assert node_labels(spec(2, ())) == {"node-1": None, "node-2": None}


@pytest.mark.parametrize(("text", "zones"), [
    (None, ()), ("", ()), ("a", ("a",)), ("us-east-1a, us-east-1b", ("us-east-1a", "us-east-1b")),
])
def test_zones_flag(text: str | None, zones: tuple[str, ...]) -> None:
    assert plan.check_zones(text) == zones


@pytest.mark.parametrize(("text", "message"), [
    ("a,a", "named twice"), ("a b", "not a valid label value"), ("-a", "not a valid label value"),
])
def test_bad_zones_are_refused(text: str, message: str) -> None:
    with pytest.raises(plan.SpecError, match=message):
        plan.check_zones(text)


def test_agent_node_labels_flag(capsys: pytest.CaptureFixture[str]) -> None:
    opts = parse_args(["--node", "n1", "--netns", "mp-x-node-1", "--node-labels",
                       "topology.kubernetes.io/zone=a,example.com/rack=r1"])
    assert opts.node_cfg is not None
    assert opts.node_cfg.labels == (("example.com/rack", "r1"), ("topology.kubernetes.io/zone", "a"))
    err = flag_error(capsys, parse_args, ["--node", "n1", "--node-labels", "zone"],
                     prog="mp-nodeagent")
    assert "--node-labels" in err and "expected KEY=VALUE" in err
    err = flag_error(capsys, parse_args, ["--node", "n1", "--node-labels", "a/b/c=x"],
                     prog="mp-nodeagent")
    assert "'a/b/c=x'" in err
