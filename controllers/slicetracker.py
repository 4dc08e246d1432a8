"""What the EndpointSlice controller last wrote, so it never plans from a stale cache.

A sync plans from the informer cache. Right after the controller creates a slice,
the cache doesn't have it yet; a second sync of the same Service in that window
would see "no slice" and create another (Kubernetes' ``EndpointSliceTracker``
exists for exactly this). So every write is recorded with the resourceVersion the
server answered (or as deleted), and a Service's sync waits until the cache shows
at least those versions. The informer's echo of our own write is recognised too,
so it doesn't cost another sync.

resourceVersions here are the API server's global revision (an integer string),
so "at least" is a numeric comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from controllers.objects import name_of, version_of

log = logging.getLogger(__name__)

DELETED = ""  # expected "version" of a slice we deleted

# An expectation the cache never meets (the informer missed the event and a relist
# went past it) must not block a Service forever; after this long it is dropped.
EXPECTATION_TIMEOUT = 30.0

Object = Mapping[str, Any]


class SliceTracker:
    """Per Service key: slice name → (version we wrote or DELETED, when)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expected: dict[str, dict[str, tuple[str, float]]] = {}

    def wrote(self, service_key: str, slice_: Object) -> None:
        """We created or updated ``slice_`` (the server's answer)."""
        self._expected.setdefault(service_key, {})[name_of(slice_)] = (
            version_of(slice_), self._clock())

    def deleted(self, service_key: str, name: str) -> None:
        self._expected.setdefault(service_key, {})[name] = (DELETED, self._clock())

    def observe(self, service_key: str, slice_: Object, *, deleted: bool) -> bool:
        """The informer delivered ``slice_``; drop what it satisfies. True when the
        event is just the echo of our own write (no sync needed for it)."""
        expected = self._expected.get(service_key)
        if not expected:
            return False
        name = name_of(slice_)
        entry = expected.get(name)
        if entry is None:
            return False
        version = entry[0]
        ours = False
        if deleted:
            ours = version == DELETED
            del expected[name]  # ours, or someone deleted what we wrote: either way, done
        elif version != DELETED and _at_least(version_of(slice_), version):
            ours = version_of(slice_) == version
            del expected[name]
        if not expected:
            del self._expected[service_key]
        return ours

    def stale(self, service_key: str, cached: Callable[[str], Object | None]) -> bool:
        """Does the cache still lack one of our writes for this Service?"""
        expected = self._expected.get(service_key)
        if not expected:
            return False
        now = self._clock()
        for name, (version, when) in list(expected.items()):
            obj = cached(name)
            behind = (obj is not None) if version == DELETED else (
                obj is None or not _at_least(version_of(obj), version))
            if not behind:
                del expected[name]
            elif now - when > EXPECTATION_TIMEOUT:
                log.warning("endpointslice %s of %s: cache never showed our write (%s); "
                            "planning without it", name, service_key, version or "delete")
                del expected[name]
            else:
                return True
        if not expected:
            del self._expected[service_key]
        return False

    def forget(self, service_key: str) -> None:
        self._expected.pop(service_key, None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._expected.values())


def _at_least(have: str, want: str) -> bool:
    try:
        return int(have) >= int(want)
    except ValueError:
        return have == want
