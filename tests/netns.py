"""Test helpers for network namespaces: build them, talk from inside them, tear them down.

Safety rules these helpers keep (DESIGN.md, "Networking of a local cluster"):

- every namespace is ``mp-<run>-<role>``, ``<run>`` random per test run, and is
  deleted by ``Lab.close`` (fixtures call it in a finalizer, so also on failure);
- nothing is added to the root namespace: veth pairs are created *inside* a test
  namespace with their peer placed directly in another one;
- no namespace gets a route out of the machine;
- every connection to a cluster address starts inside a test namespace: a short
  thread ``setns``-es into it and opens the socket there (``run_in_netns``);
- processes started in namespaces are stopped by pid.

Run as a script, this file is the tiny TCP+UDP server the endpoint namespaces
run: ``python tests/netns.py serve NAME --tcp PORT --udp PORT``. TCP: greets with
``NAME PEER_IP`` then echoes lines; UDP: answers each datagram with ``NAME PEER_IP``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from componentbase import netns

T = TypeVar("T")


def have_root_tools() -> str | None:
    """Why root network tests can't run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    for tool in ("ip", "iptables-nft-restore", "conntrack"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":")
                   + ["/usr/sbin", "/sbin"]):
            return f"`{tool}` is not installed (make debs)"
    return None


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """``componentbase.netns.run_in_netns``, refusing any namespace but a test's own ``mp-…``."""
    if not name.startswith("mp-") or "/" in name:
        raise ValueError(f"refusing to enter {name!r}: tests only use mp-… namespaces")
    return netns.run_in_netns(name, fn)


def socket_in(name: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """An unconnected IPv4 socket that lives in namespace ``name``."""
    return run_in_netns(name, lambda: socket.socket(socket.AF_INET, kind))


def tcp_hello(name: str, ip: str, port: int, *, timeout: float = 2.0) -> str:
    """Connect from namespace ``name`` and return the server's greeting line."""
    sock = socket_in(name)
    with sock:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        return sock.makefile("r").readline().strip()


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=60)


class Lab:
    """Namespaces and processes of one test run; ``close`` removes all of them."""

    def __init__(self, prefix: str | None = None) -> None:
        self.run = prefix or f"mp-t{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def ns(self, role: str) -> str:
        """Create ``mp-<run>-<role>`` with its loopback up."""
        name = f"{self.run}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def exec(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *cmd, check=check)

    def veth(self, left: str, left_if: str, right: str, right_if: str) -> None:
        """A veth pair created inside ``left`` with its peer put straight into ``right``."""
        sh("ip", "-n", left, "link", "add", left_if, "type", "veth", "peer", "name", right_if,
           "netns", right)
        sh("ip", "-n", left, "link", "set", left_if, "up")
        sh("ip", "-n", right, "link", "set", right_if, "up")

    def start(self, ns: str, *cmd: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - lives with proc
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        for name in reversed(self.namespaces):
            sh("ip", "netns", "delete", name, check=False)
        self.namespaces.clear()

    def leftovers(self) -> list[str]:
        """Namespaces of this run still present (should be none after ``close``)."""
        listing = sh("ip", "netns", "list").stdout
        return [line.split()[0] for line in listing.splitlines()
                if line.startswith(self.run + "-")]


def sweep(prefix: str) -> list[str]:
    """Kill every process in, and delete, each namespace named ``<prefix>…``.

    The fallback of tests whose agents create namespaces themselves (pods): whatever
    an agent left behind goes, with its ``/etc/netns/<ns>`` directory. Returns the
    namespaces it removed.
    """
    if not prefix.startswith("mp-"):
        raise ValueError(f"refusing to sweep {prefix!r}: tests only use mp-… namespaces")
    removed = []
    for line in sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(prefix):
            continue
        for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "delete", name, check=False)
        removed.append(name)
    for d in Path("/etc/netns").glob(prefix + "*") if Path("/etc/netns").is_dir() else []:
        with contextlib.suppress(OSError):
            for f in d.iterdir():
                f.unlink()
            d.rmdir()
    return removed


def wait_port(ns: str, ip: str, port: int, timeout: float = 10.0) -> None:
    """Wait until a TCP server answers on ``ip:port`` inside ``ns``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            tcp_hello(ns, ip, port, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- the endpoint server ---------------------------------------------------------------------


def serve(name: str, tcp_port: int, udp_port: int) -> None:
    """Greet-and-echo over TCP, name-and-peer over UDP, until SIGTERM."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(f"{name} {self.client_address[0]}\n".encode())
            for line in self.rfile:
                self.wfile.write(line)

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    tcp = Server(("0.0.0.0", tcp_port), Handler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", udp_port))

    def answer() -> None:
        while True:
            _, peer = udp.recvfrom(2048)
            udp.sendto(f"{name} {peer[0]}".encode(), peer)

    threading.Thread(target=answer, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    tcp.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("name")
    s.add_argument("--tcp", type=int, required=True)
    s.add_argument("--udp", type=int, required=True)
    args = parser.parse_args()
    serve(args.name, args.tcp, args.udp)
    sys.exit(0)
