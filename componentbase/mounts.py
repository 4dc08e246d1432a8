"""Mounts a node agent leaves under its state directory, found and undone.

A pod's UTS namespace is kept alive by a bind mount under the agent's state
directory (``nodeagent.pods.identity``). The agent removes it with the pod; when a
local cluster is torn down with its pods still there (``mpctl cluster down`` stops
the agents first), ``unmount_under`` removes what is left, so the host's mount
table keeps nothing of the cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(mountinfo: str, top: str) -> list[str]:
    """Mount points at or below ``top`` (an absolute path), deepest first."""
    top = top.rstrip("/") or "/"
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        target = _unescape(fields[4])
        if target == top or target.startswith(top + "/"):
            found.append(target)
    return sorted(set(found), key=lambda t: (-t.count("/"), t))


def unmount_under(top: Path) -> list[str]:
    """Lazily unmount everything mounted below ``top``; returns what was found."""
    try:
        with open("/proc/self/mountinfo") as f:
            targets = mounts_under(f.read(), os.path.realpath(top))
    except OSError:
        return []
    for target in targets:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["umount", "--lazy", target], capture_output=True, timeout=30)
    return targets
