"""Exponential backoff with proportional jitter: a pure function of the failure count.

The caller owns the state: it counts consecutive failures, asks ``next(failures)``
for the delay, sleeps, and resets its count to zero after a success. Keeping the
count outside makes the policy a value (shareable, trivially testable with a
seeded ``rng``) and keeps "what counts as success" where that knowledge lives.

Jitter is ``±jitter`` around the exponential value (not full jitter): every client
waits at least ``(1 - jitter)`` of the nominal delay, so a restarted API server is
not hammered at once, yet clients that failed together spread out instead of
reconnecting in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """``next(n)`` for the n-th consecutive failure (n ≥ 1) is uniform in
    ``[d·(1-jitter), d·(1+jitter)]`` where ``d = min(cap, base·factor^(n-1))``.

    ``next(0)`` is 0: no failure, no wait. Defaults (0.2 s doubling to 30 s) retry a
    restarting local API server within a second or two, and cost an unreachable one
    about two requests a minute per client once capped.
    """

    base: float = 0.2
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"need 0 < base <= cap, got base={self.base} cap={self.cap}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def nominal(self, failures: int) -> float:
        """The delay before jitter."""
        if failures <= 0:
            return 0.0
        try:
            return min(self.cap, self.base * self.factor ** (failures - 1))
        except OverflowError:
            return self.cap

    def next(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures."""
        delay = self.nominal(failures)
        if delay == 0.0 or self.jitter == 0:
            return delay
        return delay * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
