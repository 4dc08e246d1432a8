"""``mp-dnsd``: not built yet (issue 4); the command and its flags are reserved."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mp-dnsd", description="miniplane cluster DNS")
    p.add_argument("--server", default=None, help="API server URL")
    p.add_argument("--listen", action="append", default=None, help="HOST:PORT (repeatable)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--ttl", type=int, default=5)
    p.add_argument("--upstream", action="append", default=None, help="HOST:PORT (repeatable)")
    p.add_argument("--metrics-listen", default=None, help="HOST:PORT")
    p.parse_args(argv)
    print("mp-dnsd: error: the DNS server is not implemented yet", file=sys.stderr)
    return 1
