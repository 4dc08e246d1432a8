"""ClusterIP / NodePort allocators: KEP-3070/3668 bands, exhaustion, errors, determinism."""

from __future__ import annotations

import ipaddress
import random

import pytest

from apiserver.allocators import (
    AllocationError,
    AlreadyAllocated,
    Exhausted,
    IPAllocator,
    OutOfRange,
    PortAllocator,
    parse_cidr,
    parse_port_range,
)

# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.96.0.0/16", "10.96.0.0/16"), (" 10.0.0.0/24 ", "10.0.0.0/24"),
     ("fd00::/112", "fd00::/112"), ("FD00:0::/108", "fd00::/108")],
)
def test_parse_cidr(text: str, expected: str) -> None:
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "expected an address/prefix"), ("10.96.0.0", "missing prefix length"),
     ("10.96.0.1/16", "did you mean 10.96.0.0/16"), ("10.96.0.0/33", "invalid CIDR"),
     ("nonsense/8", "invalid CIDR")],
)
def test_parse_cidr_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        parse_cidr(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30000-32767", (30000, 32767)), (" 100 - 200 ", (100, 200)), ("30000+10", (30000, 30010)),
     ("8080", (8080, 8080)), ("1-65535", (1, 65535))],
)
def test_parse_port_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "expected e.g."), ("a-b", "integer ports"), ("200-100", "less than start"),
     ("0-10", "between 1 and 65535"), ("30000-70000", "between 1 and 65535"),
     ("1-2-3", "integer ports")],
)
def test_parse_port_range_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_port_range(text)
    with pytest.raises(ValueError, match=fragment):
        PortAllocator(text)


# ---------------------------------------------------------------------------- IPs


def test_addressing() -> None:
    a = IPAllocator("10.96.0.0/16")
    assert a.cidr == "10.96.0.0/16"
    assert a.family == "IPv4"
    assert a.first_usable() == "10.96.0.1"
    assert a.nth(10) == "10.96.0.10"
    assert a.band_offset == 256
    assert not a.contains("10.96.0.0") and not a.contains("10.96.255.255")
    assert a.contains("10.96.255.254")
    with pytest.raises(ValueError):
        a.nth(0)
    with pytest.raises(ValueError):
        a.nth(65535)


@pytest.mark.parametrize(
    ("cidr", "offset"),
    [("10.0.0.0/16", 256), ("10.0.0.0/22", 64), ("10.0.0.0/24", 16), ("10.0.0.0/26", 16),
     ("10.0.0.0/27", 16), ("10.0.0.0/28", 0), ("10.0.0.0/30", 0), ("10.0.0.0/8", 256),
     ("fd00::/112", 256), ("fd00::/64", 256), ("fd00::/120", 16)],
)
def test_ip_band_offset(cidr: str, offset: int) -> None:
    assert IPAllocator(cidr).band_offset == offset


def test_first_allocations_land_in_upper_band() -> None:
    a = IPAllocator("10.96.0.0/16", rng=random.Random(1))
    lower_end = ipaddress.ip_address("10.96.0.0") + 256  # last static address: 10.96.1.0
    for _ in range(500):
        assert ipaddress.ip_address(a.allocate()) > lower_end


def test_lower_band_used_after_upper_full() -> None:
    a = IPAllocator("10.0.0.0/27", rng=random.Random(3))  # 30 usable: static .1-.16, dynamic .17-.30
    got = [int(ipaddress.ip_address(a.allocate())) & 0xFF for _ in range(30)]
    assert sorted(got[:14]) == list(range(17, 31))
    assert sorted(got[14:]) == list(range(1, 17))
    with pytest.raises(Exhausted):
        a.allocate()


def test_exhaust_small_range() -> None:
    a = IPAllocator("10.1.2.0/28", rng=random.Random(0))
    got = [a.allocate() for _ in range(14)]
    assert sorted(got, key=ipaddress.ip_address) == [f"10.1.2.{i}" for i in range(1, 15)]
    assert a.used() == 14 and a.free() == 0
    with pytest.raises(Exhausted) as info:
        a.allocate()
    assert str(info.value) == "range is full"
    assert isinstance(info.value, AllocationError)


def test_release_and_reuse() -> None:
    a = IPAllocator("10.1.2.0/28", rng=random.Random(0))
    got = [a.allocate() for _ in range(14)]
    a.release(got[5])
    assert not a.is_allocated(got[5])
    assert a.free() == 1
    assert a.allocate() == got[5]
    a.release(got[5])
    a.release(got[5])  # idempotent
    a.release("192.168.0.1")  # out of range: ignored
    a.release("not-an-ip")
    a.release("10.1.2.0")  # network address: ignored
    assert a.used() == 13
    a.allocate_specific(got[5])
    assert a.used() == 14


def test_allocate_specific() -> None:
    a = IPAllocator("10.96.0.0/16")
    assert a.allocate_specific("10.96.0.20") == "10.96.0.20"
    assert a.is_allocated("10.96.0.20")
    with pytest.raises(AlreadyAllocated) as info:
        a.allocate_specific("10.96.0.20")
    assert str(info.value) == "failed to allocate IP 10.96.0.20: provided IP is already allocated"
    assert info.value.value == "10.96.0.20"
    with pytest.raises(OutOfRange) as info2:
        a.allocate_specific("10.0.0.5")
    assert str(info2.value) == (
        "failed to allocate IP 10.0.0.5: provided IP is not in the valid range. "
        "The range of valid IPs is 10.96.0.0/16"
    )
    for bad in ("10.96.0.0", "10.96.255.255", "fd00::1", "banana", "", "10.96.0.256"):
        with pytest.raises(OutOfRange):
            a.allocate_specific(bad)
    assert a.used() == 1


def test_allocate_specific_normalizes_ipv6() -> None:
    a = IPAllocator("fd00::/112")
    assert a.allocate_specific("FD00:0:0::0:0a") == "fd00::a"
    assert a.is_allocated("fd00::a")
    with pytest.raises(AlreadyAllocated):
        a.allocate_specific("fd00::000a")
    with pytest.raises(OutOfRange):
        a.allocate_specific("fe80::1%eth0")


def test_automatic_never_returns_specific_allocations() -> None:
    a = IPAllocator("10.1.2.0/28", rng=random.Random(9))
    taken = {a.allocate_specific(f"10.1.2.{i}") for i in (1, 7, 14)}
    got = {a.allocate() for _ in range(11)}
    assert not got & taken
    assert len(got | taken) == 14
    with pytest.raises(Exhausted):
        a.allocate()


def test_reserved_not_auto_allocated() -> None:
    dns = "10.1.2.10"
    a = IPAllocator("10.1.2.0/28", reserved=[dns], rng=random.Random(5))
    assert a.free() == 13 and a.used() == 0
    assert not a.is_allocated(dns)
    got = {a.allocate() for _ in range(13)}
    assert dns not in got
    with pytest.raises(Exhausted):
        a.allocate()
    a.allocate_specific(dns)
    assert a.is_allocated(dns) and a.used() == 14
    with pytest.raises(AlreadyAllocated):
        a.allocate_specific(dns)
    a.release(dns)
    assert not a.is_allocated(dns)
    assert a.free() == 0  # releasing a reserved address does not feed the random pool
    with pytest.raises(Exhausted):
        a.allocate()


def test_reserved_must_be_in_range() -> None:
    with pytest.raises(ValueError, match="reserved IP"):
        IPAllocator("10.1.2.0/28", reserved=["10.1.3.1"])


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.0/32", "fd00::/128"])
def test_too_small(cidr: str) -> None:
    with pytest.raises(ValueError, match="too small"):
        IPAllocator(cidr)


def test_smallest_ranges() -> None:
    a = IPAllocator("10.0.0.0/30")
    assert {a.allocate(), a.allocate()} == {"10.0.0.1", "10.0.0.2"}
    b = IPAllocator("fd00::/127")  # IPv6 has no broadcast: only the network address is excluded
    assert b.allocate() == "fd00::1"
    with pytest.raises(Exhausted):
        b.allocate()


def test_deterministic_with_seed() -> None:
    def run(seed: int) -> list[str]:
        a = IPAllocator("10.96.0.0/16", rng=random.Random(seed))
        out = [a.allocate() for _ in range(50)]
        a.release(out[3])
        out += [a.allocate() for _ in range(5)]
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)
    assert IPAllocator("10.96.0.0/24", rng=7).allocate() == IPAllocator(
        "10.96.0.0/24", rng=7).allocate()


def test_ipv6_112() -> None:
    a = IPAllocator("fd00:10:96::/112", rng=random.Random(2))
    assert a.family == "IPv6"
    assert a.first_usable() == "fd00:10:96::1"
    assert a.nth(10) == "fd00:10:96::a"
    assert a.free() == 65535
    got = {a.allocate() for _ in range(1000)}
    assert len(got) == 1000
    for ip in got:
        addr = ipaddress.ip_address(ip)
        assert addr in ipaddress.ip_network("fd00:10:96::/112")
        assert int(addr) - int(ipaddress.ip_address("fd00:10:96::")) > 256  # upper band
    assert a.used() == 1000


def test_huge_ipv6_range_is_cheap() -> None:
    a = IPAllocator("fd00::/64", rng=random.Random(0))
    got = {a.allocate() for _ in range(2000)}
    assert len(got) == 2000
    assert a.free() == 2**64 - 1 - 2000


def test_state_stays_consistent_under_churn() -> None:
    rng = random.Random(11)
    a = IPAllocator("10.0.0.0/26", reserved=["10.0.0.10"], rng=random.Random(11))
    live: set[str] = set()
    for _ in range(5000):
        roll = rng.random()
        if roll < 0.5 and a.free():
            ip = a.allocate()
            assert ip not in live and ip != "10.0.0.10"
            live.add(ip)
        elif roll < 0.8 and live:
            ip = rng.choice(sorted(live))
            a.release(ip)
            live.discard(ip)
        else:
            ip = f"10.0.0.{rng.randrange(1, 63)}"
            if ip in live or (ip == "10.0.0.10" and a.is_allocated(ip)):
                with pytest.raises(AlreadyAllocated):
                    a.allocate_specific(ip)
            else:
                a.allocate_specific(ip)
                live.add(ip)
        assert a.used() == len(live)
    for i in range(1, 63):
        ip = f"10.0.0.{i}"
        assert a.is_allocated(ip) is (ip in live)


# ---------------------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("port_range", "offset"),
    [("30000-32767", 86), ("30000-30015", 0), ("30000-30016", 16), ("1000-1999", 31),
     ("1-65535", 128), ("30000-30000", 0)],
)
def test_port_band_offset(port_range: str, offset: int) -> None:
    assert PortAllocator(port_range).band_offset == offset


def test_ports_upper_band_first() -> None:
    p = PortAllocator(rng=random.Random(1))
    assert p.port_range == "30000-32767"
    got = [p.allocate() for _ in range(2768 - 86)]
    assert all(30086 <= x <= 32767 for x in got)
    assert len(set(got)) == len(got)
    rest = [p.allocate() for _ in range(86)]
    assert sorted(rest) == list(range(30000, 30086))
    with pytest.raises(Exhausted, match="range is full"):
        p.allocate()


def test_ports_specific_and_release() -> None:
    p = PortAllocator("30000-30031", rng=random.Random(0))
    p.allocate_specific(30005)
    assert p.is_allocated(30005)
    with pytest.raises(AlreadyAllocated) as info:
        p.allocate_specific(30005)
    assert str(info.value) == "provided port is already allocated"
    with pytest.raises(OutOfRange) as info2:
        p.allocate_specific(8080)
    assert str(info2.value) == (
        "provided port is not in the valid range. The range of valid ports is 30000-30031"
    )
    assert info2.value.value == 8080
    with pytest.raises(OutOfRange):
        p.allocate_specific(True)  # type: ignore[arg-type]
    got = {p.allocate() for _ in range(31)}
    assert 30005 not in got and len(got) == 31
    assert p.free() == 0 and p.used() == 32
    p.release(30005)
    p.release(30005)
    p.release(99999)
    assert p.allocate() == 30005
    assert not p.is_allocated(99999)


def test_ports_deterministic_with_seed() -> None:
    a = PortAllocator(rng=random.Random(5))
    b = PortAllocator(rng=random.Random(5))
    assert [a.allocate() for _ in range(20)] == [b.allocate() for _ in range(20)]
