"""Poll a condition until it holds or a deadline passes.

For what has no event to wait on (another process's ports, a file, a DNS answer):
the test suite's ``wait_until`` and ``dnsd.testing`` (shared with ``bench/``) both
wait this way, so there is one loop with one timeout message. Product code that can
be notified waits on the notification instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], *, timeout: float, what: str,
         interval: float = 0.01) -> T:
    """Call ``predicate`` until it returns something truthy and return that; raise
    ``TimeoutError`` at the deadline, naming ``what`` and the last exception the
    predicate raised (an exception counts as "not yet")."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last!r})" if last else ""))
