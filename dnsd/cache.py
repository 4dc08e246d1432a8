"""A cache of forwarded answers, kept as CoreDNS's ``cache`` plugin keeps them.

Pods ask for outside names many times over (every lookup walks the search path,
A and AAAA each), so the upstream's answers are kept, as wire bytes, for as long as
they say and no longer than a cap:

=========================================  =============================================
upstream reply                             kept for
=========================================  =============================================
NOERROR with records                       the smallest TTL in it, at most
                                           ``success_ttl`` (3600 s, CoreDNS's ``success``)
NXDOMAIN, or NOERROR without records       min(SOA TTL, SOA MINIMUM) of the SOA in the
(NODATA)                                   authority section (RFC 2308 §5), at most
                                           ``denial_ttl`` (1800 s); without an SOA: not kept
SERVFAIL from upstream, or no upstream     ``servfail_ttl`` (5 s, CoreDNS's ``servfail``),
answered at all                            so a dead upstream costs one wait, not one per query
truncated (TC), other rcodes, malformed    not kept
=========================================  =============================================

A reply served from the cache has every TTL lowered by the time it has been kept
(and none above what it is kept for), so the clients' caches expire with ours. The
cache holds at most ``size`` replies; the least recently used goes first.

Pure: times are passed in (``now``), so tests move a clock; the TTLs are found and
rewritten by walking the reply's bytes once when it is stored (``scan``), not by
parsing it with dnspython on every hit.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_SIZE = 10_000  # CoreDNS: 9,984 per success and per denial
SUCCESS_TTL = 3600
DENIAL_TTL = 1800
SERVFAIL_TTL = 5

NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
TYPE_SOA, TYPE_OPT = 6, 41
FAILED = b""  # what ``get`` returns for a cached "no upstream answered"


@dataclass(frozen=True)
class Limits:
    """How many replies, and the longest each kind is kept (seconds)."""

    size: int = DEFAULT_SIZE
    success_ttl: int = SUCCESS_TTL
    denial_ttl: int = DENIAL_TTL
    servfail_ttl: int = SERVFAIL_TTL


@dataclass(frozen=True)
class Scan:
    """What caching needs from a reply: its rcode and flags, where each TTL is (offset,
    value; OPT's is not a TTL and is left out), and the SOA's negative TTL if any."""

    rcode: int
    truncated: bool
    answers: int
    ttls: tuple[tuple[int, int], ...]
    negative_ttl: int | None  # min(SOA TTL, MINIMUM) of the first SOA in authority
    opt: tuple[int, int] | None = None  # where the OPT record is (start, end), if any


def _skip_name(wire: bytes, off: int) -> int:
    while True:
        length = wire[off]
        if length & 0xC0 == 0xC0:
            return off + 2
        if length & 0xC0:
            raise ValueError("unknown label type")
        off += 1 + length
        if length == 0:
            return off


def scan(wire: bytes) -> Scan:
    """Walk a reply's records; ``ValueError`` (or ``IndexError``/``struct.error``, turned
    into ``ValueError``) if it is not a well-formed message."""
    try:
        _, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire)
        off = 12
        for _ in range(qd):
            off = _skip_name(wire, off) + 4
        ttls: list[tuple[int, int]] = []
        negative: int | None = None
        opt: tuple[int, int] | None = None
        rcode = flags & 0x0F
        for i in range(an + ns + ar):
            start, off = off, _skip_name(wire, off)
            rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", wire, off)
            end = off + 10 + rdlen
            if end > len(wire):
                raise ValueError("record runs past the end")
            if rtype == TYPE_OPT:  # its "TTL" holds the upper bits of the rcode (BADVERS…)
                opt, rcode = (start, end), rcode | (ttl >> 24) << 4
            else:
                ttls.append((off + 4, ttl))
            if rtype == TYPE_SOA and an <= i < an + ns and negative is None:
                (minimum,) = struct.unpack_from("!I", wire, end - 4)
                negative = min(ttl, minimum)
            off = end
    except (IndexError, struct.error) as exc:
        raise ValueError(f"malformed reply: {exc}") from None
    return Scan(rcode, bool(flags & 0x0200), an, tuple(ttls), negative, opt)


def lifetime(found: Scan, limits: Limits) -> int:
    """Seconds to keep a reply (0: don't keep it), by the table above."""
    if found.truncated:
        return 0
    if found.rcode == SERVFAIL:
        return limits.servfail_ttl
    if found.rcode == NOERROR and found.answers:
        return min(min(ttl for _, ttl in found.ttls), limits.success_ttl)
    if found.rcode in (NOERROR, NXDOMAIN) and found.negative_ttl is not None:
        return min(found.negative_ttl, limits.denial_ttl)
    return 0


def without_opt(wire: bytes, found: Scan) -> bytes:
    """``wire`` without its OPT record: what was the upstream's answer to one client's
    EDNS is kept for every client, and each gets an OPT only if it sent one."""
    if found.opt is None:
        return wire
    start, end = found.opt
    (arcount,) = struct.unpack_from("!H", wire, 10)
    return wire[:10] + struct.pack("!H", arcount - 1) + wire[12:start] + wire[end:]


def with_opt(wire: bytes, opt: bytes) -> bytes:
    """``wire`` with the OPT record ``opt`` added last (RFC 6891: an EDNS query's answer
    carries one)."""
    (arcount,) = struct.unpack_from("!H", wire, 10)
    return wire[:10] + struct.pack("!H", arcount + 1) + wire[12:] + opt


def aged(wire: bytes, ttls: tuple[tuple[int, int], ...], keep: int, age: int) -> bytes:
    """``wire`` with each TTL at most ``keep`` and lowered by ``age`` seconds (not below 0)."""
    out = bytearray(wire)
    for off, ttl in ttls:
        struct.pack_into("!I", out, off, max(0, min(ttl, keep) - age))
    return bytes(out)


@dataclass(frozen=True)
class _Entry:
    wire: bytes  # FAILED for "no upstream answered"
    ttls: tuple[tuple[int, int], ...]
    keep: int
    stored: float

    def expired(self, now: float) -> bool:
        return now >= self.stored + self.keep


class ForwardCache:
    """Replies by question key (the question plus the flags that change an answer)."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes, now: float) -> bytes | None:
        """The kept reply with its TTLs aged (its ID is the one it was stored with, and
        it has no OPT record: ``with_opt`` adds the asker's), or
        ``FAILED``, or None when nothing (live) is kept for ``key``."""
        entry = self.entries.get(key)
        if entry is None or entry.expired(now):
            if entry is not None:
                del self.entries[key]
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        if entry.wire == FAILED:
            return FAILED
        return aged(entry.wire, entry.ttls, entry.keep, int(now - entry.stored))

    def put(self, key: bytes, wire: bytes, now: float) -> int:
        """Keep an upstream's reply for as long as ``lifetime`` says; that many seconds."""
        try:
            found = scan(wire)
        except ValueError:
            return 0
        keep = lifetime(found, self.limits)
        if keep > 0:
            if found.opt is not None:
                wire = without_opt(wire, found)
                found = scan(wire)
            self._store(key, _Entry(wire, found.ttls, keep, now))
        return keep

    def put_failure(self, key: bytes, now: float) -> None:
        """No upstream answered: SERVFAIL for ``servfail_ttl`` without asking again."""
        if self.limits.servfail_ttl > 0:
            self._store(key, _Entry(FAILED, (), self.limits.servfail_ttl, now))

    def _store(self, key: bytes, entry: _Entry) -> None:
        if self.limits.size <= 0:
            return
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.limits.size:
            self.entries.popitem(last=False)
            self.evictions += 1


def question_end(wire: bytes) -> int:
    """The offset just past a message's first question (``ValueError`` if there is none)."""
    try:
        if struct.unpack_from("!H", wire, 4)[0] < 1:
            raise ValueError("no question")
        end = _skip_name(wire, 12) + 4
    except (IndexError, struct.error) as exc:
        raise ValueError(f"malformed message: {exc}") from None
    if end > len(wire):
        raise ValueError("question runs past the end")
    return end


def answers_question(query: bytes, reply: bytes) -> bool:
    """Whether ``reply`` carries ``query``'s question (names compared without case), so
    it may be kept under that question's key."""
    try:
        end = question_end(query)
    except ValueError:
        return False
    return len(reply) >= end and reply[4:6] == b"\x00\x01" \
        and reply[12:end].lower() == query[12:end].lower()
