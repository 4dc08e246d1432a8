"""Run a function inside a named network namespace, on a short-lived thread.

The network namespace is per thread: a fresh thread ``setns``-es into
``/run/netns/<name>``, runs the function (typically creating, binding or
connecting a socket) and ends. A socket made there stays in that namespace for its
whole life and is usable from any thread or event loop, so dnsd can listen on a
cluster fabric and a node agent can probe pods without a process per probe.
Python 3.12 has ``os.setns``; on 3.11 it is called through ctypes. Needs root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
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


def run_in_netns(name: str | None, fn: Callable[[], T]) -> T:
    """``fn()`` on a fresh thread that joined namespace ``name`` (here, when None).

    Raises what ``fn`` raised, or ``OSError`` if the namespace can't be entered.
    The thread ends with the call, so nothing else ever runs in that namespace.
    """
    if name is None:
        return fn()
    path = netns_path(name)
    # what the thread's call returned or raised (one item, in one of the two)
    values: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            values.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=work, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return values[0]
