"""Container logs in the CRI format kubelet reads, as pure functions.

Every line of a container's log file is ``<RFC3339Nano time> <stream> <tag> <text>``:
``stream`` is ``stdout`` or ``stderr``, ``tag`` ``F`` for a full line or ``P`` for a
part of a longer one (a line over ``MAX_LINE`` bytes, or an unterminated tail at
exit), as containerd writes it::

    >>> format_lines(b"a\\nb", stream="stdout", now="2026-01-02T03:04:05.000000001Z")
    (b'2026-01-02T03:04:05.000000001Z stdout F a\\n', b'b')

Keeping the time of every line is what ``kubectl logs --timestamps`` and
``--since`` need, which a raw file cannot answer.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

MAX_LINE = 16 * 1024  # containerd's default max container log line size


def rfc3339_nano(epoch_ns: int) -> str:
    secs, nanos = divmod(epoch_ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(secs, tz=datetime.UTC)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_time(text: str) -> float:
    """An RFC 3339 time (nanoseconds allowed) → seconds since the epoch."""
    text = text.strip()
    frac = 0.0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        frac = float("0." + digits) if digits else 0.0
        text = head + zone
    stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp() + frac


def format_lines(data: bytes, *, stream: str, now: str, final: bool = False
                 ) -> tuple[bytes, bytes]:
    """CRI lines for the complete lines of ``data``, and the unterminated rest.

    ``final``: the stream ended, so the rest is written too (tagged ``P``, as it had
    no newline)."""
    out = []
    while True:
        nl = data.find(b"\n")
        if nl < 0 or nl > MAX_LINE:
            if len(data) > MAX_LINE:  # a long line: its first MAX_LINE bytes as a part
                out.append(b"%s %s P %s\n" % (now.encode(), stream.encode(), data[:MAX_LINE]))
                data = data[MAX_LINE:]
                continue
            break
        out.append(b"%s %s F %s\n" % (now.encode(), stream.encode(), data[:nl]))
        data = data[nl + 1:]
    if final and data:
        out.append(b"%s %s P %s\n" % (now.encode(), stream.encode(), data))
        data = b""
    return b"".join(out), data


@dataclass(frozen=True)
class Entry:
    time: str
    stream: str
    full: bool
    text: bytes  # without the newline

    def render(self, *, timestamps: bool) -> bytes:
        """As kubelet prints it: the text, a newline after a full line, the time first
        when asked."""
        body = self.text + (b"\n" if self.full else b"")
        return (self.time.encode() + b" " + body) if timestamps else body


def parse_line(line: bytes) -> Entry | None:
    """One CRI line (without its newline); None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    return Entry(parts[0].decode("ascii", "replace"), parts[1].decode(), parts[2] == b"F",
                 parts[3] if len(parts) > 3 else b"")


def parse(data: bytes) -> tuple[list[Entry], bytes]:
    """The entries of the complete lines in ``data`` and the incomplete rest."""
    entries = []
    *lines, rest = data.split(b"\n")
    for line in lines:
        entry = parse_line(line)
        if entry is not None:
            entries.append(entry)
    return entries, rest


def select(entries: list[Entry], *, tail: int | None, since: float | None) -> list[Entry]:
    """kubelet's order: entries at or after ``since`` (epoch seconds), then the last
    ``tail`` lines (a line ends at a full entry)."""
    if since is not None:
        entries = [e for e in entries if _at_or_after(e.time, since)]
    if tail is None:
        return entries
    if tail <= 0:
        return []
    count, start = 0, len(entries)
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].full:
            count += 1
            if count > tail:
                break
        start = i
    return entries[start:]


def _at_or_after(time: str, since: float) -> bool:
    try:
        return parse_time(time) >= since
    except ValueError:
        return True
