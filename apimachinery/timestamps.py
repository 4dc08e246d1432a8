"""RFC 3339 timestamps as the API carries them, to and from Unix time.

Kubernetes writes whole seconds in metadata and microseconds (Go's RFC3339Nano,
trailing zeros trimmed) in ``endpoints.kubernetes.io/last-change-trigger-time``;
consumers measure programming latency from the latter, so both forms parse here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def parse_time(value: object) -> float | None:
    """RFC 3339 with any fraction length → Unix time; None for anything else."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value.strip())
    if m is None:
        return None
    day, clock, fraction, offset = m.groups()
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{zone}")
    except ValueError:
        return None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def format_time(unix: float) -> str:
    """Unix time → RFC 3339 UTC with microseconds, trailing zeros trimmed (as Go)."""
    moment = datetime.fromtimestamp(unix, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{micros}Z" if micros else f"{text}Z"


# metav1.MicroTime (Lease acquireTime/renewTime): Go's RFC3339Micro layout,
# "2006-01-02T15:04:05.000000Z07:00", which parses exactly six fraction digits.
_RFC3339_MICRO = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})")
MICRO_TIME_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


def parse_micro_time(value: object) -> datetime | None:
    """A MicroTime string → an aware datetime; None for anything Go's layout refuses."""
    if not isinstance(value, str):
        return None
    m = _RFC3339_MICRO.fullmatch(value)
    if m is None:
        return None
    clock, micros, offset = m.groups()
    try:
        moment = datetime.fromisoformat(f"{clock}{'+00:00' if offset == 'Z' else offset}")
    except ValueError:
        return None
    return moment.replace(microsecond=int(micros))


def format_micro_time(moment: datetime | float) -> str:
    """A MicroTime as Kubernetes writes it: UTC, six fraction digits, ``Z``."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
