"""A free loopback port for a component that will be started with it as a flag.

``mpctl cluster up`` and the test harnesses pick a port, let it go, and pass it to
a component that binds it moments later. Two things made that fail at random
("no free port on 127.0.0.1", issue 15), both fixed here:

- **Candidates came from the ephemeral range.** A port-0 bind draws from
  ``net.ipv4.ip_local_port_range``, the same numbers every outgoing connection
  takes its local port from. A test suite's short connections leave sockets in
  TIME_WAIT on many of them for 60 s, and on Linux a TIME_WAIT left by a client
  socket blocks a later bind of that number even with ``SO_REUSEADDR``; a new
  connection may also take the number between the probe and the component's
  bind. So candidates are drawn at random from *outside* that range (10000 up
  to it, and above it), where no connection is ever given a local port; only a
  range that leaves no room there falls back to the kernel's pick.
- **The probe was stricter than the listener.** TCP is probed with
  ``SO_REUSEADDR``, as every listener here binds (dnsd, the API server,
  controllers, node agents' metrics), so a TIME_WAIT left by an earlier
  listener's own connections (dnsd closes idle ones itself) no longer turns the
  preferred port down. UDP is probed without it, as dnsd binds it.

For a DNS port (``udp=True``) a candidate must bind for UDP and TCP alike; one
that fails either is skipped and the next tried: ``preferred`` first, then
``attempts`` random ones.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from collections.abc import Callable
from pathlib import Path

ATTEMPTS = 50  # one candidate collides rarely, fifty in a row never
LOWEST = 10000  # below this, well-known services' ports; never picked at random
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(preferred: int | None = None, *, udp: bool = False, host: str = "127.0.0.1",
              attempts: int = ATTEMPTS) -> int:
    """``preferred`` if free on ``host``, else a free port; with ``udp``, free for UDP
    and TCP alike (DNS serves both on one number). ``OSError`` if none is found."""
    kinds = [socket.SOCK_DGRAM, socket.SOCK_STREAM] if udp else [socket.SOCK_STREAM]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    pick = _outside_ephemeral()
    for candidate in ([preferred] if preferred else []) + [pick() for _ in range(attempts)]:
        port = candidate
        with contextlib.ExitStack() as held:
            try:
                for kind in kinds:
                    sock = held.enter_context(socket.socket(family, kind))
                    if kind == socket.SOCK_STREAM:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((host, port))
                    port = sock.getsockname()[1]
            except OSError:
                continue
            return port
    raise OSError(errno.EADDRINUSE, f"no free port on {host}")


def ephemeral_range() -> tuple[int, int]:
    """The ports outgoing connections get (this thread's network namespace)."""
    try:
        low, high = (int(n) for n in PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def _outside_ephemeral() -> Callable[[], int]:
    """A function returning a random candidate outside the ephemeral range, or 0 (the
    kernel's pick) when the range leaves fewer than 1,000 ports outside it."""
    low, high = ephemeral_range()
    below = range(LOWEST, low) if low > LOWEST else range(0)
    above = range(max(high + 1, LOWEST), 65536)
    ports = [r for r in (below, above) if len(r)]
    total = sum(len(r) for r in ports)
    if total < 1000:
        return lambda: 0

    def pick() -> int:
        n = random.randrange(total)
        for r in ports:
            if n < len(r):
                return r[n]
            n -= len(r)
        return 0  # unreachable

    return pick
