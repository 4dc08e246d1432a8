"""A container's standard streams: pipes or a pty, a log shim, and the agent's ends.

Output always goes through ``logshim`` (its own session), which stamps each line
into the CRI log file. A container with ``stdin: true`` gets a pipe (or, with
``tty: true``, the pty) whose writing end the agent keeps for ``attach``; without
it, stdin is ``/dev/null``. With ``tty`` the three streams are one pty, the
container's controlling terminal, and everything it prints is ``stdout`` (as in
Kubernetes). The agent's ends die with the agent: after an agent restart an
adopted container's output is still logged, but its stdin is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import sys
import termios
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.pods.security import ROOT_ENV


@dataclass
class Stdio:
    """The container's three descriptors and the agent's ends."""

    child: tuple[int | None, int, int]  # stdin (None: /dev/null), stdout, stderr
    shim: list[tuple[int, str]]  # (descriptor, stream) the log shim reads
    stdin: int | None = None  # the agent's writing end (the pty master with a tty)
    tty: bool = False
    _close_after_start: list[int] = field(default_factory=list)

    def started(self) -> None:
        """The container and the shim have their copies: close the agent's."""
        for fd in self._close_after_start:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._close_after_start = []


def open_stdio(*, stdin: bool, tty: bool) -> Stdio:
    if tty:
        master, slave = pty.openpty()
        keep = os.dup(master) if stdin else None
        return Stdio(child=(slave, slave, slave), shim=[(master, "stdout")], stdin=keep,
                     tty=True, _close_after_start=[slave, master])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    close = [out_w, err_w, out_r, err_r]
    child_in, keep = None, None
    if stdin:
        child_in, keep = os.pipe()
        close.append(child_in)
    return Stdio(child=(child_in, out_w, err_w), shim=[(out_r, "stdout"), (err_r, "stderr")],
                 stdin=keep, _close_after_start=close)


async def start_shim(stdio: Stdio, log_path: Path) -> asyncio.subprocess.Process:
    fds = [fd for fd, _ in stdio.shim]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-m", "nodeagent.pods.logshim", str(log_path),
        *[f"{fd}:{stream}" for fd, stream in stdio.shim], pass_fds=fds,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=ROOT_ENV, cwd="/", start_new_session=True)


def take_terminal() -> None:
    """In the child (``preexec_fn``), after ``setsid``: stdin, a pty, becomes the
    controlling terminal, so Ctrl-C and job control reach the container."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def resize(fd: int, *, width: int, height: int) -> None:
    """Set a pty's window size (the container gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
