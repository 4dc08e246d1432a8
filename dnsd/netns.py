"""Sockets inside named network namespaces (``ip netns add NAME`` → ``/run/netns/NAME``).

The network namespace is a property of a *thread*, and a socket belongs for life
to the namespace it was created in. So a short-lived thread enters the namespace
(``setns``), creates and binds the socket, and exits; the socket then works
from any thread or event loop, and the process's other threads never leave the
root namespace. That is how dnsd listens on the cluster fabric for pods.

Python 3.12 has ``os.setns``; on 3.11 it is called through ctypes. Needs
CAP_SYS_ADMIN (root). This module is the only place dnsd enters a namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000  # <sched.h>: the namespace type setns is asked to join
NETNS_DIR = "/run/netns"


def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def _setns(fd: int) -> None:
    native = getattr(os, "setns", None)
    if native is not None:  # Python 3.12+
        native(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def run_in_netns(name: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` on a fresh thread that has joined namespace ``name``; return its result.

    Raises what ``fn`` raised, or ``OSError`` if the namespace can't be entered.
    The thread ends with the call, so its namespace dies with it.
    """
    path = netns_path(name)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def bound_socket(host: str, port: int, kind: int, *, netns: str = "") -> socket.socket:
    """A socket of ``kind`` (SOCK_DGRAM or SOCK_STREAM) bound to ``host:port``, created
    inside ``netns`` when one is named. TCP sockets are left listening."""

    def make() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                # Restarts must not wait out TIME_WAIT; UDP gets no such option, so a
                # second dnsd on the same port fails loudly instead of sharing it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return run_in_netns(netns, make) if netns else make()
