"""What a controller expects its informer to show next (client-go's ``ControllerExpectations``).

A ReplicaSet that creates 5 pods must not create 5 more on its next sync just
because the informer hasn't delivered the first 5 yet. Before sending creates or
deletes, the controller records how many creations and which deletions it
expects for that owner; the pod handlers count them off as they arrive; a sync
changes replicas only once nothing is outstanding. A create or delete that
failed is counted off at once (it will never be observed). Expectations older
than ``ttl`` are given up on, so a lost event delays a sync by at most that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# client-go's ExpectationsTimeout: long enough for any watch to deliver, short
# enough that a lost event only stalls a controller for minutes.
DEFAULT_TTL = 300.0


@dataclass
class _Pending:
    adds: int
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    """Outstanding creations (a count) and deletions (pod keys) per owner key."""

    def __init__(self, clock: Callable[[], float], *, ttl: float = DEFAULT_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._pending: dict[str, _Pending] = {}

    def expect(self, key: str, *, creations: int = 0, deletions: Iterable[str] = ()) -> None:
        """Replace ``key``'s expectations (set before the writes are sent)."""
        self._pending[key] = _Pending(creations, set(deletions), self._clock())

    def creation_observed(self, key: str) -> None:
        pending = self._pending.get(key)
        if pending is not None and pending.adds > 0:
            pending.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        pending = self._pending.get(key)
        if pending is not None:
            pending.deletes.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        """True when nothing is outstanding, nothing was ever expected, or the
        expectations have expired."""
        pending = self._pending.get(key)
        if pending is None:
            return True
        if pending.adds <= 0 and not pending.deletes:
            return True
        return self._clock() - pending.since > self._ttl

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
