"""dnsd.cache: what is kept, for how long, with which TTLs, and what is evicted."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dnsd.cache import (
    FAILED,
    ForwardCache,
    Limits,
    answers_question,
    lifetime,
    scan,
    with_opt,
)

SOA = "ns.example.com. hostmaster.example.com. 1 7200 1800 86400 {minimum}"


def reply(name: str = "www.example.com.", qtype: str = "A", *, rcode: int = dns.rcode.NOERROR,
          answer: list[tuple[int, str]] = (), soa: tuple[int, int] | None = None,
          tc: bool = False, edns: bool = False) -> bytes:
    """An upstream's reply: ``answer`` as (TTL, address) rows, ``soa`` as (TTL, MINIMUM)."""
    query = dns.message.make_query(name, qtype, use_edns=0 if edns else None)
    msg = dns.message.make_response(query)
    msg.set_rcode(rcode)
    for ttl, value in answer:
        msg.answer.append(dns.rrset.from_text(name, ttl, "IN", qtype, value))
    if soa is not None:
        msg.authority.append(dns.rrset.from_text("example.com.", soa[0], "IN", "SOA",
                                                 SOA.format(minimum=soa[1])))
    if tc:
        msg.flags |= dns.flags.TC
    return msg.to_wire()


def ttls(wire: bytes) -> list[int]:
    msg = dns.message.from_wire(wire)
    return [rrset.ttl for section in (msg.answer, msg.authority) for rrset in section]


LIMITS = Limits()


@pytest.mark.parametrize(("wire", "keep"), [
    # positive: the smallest TTL, capped at 3600 (CoreDNS's success cap)
    (reply(answer=[(300, "192.0.2.1")]), 300),
    (reply(answer=[(86400, "192.0.2.1")]), 3600),
    (reply(answer=[(60, "192.0.2.1"), (60, "192.0.2.2")], soa=(30, 900)), 30),
    # negative (RFC 2308): min(SOA TTL, SOA MINIMUM), capped at 1800
    (reply(rcode=dns.rcode.NXDOMAIN, soa=(3600, 60)), 60),
    (reply(rcode=dns.rcode.NXDOMAIN, soa=(40, 600)), 40),
    (reply(soa=(7200, 7200)), 1800),  # NODATA
    (reply(rcode=dns.rcode.NXDOMAIN, soa=(7200, 7200), edns=True), 1800),  # OPT is no TTL
    # a denial without an SOA is not kept (RFC 2308 §5)
    (reply(rcode=dns.rcode.NXDOMAIN), 0),
    (reply(), 0),
    # upstream SERVFAIL: 5 s
    (reply(rcode=dns.rcode.SERVFAIL), 5),
    # truncated, refused, TTL 0: not kept
    (reply(answer=[(300, "192.0.2.1")], tc=True), 0),
    (reply(rcode=dns.rcode.REFUSED), 0),
    (reply(answer=[(0, "192.0.2.1")]), 0),
])
def test_lifetime(wire: bytes, keep: int) -> None:
    assert lifetime(scan(wire), LIMITS) == keep


def test_caps_are_configurable() -> None:
    limits = Limits(success_ttl=10, denial_ttl=2, servfail_ttl=1)
    assert lifetime(scan(reply(answer=[(300, "192.0.2.1")])), limits) == 10
    assert lifetime(scan(reply(rcode=dns.rcode.NXDOMAIN, soa=(60, 60))), limits) == 2
    assert lifetime(scan(reply(rcode=dns.rcode.SERVFAIL)), limits) == 1


def test_served_with_ttls_lowered_by_the_time_kept_then_gone() -> None:
    cache = ForwardCache()
    wire = reply(answer=[(300, "192.0.2.1")], soa=(600, 600))
    assert cache.put(b"k", wire, now=1000.0) == 300
    fresh = cache.get(b"k", 1000.0) or b""
    assert ttls(fresh) == [300, 300]  # none above the 300 it is kept for
    assert dns.message.from_wire(fresh).answer == dns.message.from_wire(wire).answer
    assert ttls(cache.get(b"k", 1100.5) or b"") == [200, 200]
    assert ttls(cache.get(b"k", 1299.0) or b"") == [1, 1]
    assert cache.get(b"k", 1300.0) is None
    assert len(cache) == 0 and (cache.hits, cache.misses) == (3, 1)


def test_a_denial_is_served_from_the_cache_with_its_soa_aged() -> None:
    cache = ForwardCache(Limits(denial_ttl=30))
    cache.put(b"nx", reply(rcode=dns.rcode.NXDOMAIN, soa=(3600, 3600)), now=0.0)
    kept = cache.get(b"nx", 12.0)
    assert kept is not None
    msg = dns.message.from_wire(kept)
    assert msg.rcode() == dns.rcode.NXDOMAIN and ttls(kept) == [18]
    assert cache.get(b"nx", 30.0) is None


def test_no_upstream_answering_is_kept_as_servfail_for_5_seconds() -> None:
    cache = ForwardCache()
    cache.put_failure(b"k", now=0.0)
    assert cache.get(b"k", 4.9) == FAILED
    assert cache.get(b"k", 5.0) is None
    off = ForwardCache(Limits(servfail_ttl=0))
    off.put_failure(b"k", now=0.0)
    assert off.get(b"k", 0.0) is None


def test_bounded_least_recently_used_goes_first() -> None:
    cache = ForwardCache(Limits(size=2))
    wire = reply(answer=[(300, "192.0.2.1")])
    cache.put(b"a", wire, 0.0)
    cache.put(b"b", wire, 0.0)
    assert cache.get(b"a", 1.0) is not None  # a is now the most recently used
    cache.put(b"c", wire, 1.0)
    assert cache.get(b"b", 1.0) is None and cache.get(b"a", 1.0) is not None
    assert len(cache) == 2 and cache.evictions == 1
    disabled = ForwardCache(Limits(size=0))
    disabled.put(b"a", wire, 0.0)
    assert len(disabled) == 0


def test_malformed_replies_are_not_kept() -> None:
    cache = ForwardCache()
    good = reply(answer=[(300, "192.0.2.1")])
    for bad in (good[:-3], good[:11], b"\xff" * 40):
        assert cache.put(b"k", bad, 0.0) == 0
    assert len(cache) == 0


def test_answers_question_ignores_case_only() -> None:
    query = dns.message.make_query("WWW.Example.com.", "A").to_wire()
    assert answers_question(query, reply("www.example.com."))
    assert not answers_question(query, reply("www.example.org."))
    assert not answers_question(query, reply("www.example.com.", "AAAA"))
    assert not answers_question(query, query[:12])


def test_kept_without_the_upstreams_opt_and_given_the_askers() -> None:
    """One entry serves EDNS and plain clients alike: the OPT is not kept, and the
    server adds its own for a client that sent one."""
    cache = ForwardCache()
    cache.put(b"k", reply(answer=[(300, "192.0.2.1")], edns=True), 0.0)
    kept = cache.get(b"k", 0.0) or b""
    plain = dns.message.from_wire(kept)
    assert plain.edns == -1 and [r.to_text() for r in plain.answer[0]] == ["192.0.2.1"]
    opt = dns.message.make_query("x.", "A", use_edns=0, payload=1232).to_wire()[-11:]
    ours = dns.message.from_wire(with_opt(kept, opt))
    assert ours.edns == 0 and ours.payload == 1232 and ours.answer == plain.answer


def test_an_extended_rcode_in_the_opt_is_not_taken_for_noerror() -> None:
    msg = dns.message.from_wire(reply(soa=(60, 60), edns=True))
    msg.set_rcode(dns.rcode.BADVERS)
    assert lifetime(scan(msg.to_wire()), LIMITS) == 0
