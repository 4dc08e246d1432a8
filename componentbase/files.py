"""Files written whole or not at all, private from their first byte.

A reader (a component loading its kubeconfig, ``mpctl cluster down`` reading
``cluster.json``) must never see half a file, and a key must never exist for an
instant with a wider mode: write a temporary file beside the target with the mode
set, then rename it over.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
