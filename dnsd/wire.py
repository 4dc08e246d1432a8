"""Wire answers: rendered once, served many times by patching in the query's bytes.

An ``Entry`` is an ``Answer`` rendered for one question, minus the 12-byte
header and the question itself: ``body`` holds the answer, authority and
additional sections. Every owner name equal to the question name is compressed
to a pointer at offset 12, and the zone's name too (it is a suffix of the
question), so a reply to *any* query with the same question up to case is::

    query ID + precomputed flags/counts + the query's own question bytes + body

That echoes the client's spelling (0x20-style mixed case included) without
building a message. ``fast_reply`` does exactly this for well-formed queries
whose question is in the ``AnswerTable``; anything else returns None and goes to
the slow path (``server.py``), which parses with dnspython.

Two details keep stored entries valid for long:

- The SOA serial (Unix time of the last zone change) is the only field of a
  negative answer that changes when *other* names change. Entries are rendered
  with serial 0 and the live serial is spliced in at ``serial_at`` (cached per
  serial), so a change to one Service doesn't invalidate every NODATA answer.
- UDP size limits are applied when serving (``udp_limit``): 512 bytes without
  EDNS, else the client's buffer (RFC 6891) but never more than the server's
  cap, 1,232 by default (``--max-udp-size``; CoreDNS's ``bufsize``, the DNS Flag
  Day 2020 value, which avoids IP fragmentation). A client asking for 65,535
  bytes must not make a small query draw an 8 KB datagram. A reply that doesn't
  fit is re-rendered with as many whole records as fit and TC set (cached per
  limit), and the client retries over TCP. dnspython's own truncation
  drops a whole RRset, leaving a large headless answer empty; CoreDNS (miekg's
  ``Truncate``) keeps what fits, and so does this. Additional records that don't
  fit are left out without TC (RFC 2181 §9: they aren't required).

Rendering uses a small encoder for the types dnsd writes (see "the encoder"
below for why not dnspython's renderer); every test reads replies back with
dnspython's parser, which is the check that the two agree.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnsd.names import Labels
from dnsd.records import SOA, Answer, Record
from dnsd.zone import ANY, Tag

# The largest UDP reply by default, and the payload size advertised in our OPT
# record: the DNS Flag Day 2020 value (CoreDNS's ``bufsize`` default).
SERVER_UDP_PAYLOAD = 1232
CLASSIC_UDP_LIMIT = 512  # RFC 1035: without EDNS, a UDP reply is at most 512 bytes
MAX_UDP_CAP = 4096  # the highest --max-udp-size (BIND's and CoreDNS's upper bound)
MAX_MESSAGE = 65535  # TCP's 2-byte length prefix
OPT_SIZE = 11  # root name, type, class (payload), TTL (ext-rcode, version, flags), rdlen=0
SERIAL_FROM_END = 20  # SOA RDATA ends serial(4) refresh(4) retry(4) expire(4) minimum(4)
OPT_TAIL = b"\x00\x00\x29"  # how an OPT RR with the root owner starts
ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT=1, ANCOUNT=0, NSCOUNT=0
NO_ADDITIONAL = b"\x00\x00"
ONE_ADDITIONAL = b"\x00\x01"
CLASS_IN = b"\x00\x01"


def opt_records(payload: int) -> tuple[bytes, bytes]:
    """Our OPT record advertising ``payload``, without and with the DO bit."""
    head = b"\x00\x00\x29" + struct.pack("!H", payload)
    return head + b"\x00\x00\x00\x00\x00\x00", head + b"\x00\x00\x80\x00\x00\x00"


def udp_limit(payload: int, edns: int, cap: int) -> int:
    """The most bytes of header, question and sections a UDP reply may carry: 512
    without EDNS; else the client's ``payload`` (at least 512), at most ``cap``, less
    the room for our OPT record. The slow path calls this; ``fast_reply`` inlines it
    (a unit test holds the two to the same sizes)."""
    if not edns:
        return CLASSIC_UDP_LIMIT
    return min(max(payload, CLASSIC_UDP_LIMIT), cap) - OPT_SIZE


QR, AA, TC, RD, RA = (dns.flags.QR, dns.flags.AA, dns.flags.TC, dns.flags.RD, dns.flags.RA)
_IN = dns.rdataclass.IN
_CACHE_LIMIT = 100_000  # parsed names and RDATA kept; cleared whole when full


def name_wire(labels: Labels) -> bytes:
    """Uncompressed wire form of a name given as (latin-1) labels."""
    return b"".join(bytes((len(b),)) + b for b in (lab.encode("latin-1") for lab in labels)) \
        + b"\x00"


def question_key(labels: Labels, qtype: int) -> bytes:
    """The table key: the lower-case question as it appears on the wire (class IN)."""
    return name_wire(labels) + struct.pack("!H", qtype) + CLASS_IN


@dataclass(eq=False)
class Entry:
    """One rendered answer; see the module docstring for how it is served."""

    answer: Answer
    question: bytes  # the lower-case question it was rendered for
    body: bytes
    heads: tuple[bytes, bytes, bytes, bytes]  # flags+counts for [rd + 2 * edns]
    serial_at: int  # offset of the SOA serial in body, or -1
    rcode: int
    truncated: bool
    ra: bool
    _spliced: tuple[int, bytes] = (-1, b"")
    _smaller: dict[int, Entry] = field(default_factory=dict)

    def body_for(self, serial: int) -> bytes:
        if self.serial_at < 0:
            return self.body
        if self._spliced[0] != serial:
            at = self.serial_at
            self._spliced = (serial, self.body[:at] + struct.pack("!I", serial & 0xFFFFFFFF)
                             + self.body[at + 4:])
        return self._spliced[1]

    def fitted(self, limit: int) -> Entry:
        """This answer cut to at most ``limit`` bytes (header + question + sections)."""
        if 12 + len(self.question) + len(self.body) <= limit:
            return self
        smaller = self._smaller.get(limit)
        if smaller is None:
            smaller = render(self.answer, self.question, ra=self.ra, limit=limit)
            self._smaller[limit] = smaller
        return smaller

    def reply(self, qid: bytes, rd: int, question: bytes, opt: bytes, serial: int) -> bytes:
        """The reply bytes for a query with this ID, RD bit and question bytes; ``opt``
        is our OPT record when the query had EDNS, else empty."""
        body = self.body if self.serial_at < 0 else self.body_for(serial)
        if opt:
            return qid + self.heads[2 + rd] + question + body + opt
        return qid + self.heads[rd] + question + body


def render(answer: Answer, question: bytes, *, ra: bool, limit: int = MAX_MESSAGE) -> Entry:
    """Render ``answer`` for the lower-case ``question`` bytes into an ``Entry``.

    ``limit`` caps header + question + sections (an OPT record is added on top
    when serving, so callers pass the client's limit minus ``OPT_SIZE``).
    Records go in one at a time, so truncation keeps every record that fits.
    """
    writer = _Writer(question, max(limit, 12 + len(question)))
    truncated = False
    counts = [0, 0, 0]
    last: Record | None = None
    for section, records in enumerate((answer.answer, answer.authority, answer.additional)):
        for record in records:
            if not writer.record(record):
                truncated = section < 2  # additional records aren't required (RFC 2181 §9)
                break
            counts[section] += 1
            last = record
        if counts[section] < len(records):
            break
    body = bytes(writer.buf[12 + len(question):])
    an, ns, ar = counts
    flags = QR | (RA if ra else 0) | (TC if truncated else 0) | (answer.rcode & 0xF)
    if answer.authoritative:
        flags |= AA
    heads = (struct.pack("!HHHHH", flags, 1, an, ns, ar),
             struct.pack("!HHHHH", flags | RD, 1, an, ns, ar),
             struct.pack("!HHHHH", flags, 1, an, ns, ar + 1),
             struct.pack("!HHHHH", flags | RD, 1, an, ns, ar + 1))
    serial_at = len(body) - SERIAL_FROM_END if last is not None and last.rtype == SOA else -1
    return Entry(answer, question, body, heads, serial_at, answer.rcode, truncated, ra)


# -- the encoder -----------------------------------------------------------------------
#
# dnspython's renderer costs ~0.6 ms per negative answer on a small VM (name
# compression builds a Name per suffix; RRsets hash their rdata), which made a
# cold NXDOMAIN and every re-render after a change expensive. dnsd writes only a
# handful of types, so it encodes them itself (RFC 1035 §4.1.4 compression over
# lower-case label tuples) and leaves other types, which only appear in answers
# chased from an upstream, to dnspython, uncompressed (RFC 3597 §4).

WireLabels = tuple[bytes, ...]
_A, _AAAA, _NS, _CNAME, _PTR, _SRV = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.NS,
                                      dns.rdatatype.CNAME, dns.rdatatype.PTR,
                                      dns.rdatatype.SRV)
_NAME_TYPES = frozenset({_NS, _CNAME, _PTR})
_POINTER_LIMIT = 0x3FFF  # compression pointers are 14 bits
_parsed_cache: dict[tuple[int, str], tuple] = {}
_labels_cache: dict[str, WireLabels] = {}


def _labels(name: str) -> WireLabels:
    """Absolute text name → wire labels (escapes are left to dnspython when present)."""
    labels = _labels_cache.get(name)
    if labels is None:
        if "\\" in name:
            labels = tuple(dns.name.from_text(name).labels[:-1])
        else:
            text = name.rstrip(".")
            labels = tuple(part.encode("latin-1") for part in text.split(".")) if text else ()
        if len(_labels_cache) > _CACHE_LIMIT:
            _labels_cache.clear()
        _labels_cache[name] = labels
    return labels


def _parsed(rtype: int, data: str) -> tuple:
    """Presentation RDATA → the pieces the encoder writes; cached (the same few recur)."""
    key = (rtype, data)
    parsed = _parsed_cache.get(key)
    if parsed is None:
        if rtype == _A:
            parsed = (socket.inet_pton(socket.AF_INET, data),)
        elif rtype == _AAAA:
            parsed = (socket.inet_pton(socket.AF_INET6, data),)
        elif rtype in _NAME_TYPES:
            parsed = (_labels(data),)
        elif rtype == _SRV:
            priority, weight, port, target = data.split()
            parsed = (struct.pack("!HHH", int(priority), int(weight), int(port)),
                      _labels(target))
        elif rtype == SOA:
            mname, rname, *numbers = data.split()
            parsed = (_labels(mname), _labels(rname),
                      struct.pack("!IIIII", *(int(n) for n in numbers)))
        else:  # TXT, and whatever an upstream answered an ExternalName chase with
            parsed = (dns.rdata.from_text(_IN, dns.rdatatype.RdataType.make(rtype), data).to_wire(),)
        if len(_parsed_cache) > _CACHE_LIMIT:
            _parsed_cache.clear()
        _parsed_cache[key] = parsed
    return parsed


class _Writer:
    """A message under construction: a header placeholder, the question, then records."""

    def __init__(self, question: bytes, limit: int) -> None:
        self.buf = bytearray(12) + question
        self.limit = limit
        self.compress: dict[WireLabels, int] = {}
        offsets, labels, at = [], [], 0
        while question[at]:  # the question name's suffixes are the first pointer targets
            offsets.append(12 + at)
            labels.append(question[at + 1:at + 1 + question[at]])
            at += question[at] + 1
        for i, offset in enumerate(offsets):
            self.compress.setdefault(tuple(labels[i:]), offset)

    def record(self, record: Record) -> bool:
        """Append ``record``; False (and nothing appended) if it would pass the limit."""
        buf, mark = self.buf, len(self.buf)
        added: list[WireLabels] = []
        self._name(_labels(record.name), added)
        rdlen_at = len(buf) + 8
        buf += struct.pack("!HHIH", record.rtype, 1, record.ttl, 0)
        rtype, parsed = record.rtype, _parsed(record.rtype, record.data)
        if rtype in _NAME_TYPES:
            self._name(parsed[0], added)
        elif rtype == _SRV:
            buf += parsed[0]
            self._name(parsed[1], added, compress=False)  # RFC 2782: never compressed
        elif rtype == SOA:
            self._name(parsed[0], added)
            self._name(parsed[1], added)
            buf += parsed[2]
        else:
            buf += parsed[0]
        if len(buf) > self.limit:
            del buf[mark:]
            for suffix in added:
                del self.compress[suffix]
            return False
        struct.pack_into("!H", buf, rdlen_at, len(buf) - rdlen_at - 2)
        return True

    def _name(self, labels: WireLabels, added: list[WireLabels], *,
              compress: bool = True) -> None:
        buf = self.buf
        for i in range(len(labels)):
            suffix = tuple(label.lower() for label in labels[i:])
            pointer = self.compress.get(suffix)
            if pointer is not None and compress:
                buf += struct.pack("!H", 0xC000 | pointer)
                return
            if pointer is None and len(buf) <= _POINTER_LIMIT:
                self.compress[suffix] = len(buf)
                added.append(suffix)
            buf.append(len(labels[i]))
            buf += labels[i]
        buf.append(0)


class AnswerTable:
    """Rendered answers by lower-case question.

    ``entries`` holds the precomputed answers the index keeps current for every
    name it owns (per Service, IP, namespace, and the apex). ``cache`` holds what
    the slow path rendered for other questions: mostly NXDOMAIN along pods'
    search paths, which is most of a cluster's DNS traffic. It is bounded (oldest
    out first), and each answer carries the tag of what it was read from, so a
    change drops only the answers it can have altered: a new Service doesn't
    send every search-path NXDOMAIN of the cluster back to the slow path.
    """

    def __init__(self, *, ra: bool, cache_size: int = 50_000,
                 max_udp: int = SERVER_UDP_PAYLOAD) -> None:
        self.ra = ra
        self.cache_size = cache_size
        # How replies are served over UDP: the size cap and the OPT record advertising
        # it (a client may size its buffer by it; it must not promise more).
        self.max_udp = max_udp
        self.opt = opt_records(max_udp)
        self.entries: dict[bytes, Entry] = {}
        self.cache: dict[bytes, Entry] = {}
        self.serial = 0
        self._tag_of: dict[bytes, Tag] = {}
        self._tagged: dict[Tag, set[bytes]] = {}

    def store(self, answers: Mapping[bytes, Answer], *, drop: Iterable[bytes] = ()) -> None:
        """Forget the precomputed entries ``drop`` and keep ``answers``, rendering
        only those that differ from what is stored (the rest keep their caches)."""
        for key in drop:
            self.entries.pop(key, None)
        for key, ans in answers.items():
            current = self.entries.get(key)
            if current is None or current.answer != ans:
                self.entries[key] = render(ans, key, ra=self.ra)

    def get(self, key: bytes) -> Entry | None:
        entry = self.entries.get(key)
        return entry if entry is not None else self.cache.get(key)

    def put_cached(self, key: bytes, entry: Entry, tag: Tag = ANY) -> None:
        if key not in self.cache and len(self.cache) >= self.cache_size:
            self._drop(next(iter(self.cache)))
        self._drop(key)
        self.cache[key] = entry
        self._tag_of[key] = tag
        self._tagged.setdefault(tag, set()).add(key)

    def invalidate(self, tags: set[Tag]) -> int:
        """Drop the cached answers carrying any of ``tags``; how many went."""
        dropped = 0
        for tag in tags:
            for key in self._tagged.pop(tag, ()):
                self.cache.pop(key, None)
                self._tag_of.pop(key, None)
                dropped += 1
        return dropped

    def flush_cache(self) -> None:
        self.cache.clear()
        self._tag_of.clear()
        self._tagged.clear()

    def _drop(self, key: bytes) -> None:
        if self.cache.pop(key, None) is not None:
            tag = self._tag_of.pop(key)
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]


def parse_question(data: bytes) -> tuple[bytes, int, int, int] | None:
    """Find the question of a plain query: (question bytes, edns, DO (0/1), UDP payload).

    Accepts only what the fast path can answer byte-for-byte: QR=0, opcode QUERY,
    exactly one question and no answer/authority records, and either no
    additional record or exactly one OPT of version 0 with the root owner ending
    the message. Everything else (and every malformed packet) returns None.
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != ONE_QUESTION:
        return None
    arcount = data[10:12]
    if arcount == NO_ADDITIONAL:
        return data[12:], 0, 0, CLASSIC_UDP_LIMIT
    if arcount != ONE_ADDITIONAL:
        return None
    # The common OPT (no options) is the last 11 bytes; else walk the name to find it.
    if data[-2:] == NO_ADDITIONAL and data[-11:-8] == OPT_TAIL:
        end = n - OPT_SIZE
    else:
        end = _question_end(data)
        if end < 0 or data[end:end + 3] != OPT_TAIL or end + OPT_SIZE > n:
            return None
        (rdlen,) = struct.unpack_from("!H", data, end + 9)
        if end + OPT_SIZE + rdlen != n:
            return None
    if data[end + 5] or data[end + 6]:  # extended rcode / EDNS version: slow path (BADVERS)
        return None
    (payload,) = struct.unpack_from("!H", data, end + 3)
    return data[12:end], 1, data[end + 7] >> 7, max(payload, CLASSIC_UDP_LIMIT)


def truncated_copy(reply: bytes, opt: bytes = b"") -> bytes:
    """``reply`` cut to its header and question with TC set and no records: what response
    rate limiting "slips" instead of dropping, and what a relayed answer over the UDP
    cap becomes, so a real client retries over TCP. ``opt`` is our OPT record, for a
    query that had EDNS (RFC 6891 answers it with one). No larger than the query it
    answers, so it amplifies nothing."""
    qdcount = reply[4:6]
    end = _question_end(reply) if qdcount == b"\x00\x01" else -1
    if end < 0:
        qdcount, end = b"\x00\x00", 12
    flags = (reply[2] | 0x02).to_bytes(1, "big")  # TC is bit 1 of the third byte
    arcount = ONE_ADDITIONAL if opt else NO_ADDITIONAL
    return reply[:2] + flags + reply[3:4] + qdcount + b"\x00\x00\x00\x00" + arcount \
        + reply[12:end] + opt


def _question_end(data: bytes) -> int:
    """Offset just past the question's type and class, or -1 if the name is malformed."""
    i, n = 12, len(data)
    while i < n:
        length = data[i]
        if length == 0:
            end = i + 5
            return end if end <= n else -1
        if length > 63:
            return -1
        i += length + 1
    return -1


def fast_reply(table: AnswerTable, data: bytes, *, udp: bool) -> tuple[bytes, int] | None:
    """The reply and its rcode if the table answers ``data`` as is, else None.

    The key lower-cases only the name: the type and class bytes must match
    exactly (lower-casing type 65, HTTPS, would turn it into type 97).
    """
    parsed = parse_question(data)
    if parsed is None:
        return None
    question, edns, do, payload = parsed
    key = question[:-4].lower() + question[-4:]
    entry = table.entries.get(key)
    if entry is None:
        entry = table.cache.get(key)
        if entry is None:
            return None
    if edns:
        if udp:  # udp_limit inlined (payload is already at least 512): most queries pass here
            cap = table.max_udp
            entry = entry.fitted((payload if payload < cap else cap) - OPT_SIZE)
        return entry.reply(data[:2], data[2] & 1, question, table.opt[do], table.serial), \
            entry.rcode
    if udp:
        entry = entry.fitted(CLASSIC_UDP_LIMIT)
    return entry.reply(data[:2], data[2] & 1, question, b"", table.serial), entry.rcode
