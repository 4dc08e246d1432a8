"""``mp-controllers`` flags → a validated ``Config``; pure, so every rejection is unit-tested.

The command-line contract (DESIGN.md): ``--server URL``, ``--cluster-cidr CIDR``
(10.244.0.0/16), ``--node-monitor-grace-period SECONDS`` (40),
``--metrics-listen HOST:PORT``; issue 3 adds ``--max-endpoints-per-slice`` (100).
Extras, named as kube-controller-manager names them: ``--node-cidr-mask-size``
(24), ``--concurrent-endpointslice-syncs`` (5), ``--controllers`` (``*``, or a
list such as ``*,-scheduler``), ``--kubeconfig``, ``--log-level``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from controllers.ipam import CidrError, CidrSet
from controllers.slices import DEFAULT_MAX_ENDPOINTS, MAX_ENDPOINTS_LIMIT

CONTROLLERS = ("endpointslice", "scheduler", "nodeipam", "nodelifecycle", "podgc")


class UsageError(ValueError):
    """A flag is wrong; the message is one line, fit for stderr."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Config:
    server: str | None
    kubeconfig: str | None
    cluster_cidr: str
    node_cidr_mask_size: int
    node_monitor_grace_period: float
    metrics_listen: Listen | None
    max_endpoints_per_slice: int
    endpointslice_workers: int
    controllers: frozenset[str]
    log_level: str


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag raises ``UsageError`` instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mp-controllers",
                description="miniplane controllers: EndpointSlices, scheduler, node IPAM, "
                            "node lifecycle, pod GC")
    p.add_argument("--server", default=None,
                   help="API server URL (else MINIPLANE_SERVER, a kubeconfig, or "
                        "http://127.0.0.1:6443)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig for credentials and server")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="CIDR node pod CIDRs are cut from")
    p.add_argument("--node-cidr-mask-size", default="24", help="prefix length of a node's CIDR")
    p.add_argument("--node-monitor-grace-period", default="40",
                   help="seconds without a heartbeat before a node is Ready=Unknown")
    p.add_argument("--metrics-listen", default=None,
                   help="HOST:PORT serving /metrics, /healthz and /readyz (default: off)")
    p.add_argument("--max-endpoints-per-slice", default=str(DEFAULT_MAX_ENDPOINTS),
                   help=f"endpoints per EndpointSlice, 1-{MAX_ENDPOINTS_LIMIT}")
    p.add_argument("--concurrent-endpointslice-syncs", default="5",
                   help="Services whose slices are synced at once")
    p.add_argument("--controllers", default="*",
                   help=f"which to run: '*' or a list of {', '.join(CONTROLLERS)}; "
                        "'-name' turns one off")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """Parse and validate; raises ``UsageError`` with one line."""
    args = build_parser().parse_args(argv)
    mask = _integer(args.node_cidr_mask_size, "--node-cidr-mask-size", 1, 128)
    try:
        CidrSet(args.cluster_cidr, mask)
    except CidrError as exc:
        raise UsageError(f"--cluster-cidr/--node-cidr-mask-size: {exc}") from None
    grace = _number(args.node_monitor_grace_period, "--node-monitor-grace-period")
    return Config(
        server=args.server or None,
        kubeconfig=args.kubeconfig or None,
        cluster_cidr=args.cluster_cidr,
        node_cidr_mask_size=mask,
        node_monitor_grace_period=grace,
        metrics_listen=parse_listen(args.metrics_listen) if args.metrics_listen else None,
        max_endpoints_per_slice=_integer(args.max_endpoints_per_slice,
                                         "--max-endpoints-per-slice", 1, MAX_ENDPOINTS_LIMIT),
        endpointslice_workers=_integer(args.concurrent_endpointslice_syncs,
                                       "--concurrent-endpointslice-syncs", 1, 100),
        controllers=parse_controllers(args.controllers),
        log_level=args.log_level,
    )


def parse_listen(text: str) -> Listen:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--metrics-listen must be HOST:PORT, got {text!r}")
    return Listen(host, int(port))


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
            raise UsageError(f"--controllers: unknown controller {name!r} "
                             f"(known: {', '.join(CONTROLLERS)})")
        (removed if item.startswith("-") else chosen).add(name)
    return frozenset(chosen - removed)


def _integer(text: str, flag: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{flag} must be between {low} and {high}, got {value}")
    return value


def _number(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{flag} must be a positive number of seconds, got {text!r}")
    return value
