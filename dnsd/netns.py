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

import socket

from componentbase.netns import netns_path, run_in_netns  # noqa: F401 - re-exported


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
