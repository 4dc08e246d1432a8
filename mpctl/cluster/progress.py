"""The step-by-step display of ``cluster up``: what it is doing and how long each took.

On a terminal the current step shows while it runs and is replaced by its result;
elsewhere (logs, CI) only results are printed, one line each. ``-q`` prints nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.started = time.monotonic()

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Show ``what`` while the block runs; ✓ with its duration, or ✗ if it raised."""
        t0 = time.monotonic()
        if self.tty and not self.quiet:
            self.stream.write(f" • {what} …")
            self.stream.flush()
        try:
            yield
        except BaseException:
            self._finish("✗", what, time.monotonic() - t0)
            raise
        self._finish("✓", what, time.monotonic() - t0)

    def _finish(self, mark: str, what: str, seconds: float) -> None:
        if self.quiet:
            return
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(f"{prefix} {mark} {what} ({seconds:.1f}s)\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started
