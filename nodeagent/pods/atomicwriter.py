"""The kubelet's atomic writer: a directory of files replaced all at once.

Used for the ServiceAccount token and for ``configMap``, ``secret``, ``projected``
and ``downwardAPI`` volumes. The layout is the kubelet's::

    <dir>/..2026_01_02_03_04_05.1a2b3c4d/<path>   the files of one version
    <dir>/..data -> ..2026_01_02_03_04_05.1a2b3c4d
    <dir>/<top> -> ..data/<top>                    one link per top-level name

A new version is written into a fresh timestamped directory, then ``..data`` is
swapped with one ``rename`` of a symlink, so a reader sees the old set of files or
the new one, never half of each; then links of names that went away and the old
directory are removed. A reader that opened a file before keeps its old content,
and so does a bind mount of one file (a ``subPath``): it holds the old inode.

``write_projection`` returns whether it wrote anything: an unchanged payload (same
paths, bytes and modes) leaves the directory as it is.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    """A path the writer refuses (absolute, ``..``, or a file under a file)."""


def check_path(path: str) -> None:
    """Relative, no ``..`` element, not starting with ``..`` (the writer's own names)."""
    if not path or path.startswith("/"):
        raise PayloadError(f"invalid path {path!r}: must be a relative path")
    if path.startswith(".."):
        raise PayloadError(f"invalid path {path!r}: must not start with '..'")
    if ".." in path.split("/") or "" in path.split("/"):
        raise PayloadError(f"invalid path {path!r}: must not contain '..' or empty elements")


def top_names(paths: Mapping[str, object]) -> set[str]:
    """The user-visible links: the first element of each path."""
    return {p.split("/", 1)[0] for p in paths}


def read_payload(directory: Path) -> dict[str, FileProjection] | None:
    """What ``..data`` holds now; None when there is no version yet."""
    data = directory / DATA
    if not data.is_symlink():
        return None
    root = data.resolve()
    out: dict[str, FileProjection] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = FileProjection(
                path.read_bytes(), path.stat().st_mode & 0o7777)
    return out


def write_projection(directory: Path, files: Mapping[str, FileProjection], *, uid: int,
                     gid: int, mode: int, now: float, file_group: int | None = None) -> bool:
    """Make ``directory`` hold exactly ``files``, by one atomic swap of ``..data``.

    The directory itself gets ``uid``:``gid`` and ``mode``; the files and their
    directories belong to root, in group ``file_group`` when given (a pod's
    ``fsGroup``). Raises ``PayloadError`` for a bad path, ``OSError`` on I/O.
    """
    for name in files:
        check_path(name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(directory, uid, gid)
    os.chmod(directory, mode)
    if read_payload(directory) == dict(files):
        return False
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y_%m_%d_%H_%M_%S")
    data = directory / f"..{stamp}.{secrets.token_hex(4)}"
    data.mkdir(mode=0o755)
    group = -1 if file_group is None else file_group
    for name, projection in sorted(files.items()):
        path = data / name
        for parent in reversed(path.relative_to(data).parents[:-1]):
            sub = data / parent
            if not sub.is_dir():
                sub.mkdir(mode=0o755)
                os.chown(sub, 0, group)
        path.write_bytes(projection.data)
        os.chown(path, 0, group)
        os.chmod(path, projection.mode & 0o7777)
    os.chown(data, 0, group)
    os.chmod(data, 0o755)
    tmp = directory / DATA_TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(data.name)
    os.replace(tmp, directory / DATA)
    wanted = top_names(files)
    for name in wanted:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA}/{name}")
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            if entry.name not in (DATA, data.name) and entry.is_dir() \
                    and not entry.is_symlink():
                shutil.rmtree(entry)
        elif entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    return True
