"""SPDY/3.1 framing, the multiplexing layer ``kubectl port-forward`` speaks.

kubectl (client-go ``tools/portforward``) opens one upgraded connection per
``port-forward`` and, for every local TCP connection, two SPDY streams (``error``
and ``data``). Since Kubernetes 1.31 the connection is a WebSocket whose
subprotocol is ``SPDY/3.1+portforward.k8s.io`` and whose binary messages carry
the SPDY byte stream in arbitrary pieces (Go's framer writes a frame field by
field, one message each); the fallback is a plain ``Upgrade: SPDY/3.1``. Either
way, what is framed here is a byte stream, so the codec is sans-I/O: a
``FrameDecoder`` is fed bytes and returns whole frames, a ``FrameEncoder`` turns
frames into bytes, and the caller owns the socket.

Wire format (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol - Draft 3"):

- a control frame is ``1 | version:15 | type:16 | flags:8 | length:24 | data``;
- a data frame is ``0 | stream-id:31 | flags:8 | length:24 | data``;
- SYN_STREAM, SYN_REPLY and HEADERS carry a name/value block (a 32-bit count,
  then 32-bit-length-prefixed lowercase names and values, several values of one
  name joined by NUL) compressed with zlib, primed with the spec's dictionary,
  as one stream per direction for the whole connection: every block is
  ``Z_SYNC_FLUSH``-ed and the next continues the same compression state. Frames
  that carry a block must therefore be encoded and written in one order.

Errors: ``SpdyProtocolError`` for anything the peer got wrong that ends the
session (bad version, a header block that does not inflate or parse, a frame
too short for its type). Unknown control frame types are skipped, as the spec
asks. No flow control is enforced or announced: kubectl's spdystream neither
sends WINDOW_UPDATE nor honours one, so the frame is parsed and ignored.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM only

# RST_STREAM status codes (spec 2.6.3)
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

# GOAWAY status codes (spec 2.6.6)
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1

MAX_LENGTH = 0xFFFFFF  # the 24-bit length field's ceiling
# A name/value block inflated past this is refused: port-forward's blocks are a
# few dozen bytes, and a small compressed block can otherwise inflate to gigabytes.
MAX_HEADER_BLOCK = 64 * 1024
STREAM_ID_MASK = 0x7FFFFFFF

Headers = Mapping[str, str]
"""Lowercase names to values; several values of one name stay NUL-joined, as on
the wire (``first`` picks the one Go's ``http.Header.Get`` would)."""


def first(headers: Headers, name: str) -> str:
    """The first value of ``name`` ("" if absent), as Go's ``http.Header.Get``."""
    return headers.get(name.lower(), "").split("\0", 1)[0]


class SpdyProtocolError(ValueError):
    """The peer broke SPDY/3.1 framing; the session cannot go on."""


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway
         | HeadersFrame | WindowUpdate)


# The zlib dictionary every name/value block is primed with: SPDY/3 draft,
# section 2.6.10.1 (the C array there, byte for byte; 1,423 bytes).
DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put"
    b"\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eacc"
    b"ept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00"
    b"\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthori"
    b"zation\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent"
    b"-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\x00\x00\x00"
    b"\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00"
    b"\x00\x00\x0dcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00"
    b"\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00"
    b"\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00"
    b"\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00"
    b"\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00"
    b"\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorizat"
    b"ion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00"
    b"\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-enco"
    b"ding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00"
    b"\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06me"
    b"thod\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07v"
    b"ersion\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00"
    b"\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin1001012012022052063003"
    b"02303304305306307402405406407408409410411412413414415416417502504505203 Non-Authorit"
    b"ative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized4"
    b"03 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Una"
    b"vailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu"
    b", Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    b"application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,s"
    b"dchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: names lowercased, sorted for stable output."""
    items = sorted((name.lower(), value) for name, value in headers.items())
    out = [struct.pack(">I", len(items))]
    for name, value in items:
        raw_name, raw_value = name.encode(), value.encode()
        out.append(struct.pack(">I", len(raw_name)) + raw_name)
        out.append(struct.pack(">I", len(raw_value)) + raw_value)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    """The inverse of ``encode_header_block``; ``SpdyProtocolError`` on a malformed block."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4:offset + 4 + n]
            offset += 4 + n
            (v,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4:offset + 4 + v]
            offset += 4 + v
            if len(name) != n or len(value) != v or not name:
                raise SpdyProtocolError("truncated name/value block")
            key = name.decode().lower()
            if key in headers:
                raise SpdyProtocolError(f"duplicate header {key!r}")
            headers[key] = value.decode()
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyProtocolError(f"malformed name/value block: {exc}") from exc
    if offset != len(block):
        raise SpdyProtocolError("trailing bytes after the name/value block")
    return headers


class FrameEncoder:
    """Frames to bytes, holding this direction's header compression state."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)

    def _block(self, headers: Headers) -> bytes:
        raw = encode_header_block(headers)
        return self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            return _data(frame.stream_id, FLAG_FIN if frame.fin else 0, frame.data)
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (
                FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            body = struct.pack(">IIBB", frame.stream_id & STREAM_ID_MASK,
                               frame.associated_id & STREAM_ID_MASK,
                               (frame.priority & 0x7) << 5, 0)
            return _control(SYN_STREAM, flags, body + self._block(frame.headers))
        if isinstance(frame, SynReply):
            body = struct.pack(">I", frame.stream_id & STREAM_ID_MASK)
            return _control(SYN_REPLY, FLAG_FIN if frame.fin else 0,
                            body + self._block(frame.headers))
        if isinstance(frame, HeadersFrame):
            body = struct.pack(">I", frame.stream_id & STREAM_ID_MASK)
            return _control(HEADERS, FLAG_FIN if frame.fin else 0,
                            body + self._block(frame.headers))
        if isinstance(frame, RstStream):
            return _control(RST_STREAM, 0, struct.pack(
                ">II", frame.stream_id & STREAM_ID_MASK, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (flags << 24) | (ident & 0xFFFFFF), value)
                for flags, ident, value in frame.entries)
            return _control(SETTINGS, 1 if frame.clear else 0, body)
        if isinstance(frame, Ping):
            return _control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return _control(GOAWAY, 0, struct.pack(
                ">II", frame.last_good_stream_id & STREAM_ID_MASK, frame.status))
        return _control(WINDOW_UPDATE, 0, struct.pack(
            ">II", frame.stream_id & STREAM_ID_MASK, frame.delta & STREAM_ID_MASK))


def _control(kind: int, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_LENGTH:
        raise ValueError(f"SPDY frame body of {len(body)} bytes is over {MAX_LENGTH}")
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body


def _data(stream_id: int, flags: int, data: bytes) -> bytes:
    if len(data) > MAX_LENGTH:
        raise ValueError(f"SPDY data frame of {len(data)} bytes is over {MAX_LENGTH}")
    return struct.pack(">II", stream_id & STREAM_ID_MASK, (flags << 24) | len(data)) + data


class FrameDecoder:
    """Bytes to frames, holding the peer's header compression state.

    ``feed`` takes whatever arrived (any split, even mid-field) and returns the
    frames it completed, in order; a partial frame waits for the next call.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            word, flags_length = struct.unpack_from(">II", self._buffer, 0)
            length = flags_length & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            flags = flags_length >> 24
            body = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            if word & 0x80000000:
                version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise SpdyProtocolError(f"unsupported SPDY version {version}")
                frame = self._control(kind, flags, body)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(DataFrame(word & STREAM_ID_MASK, body, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as exc:
            raise SpdyProtocolError(f"header block does not inflate: {exc}") from exc
        if len(raw) > MAX_HEADER_BLOCK or self._zlib.unconsumed_tail:
            raise SpdyProtocolError(f"header block inflates past {MAX_HEADER_BLOCK} bytes")
        return decode_header_block(raw)

    def _control(self, kind: int, flags: int, body: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == SYN_STREAM:
                stream_id, assoc, prio, _slot = struct.unpack_from(">IIBB", body, 0)
                return SynStream(stream_id & STREAM_ID_MASK, self._headers(body[10:]),
                                 associated_id=assoc & STREAM_ID_MASK, priority=prio >> 5,
                                 fin=fin, unidirectional=bool(flags & FLAG_UNIDIRECTIONAL))
            if kind == SYN_REPLY:
                (stream_id,) = struct.unpack_from(">I", body, 0)
                return SynReply(stream_id & STREAM_ID_MASK, self._headers(body[4:]), fin=fin)
            if kind == HEADERS:
                (stream_id,) = struct.unpack_from(">I", body, 0)
                return HeadersFrame(stream_id & STREAM_ID_MASK, self._headers(body[4:]),
                                    fin=fin)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", body, 0)
                return RstStream(stream_id & STREAM_ID_MASK, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", body, 0)
                entries = []
                for i in range(count):
                    word, value = struct.unpack_from(">II", body, 4 + 8 * i)
                    entries.append((word >> 24, word & 0xFFFFFF, value))
                return Settings(tuple(entries), clear=bool(flags & 1))
            if kind == PING:
                (ping_id,) = struct.unpack_from(">I", body, 0)
                return Ping(ping_id)
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", body, 0)
                return GoAway(last & STREAM_ID_MASK, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", body, 0)
                return WindowUpdate(stream_id & STREAM_ID_MASK, delta & STREAM_ID_MASK)
        except struct.error as exc:
            raise SpdyProtocolError(f"control frame {kind} too short: {exc}") from exc
        return None  # spec 2.2.1: an unknown control frame is ignored
