"""Object keys: the one string that names an object in caches and work queues.

``"namespace/name"`` for namespaced objects and ``"name"`` for cluster-scoped ones,
as client-go's ``MetaNamespaceKeyFunc``. A key is what handlers enqueue and what
workers look up, so controllers never hold on to (possibly stale) objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def make_key(namespace: str | None, name: str) -> str:
    """The key of ``name`` in ``namespace`` (``None`` or ``""`` for cluster-scoped)."""
    return f"{namespace}/{name}" if namespace else name


def object_key(obj: Mapping[str, Any]) -> str:
    """The key of an object (its ``metadata.namespace`` and ``metadata.name``).

    Raises ``KeyError`` when the object has no name: such an object can't be cached.
    """
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise KeyError(f"object has no metadata.name: {str(obj)[:200]}")
    return make_key(meta.get("namespace"), name)


def split_key(key: str) -> tuple[str | None, str]:
    """``"ns/name"`` → ``("ns", "name")``; ``"name"`` → ``(None, "name")``.

    Names never contain ``/`` (they are DNS labels or subdomains), so the first
    ``/`` is the only separator.
    """
    namespace, sep, name = key.partition("/")
    if not sep:
        return None, key
    if not namespace or not name or "/" in name:
        raise ValueError(f"unexpected key format: {key!r}")
    return namespace, name
