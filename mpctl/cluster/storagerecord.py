"""Which storage a deployment's API servers use, recorded once beside its PKI.

The compose deployment runs on SQLite (``docker-compose.yml``) or on PostgreSQL with
three API servers (``docker-compose.ha.yml`` on top): two files whose containers share
one set of volumes. Switching files on a deployment that exists would leave API
servers of one storage running beside API servers of the other (compose keeps a
service missing from the files it is given running): two clusters under one name,
each with half the writes. So ``mpctl cluster pki --storage`` writes the storage to
``DIR/storage`` on the first run and refuses another one afterwards, before changing
anything; every API server container checks its ``--storage-url`` against the copy
it is handed, and exits when they differ. The record goes with the volumes (``down
-v``).
"""

from __future__ import annotations

from pathlib import Path

from componentbase import files

from .plan import STORAGES, SpecError

FILE = "storage"
# A PKI directory made before records existed was made by the SQLite-only deployment.
UNRECORDED = "sqlite"


def path(directory: Path) -> Path:
    return directory / FILE


def recorded(directory: Path) -> str | None:
    """The storage recorded in ``directory``; ``UNRECORDED``'s for a PKI (a CA) made
    before records existed; None for a new directory."""
    try:
        return path(directory).read_text().strip()
    except FileNotFoundError:
        return UNRECORDED if (directory / "ca.crt").exists() else None


def claim(directory: Path, storage: str) -> bool:
    """Record ``storage`` unless it is recorded already; True if the record was made
    now. Another storage recorded (or implied, ``recorded``) is a ``SpecError``, and
    then nothing is written."""
    if storage not in STORAGES:
        raise SpecError(f"--storage: {storage!r} is not one of {', '.join(STORAGES)}")
    before = recorded(directory)
    if before is not None and before != storage:
        raise SpecError(f"--storage {storage}: this deployment's API servers use {before} "
                        f"(recorded in {path(directory)}); they must all use one storage, "
                        f"so keep the compose files it was made with, or remove it with "
                        f"its volumes first (down -v), which deletes its state")
    if path(directory).exists():
        return False
    files.write_atomic(path(directory), f"{storage}\n".encode(), mode=0o644)
    return True
