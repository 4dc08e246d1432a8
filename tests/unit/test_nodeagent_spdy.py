"""The SPDY/3.1 codec: round trips, any split of the byte stream, kubectl's own bytes."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodeagent.api import spdy

# What kubectl v1.32.4 sent through its WebSocket tunnel for one forwarded
# connection (`kubectl port-forward pod/web <local>:80`, then "hello" on the local
# port), unmasked and concatenated: SYN_STREAM 1 (error), FIN on 1, SYN_STREAM 3
# (data), DATA "hello" on 3. Its header blocks were deflated by Go's zlib primed
# with the SPDY/3 dictionary, so decoding them checks ours byte for byte.
KUBECTL_FIRST_CONNECTION = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a080"
    "8614cb45a024cc6461c0c0c0c0590489c44c50e2663400000000ffff000000010100000080030001"
    "0000001a00000003000000000000826a25a406d56850299508000000ffff000000030000000568656c"
    "6c6f")

SAMPLES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
    spdy.SynStream(3, {"streamtype": "data", "port": "80"}, associated_id=1, priority=5,
                   fin=True, unidirectional=True),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"a": "1\x002"}, fin=True),
    spdy.HeadersFrame(5, {"x-y": "z"}, fin=True),
    spdy.DataFrame(3, b"hello"),
    spdy.DataFrame(3, b"", fin=True),
    spdy.DataFrame(0x7FFFFFFF, b"\x00" * 70000),
    spdy.RstStream(3, spdy.CANCEL),
    spdy.Settings(((0, 4, 100), (1, 7, 65536)), clear=True),
    spdy.Ping(1),
    spdy.GoAway(7, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.WindowUpdate(3, 4096),
]


def test_the_dictionary_is_the_one_in_the_spdy3_draft() -> None:
    # draft-mbelshe-httpbis-spdy-00 section 2.6.10.1: 1,423 bytes, "options" first
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_kubectls_frames_decode() -> None:
    frames = spdy.FrameDecoder().feed(KUBECTL_FIRST_CONNECTION)
    assert frames == [
        spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
        spdy.DataFrame(1, b"", fin=True),
        spdy.SynStream(3, {"port": "80", "requestid": "0", "streamtype": "data"}),
        spdy.DataFrame(3, b"hello"),
    ]


def test_every_frame_round_trips_through_one_connection_state() -> None:
    encoder = spdy.FrameEncoder()
    wire = b"".join(encoder.encode(frame) for frame in SAMPLES)
    assert spdy.FrameDecoder().feed(wire) == SAMPLES


@given(st.lists(st.integers(min_value=1, max_value=64), max_size=40))
def test_any_split_of_the_byte_stream_gives_the_same_frames(cuts: list[int]) -> None:
    # kubectl's WebSocket messages cut frames anywhere (Go writes field by field)
    encoder = spdy.FrameEncoder()  # frames without header blocks: kubectl's state is intact
    wire = KUBECTL_FIRST_CONNECTION + b"".join(encoder.encode(frame) for frame in SAMPLES[5:])
    decoder, frames, offset = spdy.FrameDecoder(), [], 0
    for cut in cuts:
        frames += decoder.feed(wire[offset:offset + cut])
        offset += cut
    frames += decoder.feed(wire[offset:])
    assert frames == spdy.FrameDecoder().feed(wire)


def test_header_blocks_share_compression_state_across_frames() -> None:
    encoder = spdy.FrameEncoder()
    one = encoder.encode(spdy.SynReply(1, {"streamtype": "data"}))
    two = encoder.encode(spdy.SynReply(3, {"streamtype": "data"}))
    assert len(two) < len(one)  # the second block refers back into the first
    with pytest.raises(spdy.SpdyProtocolError):
        spdy.FrameDecoder().feed(two)  # alone, its back-references dangle
    decoder = spdy.FrameDecoder()
    assert decoder.feed(one + two) == [spdy.SynReply(1, {"streamtype": "data"}),
                                       spdy.SynReply(3, {"streamtype": "data"})]


def test_first_value_as_go_header_get() -> None:
    headers = {"port": "80\x0081"}
    assert spdy.first(headers, "Port") == "80"
    assert spdy.first(headers, "requestID") == ""


def control(kind: int, body: bytes, *, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, kind, (flags << 24) | len(body)) + body


def deflated(raw: bytes) -> bytes:
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    return z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize(("wire", "message"), [
    (control(spdy.PING, b"\x00\x00\x00\x01", version=2), "unsupported SPDY version 2"),
    (control(spdy.PING, b"\x00"), "too short"),
    (control(spdy.SYN_REPLY, b"\x00\x00\x00\x01" + b"not zlib"), "does not inflate"),
    (control(spdy.SYN_REPLY, b"\x00\x00\x00\x01" + deflated(b"\x00\x00\x00\x01\x00\x00")),
     "malformed name/value block"),
    (control(spdy.SYN_REPLY, b"\x00\x00\x00\x01" + deflated(
        b"\x00\x00\x00\x02" + (b"\x00\x00\x00\x01a\x00\x00\x00\x01b" * 2))),
     "duplicate header 'a'"),
    (control(spdy.SYN_REPLY, b"\x00\x00\x00\x01" + deflated(
        b"\x00\x00\x00\x01\x00\x00\x00\x01a\x00\x10\x00\x00" + b"x" * 0x100000)),
     "inflates past"),
])
def test_broken_frames_are_protocol_errors(wire: bytes, message: str) -> None:
    with pytest.raises(spdy.SpdyProtocolError, match=message):
        spdy.FrameDecoder().feed(wire)


def test_unknown_control_frames_are_skipped() -> None:
    wire = control(42, b"whatever") + spdy.FrameEncoder().encode(spdy.Ping(3))
    assert spdy.FrameDecoder().feed(wire) == [spdy.Ping(3)]


def test_a_partial_frame_waits_for_the_rest() -> None:
    wire = spdy.FrameEncoder().encode(spdy.DataFrame(1, b"abcdef"))
    decoder = spdy.FrameDecoder()
    assert decoder.feed(wire[:9]) == []
    assert decoder.feed(wire[9:]) == [spdy.DataFrame(1, b"abcdef")]
