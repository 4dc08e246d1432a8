"""Driving an interactive command on a pseudo-terminal, as a user types into it
(``kubectl exec -it``, ``kubectl run --rm -it``): shared by the local-cluster and
the compose tests."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import time
from typing import Any

from tests.conftest import wait_until


def drive(argv: list[str], steps: list[tuple[str, bytes]], *, timeout: float = 30
          ) -> tuple[int, bytes]:
    """Run ``argv`` on a new pty; for each (expected text, keys) wait for the text in
    the output, then type the keys. Returns the exit code and all the output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on the pty as its terminal
        os.execv(argv[0], argv)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        def read_until(done: Any) -> bool:
            nonlocal out
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                ready, _, _ = select.select([fd], [], [], min(left, 0.2))
                if ready:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        return done()
                    if not chunk:
                        return done()
                    out += chunk
            return True

        for expected, keys in steps:
            assert read_until(lambda e=expected: e.encode() in out), \
                f"{expected!r} never appeared in {out!r}"
            os.write(fd, keys)
        read_until(lambda: False)  # the rest of the output, until the pty closes

        def exited() -> int | None:
            done, status = os.waitpid(pid, os.WNOHANG)
            return os.waitstatus_to_exitcode(status) if done else None

        code = wait_until(lambda: (c := exited()) is not None and (c,),
                          timeout=max(1.0, deadline - time.monotonic()),
                          what=f"{argv} to exit; output {out!r}")[0]
        return code, out
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
