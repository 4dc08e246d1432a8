"""The mount step of a container's launch: ``python -I -m nodeagent.pods.launch``.

Runs as root inside the container's own mount namespace (``unshare --mount
--propagation private`` exec'd it, so nothing here reaches the host's mounts),
applies the mounts, then execs the rest of its argv (``setpriv … -- env -i … --
COMMAND``)::

    launch [--bind-ro SRC DST]... [--bind-volume SRC DST]... [--read-only-root]
           -- PROGRAM ARGS...

``--bind-ro`` bind-mounts SRC on DST read-only (nosuid, nodev, noexec), creating
DST's directories if missing (on the host's filesystem: an empty mount point, as a
kubelet's volume paths are); a file SRC (the pod's /etc/hosts…, a volume's
``subPath``) goes on a file DST, made empty if missing. ``--bind-volume`` does the
same for a volume (read-only, nosuid, nodev, but its files may be run, as a
ConfigMap's scripts are). ``--read-only-root`` then remounts every mount read-only
as ``security.read_only_remounts`` decides. Any failure ends the launch with exit
code 126 and one line on stderr (the container's log): a container that asked for a
read-only root never runs with a writable one.

It is started with ``-I`` (no current directory on ``sys.path``, no ``PYTHON*``
variables) and imports only the standard library and ``security``: a pod's working
directory or environment can't put code into this root process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from nodeagent.pods.security import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    read_only_remounts,
)

FAILED = 126  # as a shell reports a command it found but could not run


class LaunchError(Exception):
    pass


def _mount(libc: ctypes.CDLL, source: str | None, target: str, flags: int) -> None:
    if libc.mount(source.encode() if source else None, target.encode(), None,
                  ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise LaunchError(f"mount {target}: {os.strerror(err)}")


def _mount_point(source: str, target: str) -> None:
    """A directory for a directory, a file for a file (``/etc/hosts`` and friends
    exist on any host; a missing one is made empty, as a missing directory is)."""
    try:
        if os.path.isdir(source):
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target) or "/", mode=0o755, exist_ok=True)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError as exc:
        raise LaunchError(f"mount point {target}: {exc.strerror}") from exc


BIND_FLAGS = {"--bind-ro": MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "--bind-volume": MS_RDONLY | MS_NOSUID | MS_NODEV}


def parse(argv: list[str]) -> tuple[list[tuple[str, str, int]], bool, list[str]]:
    """(source, target, remount flags) of each bind, ``--read-only-root``, the program."""
    binds: list[tuple[str, str, int]] = []
    read_only = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return binds, read_only, argv[i + 1:]
        if arg in BIND_FLAGS and i + 2 < len(argv):
            binds.append((argv[i + 1], argv[i + 2], BIND_FLAGS[arg]))
            i += 3
        elif arg == "--read-only-root":
            read_only = True
            i += 1
        else:
            raise LaunchError(f"unexpected argument {arg!r}")
    raise LaunchError("no program after --")


def main(argv: list[str]) -> int:
    try:
        binds, read_only, program = parse(argv)
        if not program:
            raise LaunchError("no program after --")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        for source, target, flags in binds:
            _mount_point(source, target)
            _mount(libc, source, target, MS_BIND)
            _mount(libc, None, target, MS_REMOUNT | MS_BIND | flags)
        if read_only:
            with open("/proc/self/mountinfo") as f:
                remounts = read_only_remounts(f.read())
            for r in remounts:
                _mount(libc, None, r.target, r.flags)
    except LaunchError as exc:
        print(f"mp-nodeagent launch: {exc}", file=sys.stderr, flush=True)
        return FAILED
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        print(f"mp-nodeagent launch: exec {program[0]}: {exc.strerror}", file=sys.stderr,
              flush=True)
    return FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
