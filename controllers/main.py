"""``mp-controllers``: not built yet (issue 3); the command and its flags are reserved."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mp-controllers",
                                description="miniplane controllers (endpointslices, scheduler, "
                                            "node IPAM, node lifecycle)")
    p.add_argument("--server", default=None, help="API server URL")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0)
    p.add_argument("--metrics-listen", default=None, help="HOST:PORT")
    p.parse_args(argv)
    print("mp-controllers: error: the controllers are not implemented yet", file=sys.stderr)
    return 1
