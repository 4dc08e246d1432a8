"""``mp-controllers`` flags → a validated ``Config``; every rejection is unit-tested.

The command-line contract (DESIGN.md): ``--server URL``, ``--cluster-cidr CIDR``
(10.244.0.0/16), ``--node-monitor-grace-period SECONDS`` (40),
``--metrics-listen HOST:PORT``; issue 3 adds ``--max-endpoints-per-slice`` (100).
Extras, named as kube-controller-manager names them: ``--node-cidr-mask-size``
(24), ``--concurrent-endpointslice-syncs`` (5), ``--controllers`` (``*``, or a
list such as ``*,-scheduler``), ``--kubeconfig``, ``--log-level``; ``--lb-pool``
(issue 18: the service-lb controller's addresses, off when unset).

Leader election, as kube-controller-manager's flags: ``--leader-elect`` (on by
default, as there: a second process is a standby, not a second actor; ``=false``
for a process that is sure to be alone), ``--leader-elect-lease-duration`` (15s),
``--leader-elect-renew-deadline`` (10s), ``--leader-elect-retry-period`` (2s),
``--leader-elect-resource-name`` (kube-controller-manager) and
``--leader-elect-resource-namespace`` (kube-system). The three durations must
elect safely (``client.leaderelection.timing_problem``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from apimachinery import names
from client.config import SERVER_HELP
from client.leaderelection import timing_problem
from componentbase import flags
from componentbase.addresspool import Pool, PoolError, parse_pool
from componentbase.flags import HostPort
from controllers.ipam import CidrError, CidrSet
from controllers.slices import DEFAULT_MAX_ENDPOINTS, MAX_ENDPOINTS_LIMIT

CONTROLLERS = ("endpointslice", "endpoint", "scheduler", "nodeipam", "nodelifecycle", "podgc",
               "serviceaccount", "clusterrole-aggregation", "garbagecollector", "replicaset",
               "deployment", "service-lb")


@dataclass(frozen=True)
class Config:
    server: str | None
    kubeconfig: str | None
    cluster_cidr: str
    node_cidr_mask_size: int
    node_monitor_grace_period: float
    metrics_listen: HostPort | None
    max_endpoints_per_slice: int
    endpointslice_workers: int
    controllers: frozenset[str]
    log_level: str
    leader_election: LeaderElection | None = None  # None: --leader-elect=false
    lb_pool: Pool | None = None  # --lb-pool; None: no LoadBalancer addresses handed out


@dataclass(frozen=True)
class LeaderElection:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resource_name: str = "kube-controller-manager"
    resource_namespace: str = "kube-system"


def build_parser() -> argparse.ArgumentParser:
    p = flags.Parser(prog="mp-controllers",
                     description="miniplane controllers: EndpointSlices, Endpoints, scheduler, "
                                 "node IPAM, node lifecycle, pod GC, garbage collector, "
                                 "ReplicaSets, Deployments")
    p.add_argument("--server", default=None, help=SERVER_HELP)
    p.add_argument("--kubeconfig", default=None, help="kubeconfig for credentials and server")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="CIDR node pod CIDRs are cut from")
    p.add_argument("--node-cidr-mask-size", default=24, type=flags.integer(1, 128),
                   help="prefix length of a node's CIDR")
    p.add_argument("--node-monitor-grace-period", default=40.0, type=flags.duration(),
                   metavar="DURATION",
                   help="seconds (or a duration, 40s) without a heartbeat before a node "
                        "is Ready=Unknown")
    p.add_argument("--metrics-listen", default=None, metavar="[HOST]:PORT",
                   type=flags.host_port(default_host="127.0.0.1"),
                   help="serve /metrics, /healthz and /readyz here (default: off); "
                        "':PORT' is loopback, and /metrics answers loopback callers only")
    p.add_argument("--max-endpoints-per-slice", default=DEFAULT_MAX_ENDPOINTS,
                   type=flags.integer(1, MAX_ENDPOINTS_LIMIT),
                   help=f"endpoints per EndpointSlice, 1-{MAX_ENDPOINTS_LIMIT}")
    p.add_argument("--concurrent-endpointslice-syncs", default=5, type=flags.integer(1, 100),
                   help="Services whose slices are synced at once")
    p.add_argument("--controllers", default="*", type=parse_controllers,
                   help=f"which to run: '*' or a list of {', '.join(CONTROLLERS)}; "
                        "'-name' turns one off")
    p.add_argument("--lb-pool", default="", metavar="RANGES",
                   help="addresses for LoadBalancer Services, as A-B ranges or CIDRs, comma "
                        "separated (the service-lb controller; default: none, Services stay "
                        "<pending>)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    le = LeaderElection()
    p.add_argument("--leader-elect", nargs="?", const=True, default=True, type=flags.boolean(),
                   metavar="BOOL",
                   help="run the controllers only while holding the leader Lease, so that "
                        "more processes are standbys (default: true)")
    p.add_argument("--leader-elect-lease-duration", default=le.lease_duration,
                   type=flags.duration(), metavar="DURATION",
                   help="how long a standby waits after the leader's last renewal it saw "
                        "before taking over (whole seconds)")
    p.add_argument("--leader-elect-renew-deadline", default=le.renew_deadline,
                   type=flags.duration(), metavar="DURATION",
                   help="how long the leader retries renewing before it stops its controllers "
                        "(and rejoins the election as a standby)")
    p.add_argument("--leader-elect-retry-period", default=le.retry_period,
                   type=flags.duration(), metavar="DURATION",
                   help="pause between attempts to acquire or renew")
    p.add_argument("--leader-elect-resource-name", default=le.resource_name,
                   help="name of the Lease (the bootstrap RBAC lets "
                        "system:kube-controller-manager update only kube-controller-manager)")
    p.add_argument("--leader-elect-resource-namespace", default=le.resource_namespace,
                   help="namespace of the Lease")
    return p


def leader_election(args: argparse.Namespace, parser: argparse.ArgumentParser
                    ) -> LeaderElection | None:
    """The election settings, or None when off; a combination that cannot elect
    safely is one line and exit 2."""
    if not args.leader_elect:
        return None
    problem = timing_problem(
        args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
        names=("--leader-elect-lease-duration", "--leader-elect-renew-deadline",
               "--leader-elect-retry-period"))
    if problem:
        parser.error(problem)
    for flag, value, rule in (
            ("--leader-elect-resource-name", args.leader_elect_resource_name,
             names.is_dns1123_subdomain),
            ("--leader-elect-resource-namespace", args.leader_elect_resource_namespace,
             names.is_dns1123_label)):
        wrong = rule(value)
        if wrong:
            parser.error(f"argument {flag}: {value!r}: {wrong[0]}")
    return LeaderElection(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                          args.leader_elect_retry_period, args.leader_elect_resource_name,
                          args.leader_elect_resource_namespace)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse and validate; a bad flag exits 2 with argparse's one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        CidrSet(args.cluster_cidr, args.node_cidr_mask_size)
    except CidrError as exc:
        parser.error(f"argument --cluster-cidr/--node-cidr-mask-size: {exc}")
    pool = None
    if args.lb_pool.strip():
        try:
            pool = parse_pool(args.lb_pool)
        except PoolError as exc:
            parser.error(f"argument --lb-pool: {exc}")
    return Config(
        server=args.server or None,
        kubeconfig=args.kubeconfig or None,
        cluster_cidr=args.cluster_cidr,
        node_cidr_mask_size=args.node_cidr_mask_size,
        node_monitor_grace_period=args.node_monitor_grace_period,
        metrics_listen=args.metrics_listen,
        max_endpoints_per_slice=args.max_endpoints_per_slice,
        endpointslice_workers=args.concurrent_endpointslice_syncs,
        controllers=args.controllers,
        log_level=args.log_level,
        leader_election=leader_election(args, parser),
        lb_pool=pool,
    )


def parse_controllers(text: str) -> frozenset[str]:
    """``*`` (all), names, and ``-name`` to remove one: ``*,-scheduler``."""
    chosen: set[str] = set()
    removed: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            chosen.update(CONTROLLERS)
            continue
        name = item.removeprefix("-")
        if name not in CONTROLLERS:
            raise argparse.ArgumentTypeError(f"unknown controller {name!r} "
                                             f"(known: {', '.join(CONTROLLERS)})")
        (removed if item.startswith("-") else chosen).add(name)
    return frozenset(chosen - removed)
