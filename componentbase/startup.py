"""What each command's ``main`` does before it runs: one log format, one error line.

Every component logs to stderr in the same format, so one ``grep`` reads a whole
cluster's logs; an error before the component runs is the one line
``prog: error: message`` that ``flags.Parser`` also prints for a bad flag.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str, *, quiet: Collection[str] = ("httpx",)) -> None:
    """Log at ``level`` (``info``, ``debug``, …) to stderr; the loggers in ``quiet``
    stay at WARNING (httpx logs every request at info: chatter)."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=LOG_FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(prog: str, message: object, status: int) -> int:
    """Print ``prog: error: message`` to stderr and return ``status`` for ``main``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status
