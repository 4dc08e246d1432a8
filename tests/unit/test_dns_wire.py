"""dnsd.wire: rendered entries, the fast path's byte patching, truncation and EDNS.

Replies are checked by parsing them back with dnspython, so "the fast path is
right" means "a standard parser reads the answer we meant".
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from dnsd.model import Endpoint, Port, ServiceInfo, ServiceKind, SliceInfo
from dnsd.names import split_name
from dnsd.records import answer
from dnsd.wire import (
    AnswerTable,
    fast_reply,
    parse_question,
    question_key,
    render,
    truncated_copy,
    udp_limit,
)
from dnsd.zone import ZoneData

PG = Port("pg", "tcp", 5432)


def make_table(zone: ZoneData, names: list[tuple[str, str]]) -> AnswerTable:
    table = AnswerTable(ra=False)
    table.serial = zone.serial
    for name, qtype in names:
        labels, rtype = split_name(name), dns.rdatatype.from_text(qtype)
        key = question_key(labels, rtype)
        table.store({key: answer(zone, labels, rtype, serial=0)})
    return table


@pytest.fixture(scope="module")
def zone() -> ZoneData:
    z = ZoneData(("cluster", "local"), serial=1234)
    z.put_service(ServiceInfo("default", "web", ServiceKind.CLUSTER_IP, ("10.96.0.5",),
                              (Port("http", "tcp", 80),)))
    z.put_service(ServiceInfo("default", "big", ServiceKind.HEADLESS, (), (PG,)))
    z.put_slice(SliceInfo("default", "big-1", "big", tuple(
        Endpoint(f"10.244.{i // 250}.{i % 250 + 1}", "", True, (PG,)) for i in range(100))))
    return z


@pytest.fixture(scope="module")
def table(zone: ZoneData) -> AnswerTable:
    return make_table(zone, [("web.default.svc.cluster.local", "A"),
                             ("web.default.svc.cluster.local", "AAAA"),
                             ("_http._tcp.web.default.svc.cluster.local", "SRV"),
                             ("big.default.svc.cluster.local", "A"),
                             ("big.default.svc.cluster.local", "SRV")])


def ask(table: AnswerTable, query: dns.message.Message, *, udp: bool = True
        ) -> dns.message.Message:
    result = fast_reply(table, query.to_wire(), udp=udp)
    assert result is not None, "the fast path should answer this"
    return dns.message.from_wire(result[0])


def test_reply_patches_id_and_echoes_case(table: AnswerTable) -> None:
    query = dns.message.make_query("WeB.DeFaUlT.sVc.CLUSTER.local.", "A", use_edns=False)
    query.id = 0xBEEF
    reply = ask(table, query)
    assert reply.id == 0xBEEF
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.AA
    assert reply.flags & dns.flags.RD  # copied from the query
    assert not reply.flags & dns.flags.RA  # no upstream: no recursion
    assert reply.question[0].name.to_text() == "WeB.DeFaUlT.sVc.CLUSTER.local."
    (rrset,) = reply.answer
    assert rrset.name.to_text() == "WeB.DeFaUlT.sVc.CLUSTER.local."  # case echoed
    assert [r.to_text() for r in rrset] == ["10.96.0.5"]
    assert reply.edns == -1


def test_rd_clear_stays_clear(table: AnswerTable) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local.", "A")
    query.flags &= ~dns.flags.RD
    assert not ask(table, query).flags & dns.flags.RD


def test_edns_is_echoed_with_our_payload_and_do(table: AnswerTable) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=0,
                                   payload=4096, want_dnssec=True)
    reply = ask(table, query)
    assert reply.edns == 0 and reply.payload == 1232
    assert reply.ednsflags & dns.flags.DO
    plain = ask(table, dns.message.make_query("web.default.svc.cluster.local.", "A",
                                              use_edns=0))
    assert not plain.ednsflags & dns.flags.DO


def test_edns_with_options_takes_the_walk(table: AnswerTable) -> None:
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    query = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=0,
                                   options=[cookie])
    assert ask(table, query).answer[0][0].to_text() == "10.96.0.5"


def test_nodata_carries_the_live_serial(zone: ZoneData, table: AnswerTable) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local.", "AAAA")
    reply = ask(table, query)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert reply.authority[0].name.to_text() == "cluster.local."
    assert reply.authority[0][0].serial == 1234
    table.serial = 99999
    try:
        assert ask(table, query).authority[0][0].serial == 99999
    finally:
        table.serial = zone.serial


def test_srv_has_the_address_in_additional(table: AnswerTable) -> None:
    reply = ask(table, dns.message.make_query("_http._tcp.web.default.svc.cluster.local.",
                                              "SRV"))
    assert reply.answer[0][0].to_text() == "0 100 80 web.default.svc.cluster.local."
    assert [rr.to_text() for rr in reply.additional] == [
        "web.default.svc.cluster.local. 5 IN A 10.96.0.5"]


def test_udp_without_edns_truncates_to_512_keeping_what_fits(table: AnswerTable) -> None:
    query = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=False)
    wire = fast_reply(table, query.to_wire(), udp=True)
    assert wire is not None and len(wire[0]) <= 512
    reply = dns.message.from_wire(wire[0])
    assert reply.flags & dns.flags.TC
    assert 20 < len(reply.answer[0]) < 100  # partial, not empty (dnspython alone: empty)


def test_udp_with_edns_fits_the_clients_buffer(table: AnswerTable) -> None:
    query = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=0,
                                   payload=1232)
    wire = fast_reply(table, query.to_wire(), udp=True)
    assert wire is not None and 512 < len(wire[0]) <= 1232
    reply = dns.message.from_wire(wire[0])
    assert reply.flags & dns.flags.TC and len(reply.answer[0]) > 50
    assert reply.edns == 0


def test_udp_is_capped_at_1232_whatever_the_clients_buffer(table: AnswerTable) -> None:
    """Issue 15: an EDNS 65535 SRV query on a 100-endpoint Service drew an 8.5 KB
    datagram; CoreDNS's bufsize (1,232) caps it, TC set so the client retries over TCP."""
    for qtype in ("SRV", "A"):
        query = dns.message.make_query("big.default.svc.cluster.local.", qtype, use_edns=0,
                                       payload=65535)
        wire = fast_reply(table, query.to_wire(), udp=True)
        assert wire is not None and 512 < len(wire[0]) <= 1232, qtype
        reply = dns.message.from_wire(wire[0])
        assert reply.flags & dns.flags.TC and reply.answer, qtype  # what fits, not empty
        assert reply.edns == 0 and reply.payload == 1232  # never advertise more than sent
    full = ask(table, dns.message.make_query("big.default.svc.cluster.local.", "SRV"),
               udp=False)
    assert len(full.to_wire()) > 4000 and not full.flags & dns.flags.TC


@pytest.mark.parametrize("cap", [512, 700, 4096])
def test_udp_cap_is_the_tables_and_advertised(zone: ZoneData, cap: int) -> None:
    table = AnswerTable(ra=False, max_udp=cap)
    table.serial = zone.serial
    labels = split_name("big.default.svc.cluster.local")
    table.store({question_key(labels, 33): answer(zone, labels, 33, serial=0)})
    query = dns.message.make_query("big.default.svc.cluster.local.", "SRV", use_edns=0,
                                   payload=65535)
    wire = fast_reply(table, query.to_wire(), udp=True)
    assert wire is not None and cap - 200 < len(wire[0]) <= cap
    reply = dns.message.from_wire(wire[0])
    assert reply.flags & dns.flags.TC and reply.payload == cap
    # a client asking for less than the cap still gets its own size
    small = dns.message.make_query("big.default.svc.cluster.local.", "SRV", use_edns=0,
                                   payload=600)
    wire = fast_reply(table, small.to_wire(), udp=True)
    assert wire is not None and len(wire[0]) <= min(600, cap)


@pytest.mark.parametrize(("payload", "edns", "cap", "limit"), [
    (0, 0, 1232, 512),          # no EDNS: RFC 1035's 512, whatever the cap
    (100, 1, 1232, 512 - 11),   # EDNS below 512 counts as 512
    (1232, 1, 1232, 1232 - 11),
    (65535, 1, 1232, 1232 - 11),
    (65535, 1, 4096, 4096 - 11),
    (2000, 1, 4096, 2000 - 11),
])
def test_udp_limit(payload: int, edns: int, cap: int, limit: int) -> None:
    assert udp_limit(payload, edns, cap) == limit


@pytest.mark.parametrize("cap", [512, 1232, 4096])
def test_fast_path_sizes_follow_udp_limit(zone: ZoneData, cap: int) -> None:
    """The fast path inlines ``udp_limit``; the slow path calls it: one rule."""
    table = AnswerTable(ra=False, max_udp=cap)
    labels = split_name("big.default.svc.cluster.local")
    key = question_key(labels, 33)
    table.store({key: answer(zone, labels, 33, serial=0)})
    entry = table.entries[key]
    for payload in (None, 100, 600, 1232, 2000, 4096, 65535):
        edns = 0 if payload is None else 1
        query = dns.message.make_query("big.default.svc.cluster.local.", "SRV",
                                       use_edns=-1 if payload is None else 0,
                                       payload=payload or 0)
        wire = fast_reply(table, query.to_wire(), udp=True)
        assert wire is not None
        want = entry.fitted(udp_limit(payload or 0, edns, cap)).reply(
            query.to_wire()[:2], 1, key, table.opt[0] if edns else b"", table.serial)
        assert wire[0] == want, payload


def test_truncated_copy_keeps_only_header_and_question(table: AnswerTable) -> None:
    query = dns.message.make_query("BIG.default.svc.cluster.local.", "SRV", use_edns=0,
                                   want_dnssec=True)
    wire = fast_reply(table, query.to_wire(), udp=False)
    assert wire is not None
    slipped = truncated_copy(wire[0])
    assert len(slipped) <= len(query.to_wire())  # amplifies nothing
    reply = dns.message.from_wire(slipped)
    assert reply.id == query.id and reply.flags & dns.flags.TC and reply.flags & dns.flags.QR
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert reply.question[0].name.to_text() == "BIG.default.svc.cluster.local."
    assert reply.answer == reply.authority == reply.additional == [] and reply.edns == -1
    # a header-only reply (FORMERR to garbage) stays a header, now with TC
    formerr = wire[0][:2] + b"\x80\x01" + b"\x00" * 8
    assert truncated_copy(formerr) == wire[0][:2] + b"\x82\x01" + b"\x00" * 8
    # with our OPT (the query had EDNS): still no larger than the query
    with_opt = truncated_copy(wire[0], table.opt[1])
    assert len(with_opt) <= len(query.to_wire())
    reply = dns.message.from_wire(with_opt)
    assert reply.flags & dns.flags.TC and reply.answer == reply.authority == []
    assert reply.edns == 0 and reply.payload == table.max_udp
    assert reply.ednsflags & dns.flags.DO


def test_tcp_gets_everything(table: AnswerTable) -> None:
    query = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=False)
    reply = ask(table, query, udp=False)
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 100


def test_additional_that_does_not_fit_is_dropped_without_tc(zone: ZoneData) -> None:
    labels = split_name("big.default.svc.cluster.local")
    key = question_key(labels, dns.rdatatype.SRV)
    ans = answer(zone, labels, dns.rdatatype.SRV)
    full = render(ans, key, ra=False)
    assert len(full.body) > 4000
    # room for every SRV but only some of the addresses
    srv_only = render(ans.__class__(ans.rcode, ans.answer), key, ra=False)
    limit = 12 + len(key) + len(srv_only.body) + 200
    cut = render(ans, key, ra=False, limit=limit)
    assert not cut.truncated
    reply = dns.message.from_wire(cut.reply(b"\x00\x01", 1, key, b"", 1))
    assert len(reply.answer[0]) == 100 and 0 < len(reply.additional) < 100


def test_type_bytes_are_not_lower_cased() -> None:
    """Type 65 (HTTPS) lower-cased would read as type 97: the key must keep it."""
    zone = ZoneData(("cluster", "local"), serial=1)
    table = make_table(zone, [("cluster.local", "TYPE97")])
    query = dns.message.make_query("cluster.local.", "HTTPS")
    assert fast_reply(table, query.to_wire(), udp=True) is None
    assert fast_reply(table, dns.message.make_query("cluster.local.", "TYPE97").to_wire(),
                      udp=True) is not None


def test_cache_is_bounded_oldest_first() -> None:
    table = AnswerTable(ra=False, cache_size=2)
    zone = ZoneData(("cluster", "local"))
    entries = []
    for i in range(3):
        labels = split_name(f"n{i}.cluster.local")
        key = question_key(labels, 1)
        entries.append(key)
        table.put_cached(key, render(answer(zone, labels, 1), key, ra=False))
    assert list(table.cache) == entries[1:]
    table.flush_cache()
    assert table.get(entries[2]) is None


def test_cache_invalidation_by_tag() -> None:
    table = AnswerTable(ra=False)
    zone = ZoneData(("cluster", "local"))
    entry = render(answer(zone, split_name("x.cluster.local"), 1),
                   question_key(split_name("x.cluster.local"), 1), ra=False)
    table.put_cached(b"a", entry, ("svc", "ns", "a"))
    table.put_cached(b"b", entry, ("svc", "ns", "b"))
    table.put_cached(b"b2", entry, ("svc", "ns", "b"))
    table.put_cached(b"a", entry, ("svc", "ns", "b"))  # re-tagged
    assert table.invalidate({("svc", "ns", "a")}) == 0
    assert table.invalidate({("svc", "ns", "b")}) == 3
    assert table.cache == {}


GOOD = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=0).to_wire()


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda b: b[:2] + bytes([b[2] | 0x80]) + b[3:], "a response"),
    (lambda b: b[:2] + bytes([b[2] | 0x28]) + b[3:], "opcode UPDATE"),
    (lambda b: b[:4] + b"\x00\x02" + b[6:], "two questions"),
    (lambda b: b[:6] + b"\x00\x01" + b[8:], "an answer record"),
    (lambda b: b[:10] + b"\x00\x02" + b[12:], "two additional records"),
    (lambda b: b[:-11], "OPT promised, missing"),
    (lambda b: b[:-5] + b"\x01" + b[-4:], "EDNS version 1"),
    (lambda b: b[:-2] + b"\x00\x04", "OPT rdlen past the end"),
    (lambda b: b[:11], "shorter than a header"),
])
def test_parse_question_refuses(mutate, why: str) -> None:
    assert parse_question(GOOD) is not None
    assert parse_question(mutate(GOOD)) is None, why


def test_parse_question_finds_the_parts() -> None:
    plain = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=False)
    question, edns, do, payload = parse_question(plain.to_wire())  # type: ignore[misc]
    assert (edns, do, payload) == (0, 0, 512)
    assert question == plain.to_wire()[12:]
    small = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=0,
                                   payload=100)
    assert parse_question(small.to_wire())[3] == 512  # type: ignore[index]
    assert struct.unpack("!H", question[-4:-2])[0] == 1


def test_encoder_agrees_with_dnspython_for_every_type() -> None:
    """Each type dnsd writes, plus foreign ones chased from upstream, read back equal."""
    from dnsd.records import Answer, Record
    labels = split_name("x.default.svc.cluster.local")
    key = question_key(labels, dns.rdatatype.ANY)
    records = (
        Record("x.default.svc.cluster.local.", 1, 5, "10.0.0.1"),
        Record("x.default.svc.cluster.local.", 28, 5, "fd00::1"),
        Record("x.default.svc.cluster.local.", 33, 5, "0 50 80 web.default.svc.cluster.local."),
        Record("x.default.svc.cluster.local.", 12, 5, "web.default.svc.cluster.local."),
        Record("x.default.svc.cluster.local.", 5, 5, "Example.COM."),
        Record("cluster.local.", 2, 5, "ns.dns.cluster.local."),
        Record("x.default.svc.cluster.local.", 16, 28800, '"1.1.0"'),
        Record("example.com.", 15, 60, "10 mail.example.com."),
        Record("we\\.ird.example.com.", 1, 60, "192.0.2.1"),
        Record("cluster.local.", 6, 5, "ns.dns.cluster.local. hostmaster.cluster.local. 42 "
               "7200 1800 86400 5"),
    )
    entry = render(Answer(0, records), key, ra=False)
    reply = dns.message.from_wire(entry.reply(b"\x12\x34", 0, key, b"", 42))
    got = [f"{rr.name} {rr.ttl} {dns.rdatatype.to_text(rr.rdtype)} {rd}"
           for rr in reply.answer for rd in rr]
    want = [f"{r.name} {r.ttl} {dns.rdatatype.to_text(r.rtype)} {r.data}" for r in records]
    assert [g.lower() for g in got] == [w.lower() for w in want]
    assert entry.serial_at > 0  # the SOA came last
    # RFC 2782: the SRV target is written out, never as a pointer
    assert b"\x03web\x07default\x03svc" in entry.body
