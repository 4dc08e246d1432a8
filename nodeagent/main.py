"""``mp-nodeagent``: not built yet (issues 5 and 6); the command and its flags are reserved."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mp-nodeagent", description="miniplane node agent")
    p.add_argument("--server", default=None, help="API server URL")
    p.add_argument("--node", default=None, help="node name")
    p.add_argument("--netns", default=None, help="network namespace to manage")
    p.add_argument("--cluster-dns", default="10.96.0.10")
    p.add_argument("--state-dir", default=None)
    p.add_argument("--metrics-listen", default=None, help="HOST:PORT")
    p.parse_args(argv)
    print("mp-nodeagent: error: the node agent is not implemented yet", file=sys.stderr)
    return 1
