"""A container's log writer: ``python -I -m nodeagent.pods.logshim FILE FD:STREAM...``.

Reads the container's output from the inherited pipe (or pty) descriptors and
appends it to FILE in the CRI format (``crilog``), each line stamped with the time
it arrived, until every descriptor reaches end of file (the container and all its
children closed them). It runs in a session of its own, like containerd's shim,
so an agent restart neither loses output nor breaks the container's pipes.
"""

from __future__ import annotations

import os
import selectors
import sys
import time

from nodeagent.pods.crilog import format_lines, rfc3339_nano

CHUNK = 65536


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: logshim FILE FD:STREAM...", file=sys.stderr)
        return 2
    path, specs = argv[0], argv[1:]
    sel = selectors.DefaultSelector()
    pending: dict[int, bytes] = {}
    for spec in specs:
        fd_text, _, stream = spec.partition(":")
        fd = int(fd_text)
        sel.register(fd, selectors.EVENT_READ, stream or "stdout")
        pending[fd] = b""
    out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    while pending:
        for key, _ in sel.select():
            fd = int(key.fd)
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:  # EIO: a pty whose other side is closed
                chunk = b""
            now = rfc3339_nano(time.time_ns())
            text, pending[fd] = format_lines(pending[fd] + chunk, stream=key.data, now=now,
                                             final=not chunk)
            if text:
                os.write(out, text)
            if not chunk:
                sel.unregister(fd)
                os.close(fd)
                del pending[fd]
    os.close(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
