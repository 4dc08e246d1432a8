"""Processes by pid, safely: tell a reused pid apart, signal a group, wait for exit.

Shared by the node agent (container processes it adopts after a restart) and
``mpctl cluster`` (components it stops after a crash of ``cluster up``). Both
record a pid with its start time and signal it only while the two still match,
so a pid the kernel has since handed to an unrelated process is never touched.
"""

from __future__ import annotations

import contextlib
import os
import time


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in ticks); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def same_process(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is still the process that had start time ``start``."""
    return start is not None and proc_start_time(pid) == start


def kill_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` and ``pid`` itself; gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pid: int, start: str | None, timeout: float) -> bool:
    """Poll until ``pid`` (with that start time) has exited; True if it did in time.

    Reaps it when it is our child, so a zombie doesn't look alive.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not same_process(pid, start):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
