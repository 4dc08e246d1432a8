"""Response rate limiting (RRL) per client prefix: a token bucket, pure and clock-injected.

UDP source addresses can be forged, so a DNS server answering at full speed can
be used to flood a victim with answers (each larger than its query). BIND's and
CoreDNS's ``rrl`` bound the answers per second sent to one client *prefix*
(/24 for IPv4, /56 for IPv6: one site, however many addresses it forges or owns).
Past the rate, answers are dropped, but every ``slip``-th dropped answer is
sent as an empty truncated reply (TC) instead: a real client behind the prefix
retries over TCP, which can't be forged, and still gets its answer; a victim
gets at most 1/``slip`` of the packets, each no larger than the query.

One bucket per prefix holds up to ``rate`` tokens (one second's worth, as
BIND's credit) and refills at ``rate`` per second; a response takes a token.
The table is bounded: past ``max_prefixes`` buckets, the ones that have
refilled completely (indistinguishable from a new bucket) are forgotten, and if
a flood of distinct prefixes leaves none refilled, the oldest half goes.

Only UDP is limited (``server.py``): a TCP client has proven its address.
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Callable

IPV4_PREFIX = 24  # BIND's ipv4-prefix-length default
IPV6_PREFIX = 56  # BIND's ipv6-prefix-length default
DEFAULT_SLIP = 2  # BIND's default: every second dropped response goes out truncated
MAX_PREFIXES = 100_000  # buckets kept; about 10 MB at worst


class Verdict(enum.IntEnum):
    SEND = 0  # within the rate: send the answer
    DROP = 1  # over it: send nothing
    SLIP = 2  # over it, but send an empty TC reply so a real client retries over TCP


class RateLimiter:
    """Decides, per response, whether a client prefix is over its rate."""

    def __init__(self, responses_per_second: float, *, slip: int = DEFAULT_SLIP,
                 ipv4_prefix: int = IPV4_PREFIX, ipv6_prefix: int = IPV6_PREFIX,
                 max_prefixes: int = MAX_PREFIXES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if responses_per_second <= 0:
            raise ValueError("responses_per_second must be more than 0")
        self.rate = float(responses_per_second)
        self.slip = slip
        self.max_prefixes = max_prefixes
        self.clock = clock
        self._v4_mask = (0xFFFFFFFF << (32 - ipv4_prefix)) & 0xFFFFFFFF
        self._v6_shift = 128 - ipv6_prefix
        # prefix → [tokens, time of last update, responses dropped since the last slip]
        self._buckets: dict[int | tuple[int], list[float]] = {}

    def prefix(self, host: str) -> int | tuple[int]:
        """The bucket key of an address: its IPv4 prefix as an int, an IPv6 one in a
        1-tuple (so the two families never share a bucket)."""
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if ip.version == 4:
            return int(ip) & self._v4_mask
        mapped = ip.ipv4_mapped
        if mapped is not None:  # ::ffff:a.b.c.d from a dual-stack socket: the IPv4 client
            return int(mapped) & self._v4_mask
        return (int(ip) >> self._v6_shift,)

    def check(self, host: str) -> Verdict:
        """Account for one response to ``host``; what to do with it."""
        key = self.prefix(host)
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_prefixes:
                self._prune(now)
            bucket = self._buckets[key] = [self.rate, now, 0.0]
        else:
            bucket[0] = min(self.rate, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return Verdict.SEND
        bucket[2] += 1
        if self.slip and bucket[2] >= self.slip:
            bucket[2] = 0
            return Verdict.SLIP
        return Verdict.DROP

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        """Forget refilled buckets; if that frees nothing, the oldest half."""
        full = [key for key, (tokens, at, _) in self._buckets.items()
                if tokens + (now - at) * self.rate >= self.rate]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_prefixes:
            for key in list(self._buckets)[:len(self._buckets) // 2 + 1]:
                del self._buckets[key]
